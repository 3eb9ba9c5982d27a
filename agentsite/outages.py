"""A database or Redis outage, wherever it surfaces, is a clear "try again", never a 500.

HTTP: the middleware answers any view that meets an outage with 503 and ``Retry-After``:
the API's JSON error shape under ``/api/``, the site's 503 page elsewhere. (Websockets: the
handshake's session read marks an outage for the consumer, which closes with 4503; see
``agentsite.websocket``.)
"""

from __future__ import annotations

import logging
from typing import Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from chat.db import database_failed
from chat.errors import OUTAGES

logger = logging.getLogger(__name__)

RETRY_AFTER = "5"
MESSAGE = "The service is briefly unavailable; nothing was lost. Try again in a moment."


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
