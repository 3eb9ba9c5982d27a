"""The project's ASGI application plus one bare consumer, for bench/websocket.py.

``/ws/bench/bare/<count>/<size>/`` accepts and sends ``count`` text_delta frames shaped
like the real ones, as fast as it can: the floor any websocket stack on this server has.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from agentsite.asgi import application as site  # noqa: E402


class BareConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        count = int(self.scope["url_route"]["kwargs"]["count"])
        size = int(self.scope["url_route"]["kwargs"]["size"])
        for index in range(1, count + 1):
            text = f"{index:07d} ".ljust(size, "x")[:size]
            await self.send(text_data='{"id":%d,"type":"text_delta","text":"%s","sequence":2}' % (index, text))


bare = URLRouter([re_path(r"^ws/bench/bare/(?P<count>\d+)/(?P<size>\d+)/$", BareConsumer.as_asgi())])


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"].startswith("/ws/bench/"):
        return await bare(scope, receive, send)
    return await site(scope, receive, send)
