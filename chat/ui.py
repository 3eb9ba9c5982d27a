"""What the chat page needs besides its template: the import map of its ES modules and the
Content-Security-Policy that lets only those scripts run.

The modules import each other by relative URL (``./api.js``), so they work as plain files
with no build step. In production the static files have hashed names (manifest storage);
the import map sends each plain URL to its hashed one, so a browser never mixes modules of
two deployments.

The policy allows scripts from this site and the one inline script, the import map, by
its hash: model or user text that slipped past sanitising still could not run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.templatetags.static import static

# Every ES module of the page (paths under static/). tests/chat/test_views.py checks that
# each .js file under static/chat/ is listed here.
MODULES = (
    "chat/app.js",
    "chat/api.js",
    "chat/artifacts.js",
    "chat/attachments.js",
    "chat/cards.js",
    "chat/charts.js",
    "chat/composer.js",
    "chat/connection.js",
    "chat/context.js",
    "chat/conversation.js",
    "chat/copy.js",
    "chat/dom.js",
    "chat/drawer.js",
    "chat/fork.js",
    "chat/markdown.js",
    "chat/scrolling.js",
    "chat/search.js",
    "chat/session.js",
    "chat/shortcuts.js",
    "chat/sidebar.js",
    "chat/toolbar.js",
    "chat/toolslots.js",
    "chat/turns.js",
    "chat/usage.js",
    "chat/versions.js",
    "vendor/marked-18.2.1/marked.esm.js",
    "vendor/dompurify-3.4.18/purify.es.mjs",
    "vendor/highlight.js-11.12.0/highlight.min.js",
)


@dataclass(frozen=True)
class PageAssets:
    import_map: str
    import_map_hash: str

    def content_security_policy(self, websocket_origin: str) -> str:
        return "; ".join(
            (
                "default-src 'self'",
                f"script-src 'self' 'sha256-{self.import_map_hash}'",
                # base.html keeps its styles inline; styles cannot run script.
                "style-src 'self' 'unsafe-inline'",
                # Remote images are refused, so a reply cannot leak the chat through an image URL.
                "img-src 'self' data: blob:",
                # 'self' covers same-origin websockets in CSP 3; older browsers need the origin.
                f"connect-src 'self' {websocket_origin}",
                "frame-src 'self' blob:",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            )
        )


def _plain_url(path: str) -> str:
    """The URL a relative import resolves to (Django gives STATIC_URL its leading slash)."""
    return f"{settings.STATIC_URL}{path}"


def _import_map() -> str:
    imports = {_plain_url(path): static(path) for path in MODULES}
    # "<" escaped: the map is written into a <script> element as it is.
    return json.dumps({"imports": imports}, sort_keys=True).replace("<", "\\u003c")


@lru_cache(maxsize=1)
def page_assets() -> PageAssets:
    """Built once per process: the hashed names do not change while it runs."""
    import_map = _import_map()
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    return PageAssets(import_map=import_map, import_map_hash=digest)
