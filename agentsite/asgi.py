"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agentsite import collector  # noqa: E402
from agentsite.websocket import SessionUser, SiteOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.runtime import RuntimeLifespan  # noqa: E402

application = RuntimeLifespan(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SiteOriginValidator(SessionUser(URLRouter(websocket_urlpatterns))),
        }
    )
)

# Everything a serving process builds at start is built: out of the collector's sight.
collector.tune()
