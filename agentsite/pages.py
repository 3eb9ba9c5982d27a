"""Site-wide answers that belong to no app: the favicon where browsers and bookmark tools
look for it. (The error pages are templates: 404.html, 403.html, 500.html.)"""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpRequest
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

FAVICON = settings.BASE_DIR / "static" / "site" / "favicon.ico"


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> FileResponse:
    # Pages name the SVG icon (base.html); /favicon.ico is for clients that ask anyway.
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
