"""Starting a turn over HTTP: the same turn service as the websocket, streaming nothing.

For scripts: ``POST /api/v1/chats/<id>/messages/`` with a text (or the answer to the open
question) is taken exactly as the socket's ``user_message`` / ``interactive_response``
would be, and the run goes on in this server process; its events reach the chat's sockets
as usual, and the reply can be read from ``GET …/messages/`` once the chat is idle again.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from chat import protocol, runtime
from chat.api.serializers import TextField
from chat.errors import UserError
from chat.ids import parse_chat_id
from chat.runs import turns


class TurnRequestSerializer(serializers.Serializer):
    """A message (``text``, answering the open question if there is one), or one of the
    open question's options (``tool_use_id`` and ``choice``)."""

    text = TextField(required=False, allow_blank=True, trim_whitespace=False, help_text="What the user says.")
    client_id = TextField(
        required=False,
        max_length=100,
        help_text="An idempotency key: a request repeated with it is answered with what is stored.",
    )
    attachments = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        help_text="Ids of files uploaded to this chat (`POST …/attachments/`) to send with the text; "
        "with files the text may be empty.",
    )
    tool_use_id = TextField(required=False, help_text="The open question's id (with `choice`).")
    choice = TextField(required=False, trim_whitespace=False, help_text="One of the open question's options.")

    def validate_client_id(self, value: str) -> str:
        if not protocol.CLIENT_ID.match(value):
            raise serializers.ValidationError("1 to 100 letters, digits or . _ : -")
        return value

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("text" in data) == ("choice" in data or "tool_use_id" in data):
            raise serializers.ValidationError("Send either a text, or a tool_use_id with a choice.")
        if "text" in data:
            attachments = tuple(data.get("attachments", ()))
            if len(attachments) > settings.ATTACHMENT_MAX_PER_MESSAGE:
                raise UserError("too_many_attachments", f"A message can carry at most {settings.ATTACHMENT_MAX_PER_MESSAGE} files.")
            text = protocol.message_text(data["text"], attachments, max_chars=settings.CHAT_MAX_MESSAGE_CHARS)
            data["action"] = turns.SendMessage(text, data.get("client_id"), attachments)
        elif "choice" in data and "tool_use_id" in data:
            data["action"] = turns.Choose(data["tool_use_id"], data["choice"])
        else:
            raise serializers.ValidationError("A choice needs the tool_use_id of the question it answers.")
        return data


class StoredMessageSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    role = serializers.CharField()
    content = serializers.JSONField()
    finished = serializers.BooleanField()
    client_id = serializers.CharField(required=False)


class TurnSerializer(serializers.Serializer):
    started = serializers.BooleanField(help_text="False: the message was stored already (repeated client_id).")
    message = StoredMessageSerializer(help_text="What the turn stored, as stored.")


def start_turn(request: Request, chat_id: Any) -> Response:
    serializer = TurnRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    begun = async_to_sync(runtime.get().runs.start_turn)(
        request.user, parse_chat_id(chat_id), serializer.validated_data["action"]
    )
    if isinstance(begun, turns.Acknowledged):
        return Response({"started": False, "message": stored(begun.event)}, status=status.HTTP_200_OK)
    return Response({"started": True, "message": stored(begun.events[0])}, status=status.HTTP_202_ACCEPTED)


def stored(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "type"}
