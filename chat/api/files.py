"""Responses that are files: attachments with safe headers, streamed under WSGI and ASGI."""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request

from chat.downloads import DOWNLOAD_HEADERS, Download


class FileNegotiation(BaseContentNegotiation):
    """For views that answer with a file: the view decides the file's type, and an error
    is JSON whatever ``Accept`` or ``?format=`` (the export's own parameter) asks for."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _attachment(response: HttpResponse | StreamingHttpResponse, download: Download) -> Any:
    response["Content-Disposition"] = content_disposition_header(True, download.filename)
    for name, value in DOWNLOAD_HEADERS.items():
        response[name] = value
    return response


def file_response(content: str, download: Download) -> HttpResponse:
    return _attachment(HttpResponse(content, content_type=download.content_type), download)


async def _from_thread(pieces: Iterator[str]) -> AsyncIterator[str]:
    """Each step of a database-reading iterator, run in Django's sync thread."""
    sentinel = object()
    step = sync_to_async(next)
    while (piece := await step(pieces, sentinel)) is not sentinel:
        yield piece


def streamed_file_response(
    request: Request, pieces: Iterator[str], download: Download
) -> StreamingHttpResponse:
    """A file sent as it is produced. Under ASGI Django would read a sync iterator to its
    end before sending the first byte, so it gets an async one there."""
    content: Any = _from_thread(pieces) if isinstance(request._request, ASGIRequest) else pieces
    return _attachment(StreamingHttpResponse(content, content_type=download.content_type), download)
