"""Attachments over HTTP: upload to a chat (multipart), list, read, download, remove.

Files are uploaded before the message that sends them (``user_message`` with
``attachments: [ids]``), so a large file never travels inside a websocket frame.
"""

from __future__ import annotations

from typing import Any, Iterator

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import downloads
from chat.api.files import FileNegotiation, streamed_file_response
from chat.api.schema import AUTH_ERRORS, errors, file_responses
from chat.attachments import service
from chat.attachments.inspect import too_large
from chat.ids import parse_chat_id
from chat.models import Attachment, attachment_storage

# Multipart framing around the file: boundaries and part headers.
MULTIPART_OVERHEAD = 64 * 1024
CHUNK = 256 * 1024


class SizeLimit(FileUploadHandler):
    """Stops an upload as soon as it passes the size limit, before the rest is read."""

    def __init__(self, request: Any = None):
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.ATTACHMENT_MAX_BYTES:
            raise too_large(settings.ATTACHMENT_MAX_BYTES)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class AttachmentSerializer(serializers.ModelSerializer):
    download = serializers.SerializerMethodField(help_text="Where the owner downloads the file.")

    class Meta:
        model = Attachment
        fields = [
            "id", "chat_id", "name", "kind", "media_type", "size", "width", "height", "pages",
            "tokens", "sent", "created_at", "download",
        ]
        read_only_fields = fields

    def get_download(self, attachment: Attachment) -> str:
        return reverse("api:attachment-download", kwargs={"attachment_id": attachment.pk})


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="The file: an image (PNG, JPEG, GIF, WebP), a PDF or a text file.")


class ChatAttachments(APIView):
    parser_classes = [MultiPartParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            length = request.META.get("CONTENT_LENGTH") or "0"
            if length.isdigit() and int(length) > settings.ATTACHMENT_MAX_BYTES + MULTIPART_OVERHEAD:
                raise too_large(settings.ATTACHMENT_MAX_BYTES)
            request._request.upload_handlers.insert(0, SizeLimit(request._request))

    @extend_schema(
        summary="Your files of a chat, oldest first",
        responses={200: AttachmentSerializer(many=True), **errors(404, *AUTH_ERRORS)},
    )
    def get(self, request: Request, chat_id: Any) -> Response:
        attachments = service.of_chat(request.user, parse_chat_id(chat_id))
        return Response(AttachmentSerializer(attachments, many=True).data)

    @extend_schema(
        summary="Upload a file to a chat, to send with a message",
        description=(
            "`multipart/form-data` with one `file`. Checked by its content (not its name): images "
            "(PNG, JPEG, GIF, WebP; scaled down to a long edge of 1568 px), PDFs (not encrypted, "
            "at most `ATTACHMENT_MAX_PDF_PAGES` pages) and UTF-8 text files. Then send it: a "
            "websocket `user_message` (or `POST …/messages/`) with `attachments: [id]`. The chat "
            "need not exist yet (a new chat starts with its first message). Errors: 400 "
            "`wrong_type`, `unsupported_type`, `invalid_image`, `image_too_large`, "
            "`invalid_pdf`, `encrypted_pdf`, `too_many_pages`, `too_many_attachments`, "
            "`empty_file`; 413 `file_too_large`. Nothing is stored when a file is refused."
        ),
        request={"multipart/form-data": UploadSerializer},
        responses={201: AttachmentSerializer, **errors(400, 404, 413, 415, *AUTH_ERRORS)},
    )
    def post(self, request: Request, chat_id: Any) -> Response:
        chat = parse_chat_id(chat_id)
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        attachment = service.upload(request.user, chat, serializer.validated_data["file"])
        location = reverse("api:attachment-detail", kwargs={"attachment_id": attachment.pk})
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED, headers={"Location": location})


class AttachmentDetail(APIView):
    @extend_schema(summary="One of your files", responses={200: AttachmentSerializer, **errors(404, *AUTH_ERRORS)})
    def get(self, request: Request, attachment_id: Any) -> Response:
        return Response(AttachmentSerializer(service.get(request.user, attachment_id)).data)

    @extend_schema(
        summary="Remove a file not sent yet",
        description="A file sent with a message is part of the chat: 409 `attachment_sent` (delete the chat instead).",
        responses={204: None, **errors(404, 409, *AUTH_ERRORS)},
    )
    def delete(self, request: Request, attachment_id: Any) -> Response:
        service.remove(request.user, attachment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _chunks(name: str) -> Iterator[bytes]:
    with attachment_storage().open(name, "rb") as file:
        yield from file.chunks(CHUNK)


class AttachmentDownload(APIView):
    content_negotiation_class = FileNegotiation

    @extend_schema(
        summary="Download one of your files",
        description=(
            "Only to its owner; always an attachment, with `nosniff` and a sandboxing "
            "Content-Security-Policy. Text files are served as `text/plain`, so nothing is "
            "ever rendered as HTML or SVG."
        ),
        responses={
            **file_responses("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"),
            **errors(404, *AUTH_ERRORS),
        },
    )
    def get(self, request: Request, attachment_id: Any) -> Any:
        attachment = service.get(request.user, attachment_id)
        content_type = "text/plain; charset=utf-8" if attachment.kind == Attachment.Kind.TEXT else attachment.media_type
        response = streamed_file_response(
            request, _chunks(attachment.file.name), downloads.Download(attachment.name, content_type)
        )
        response["Content-Length"] = str(attachment.size)
        response["Cache-Control"] = "private, max-age=3600"
        return response

