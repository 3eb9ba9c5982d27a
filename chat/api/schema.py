"""Pieces of the OpenAPI description the views share: error responses and file bodies."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse

from chat.api.serializers import ErrorSerializer

_ERRORS = {
    400: "The request is not valid; `message` says why.",
    401: "Not signed in, or the token is not valid.",
    403: "Signed in, but not allowed (a session request without its CSRF token).",
    404: "No such object, or it belongs to someone else.",
    413: "Too large: the file (or the message's files together) is over the size limit.",
    415: "Not a multipart/form-data request.",
    409: "Not now: the chat is busy with a reply (try again when it ends), or not in the state this needs.",
    429: "Too many requests; retry after the `Retry-After` header's seconds.",
}
# What any authenticated operation may answer besides its own errors.
AUTH_ERRORS = (401, 403, 429)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses, all in the one ``{code, message}`` shape."""
    return {code: OpenApiResponse(ErrorSerializer, description=_ERRORS[code]) for code in codes}


def file_responses(*media_types: str) -> dict[Any, OpenApiResponse]:
    """A 200 that is a file of one of ``media_types``."""
    return {
        (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The file, as an attachment.")
        for media_type in media_types
    }
