"""A database or Redis outage, wherever it surfaces, is a clear "try again", never a 500.

HTTP: the middleware answers any view that meets an outage with 503 and ``Retry-After``:
the API's JSON error shape under ``/api/``, the site's 503 page elsewhere. Websockets: an
outage while the handshake is authenticated (the session and user are read before the
consumer runs) accepts and closes the socket with 4503, which clients treat as "retry",
instead of failing the handshake with HTTP 500. Inside the consumer it handles its own.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from chat.db import database_failed
from chat.errors import OUTAGES

logger = logging.getLogger(__name__)

RETRY_AFTER = "5"
MESSAGE = "The service is briefly unavailable; nothing was lost. Try again in a moment."
CLOSE_UNAVAILABLE = 4503


class OutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OUTAGES):
            return None
        logger.warning("%s %s: service unavailable (%s)", request.method, request.path, exception)
        if isinstance(exception, DatabaseError):
            database_failed()
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"code": "unavailable", "message": MESSAGE}, status=503)
        else:
            response = render(request, "503.html", status=503)
        response["Retry-After"] = RETRY_AFTER
        return response


class WebsocketOutageGuard:
    """ASGI middleware around the websocket authentication."""

    def __init__(self, application: Any):
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        answered = False

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal answered
            answered = True
            await send(message)

        try:
            return await self.application(scope, receive, tracking)
        except OUTAGES as exc:
            if answered:
                raise
            logger.warning("websocket handshake on %s: service unavailable (%s)", scope.get("path"), exc)
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
