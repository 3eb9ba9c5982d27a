"""One error shape for the whole API: ``{"code": ..., "message": ...}``.

``chat.errors.UserError`` (raised by services and selectors) and DRF's own exceptions
(validation, authentication, throttling, parsing) are all rendered here, so a client
handles exactly one shape. Anything else is a bug and stays a 500.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.errors import UserError

API_PREFIX = "/api/"


def _flatten(detail: Any, field: str = "") -> list[str]:
    """Validation details (nested dicts and lists) as ``field: message`` lines."""
    if isinstance(detail, dict):
        return [
            line
            for key, value in detail.items()
            for line in _flatten(value, key if key != "non_field_errors" else field)
        ]
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, field)]
    return [f"{field}: {detail}" if field else str(detail)]


def _code(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid"
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, UserError):
        return Response(exc.as_dict(), status=exc.status)
    # DRF's handler turns Http404 and PermissionDenied into its own exceptions and adds the
    # WWW-Authenticate and Retry-After headers; only the body is replaced.
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if not isinstance(exc, exceptions.APIException):
        exc = exceptions.NotFound() if response.status_code == 404 else exceptions.PermissionDenied()
    message = " ".join(_flatten(exc.detail)) or "The request is not valid."
    response.data = {"code": _code(exc), "message": message}
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> Any:
    """Django's 404 handler: JSON in the API's shape under /api/, the site's 404.html elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"code": "not_found", "message": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
