"""A message's versions: edit, regenerate, list, switch, fork (``chat.storage.tree``)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import protocol, runtime, selectors, services
from chat import text as user_text
from chat.api import turns as api_turns
from chat.api.schema import AUTH_ERRORS, errors
from chat.api.serializers import ChatSerializer, TextField
from chat.ids import parse_chat_id
from chat.runs import turns
from chat.storage import tree


class EditSerializer(serializers.Serializer):
    text = TextField(trim_whitespace=False, help_text="The message's new text.")
    client_id = TextField(required=False, max_length=100, help_text="An idempotency key, as for a new message.")

    def validate_text(self, value: str) -> str:
        return user_text.check_message(value, max_chars=settings.CHAT_MAX_MESSAGE_CHARS)

    def validate_client_id(self, value: str) -> str:
        if not protocol.CLIENT_ID.match(value):
            raise serializers.ValidationError("1 to 100 letters, digits or . _ : -")
        return value


class VersionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    branch = serializers.IntegerField()
    sequence = serializers.IntegerField()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished = serializers.BooleanField()
    active = serializers.BooleanField(help_text="On the conversation shown now.")


class VersionListSerializer(serializers.Serializer):
    results = VersionSerializer(many=True)


class SwitchedSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(help_text="The conversation shown changed from this message on.")
    chat = ChatSerializer()


def _start(request: Request, chat_id: Any, action: turns.Action) -> Response:
    begun = async_to_sync(runtime.get().runs.start_turn)(request.user, parse_chat_id(chat_id), action)
    if isinstance(begun, turns.Acknowledged):
        return Response({"started": False, "message": api_turns.stored(begun.event)})
    first = next((event for event in begun.events if event["type"] == "message"), None)
    return Response({"started": True, "message": api_turns.stored(first) if first else None}, status=status.HTTP_202_ACCEPTED)


class EditMessage(APIView):
    @extend_schema(
        summary="Edit a message you typed: a new version, answered on a new branch",
        description=(
            "The old version and everything after it stay a branch of their own (list them with "
            "`versions/`, show one with `switch/`). 409 `busy` while a reply is being written."
        ),
        request=EditSerializer,
        responses={202: api_turns.TurnSerializer, 200: api_turns.TurnSerializer, **errors(400, 404, 409, *AUTH_ERRORS)},
    )
    def post(self, request: Request, chat_id: Any, message_id: Any) -> Response:
        serializer = EditSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return _start(request, chat_id, turns.Edit(message_id, data["text"], data.get("client_id")))


class RegenerateMessage(APIView):
    @extend_schema(
        summary="Write a reply again: a new version, on a new branch",
        request=None,
        responses={202: api_turns.TurnSerializer, **errors(400, 404, 409, *AUTH_ERRORS)},
    )
    def post(self, request: Request, chat_id: Any, message_id: Any) -> Response:
        return _start(request, chat_id, turns.Regenerate(message_id))


class MessageVersions(APIView):
    @extend_schema(
        summary="The versions of a message, oldest first",
        description="Every message at the same place after the same previous message (edits, regenerated replies).",
        responses={200: VersionListSerializer, **errors(404, *AUTH_ERRORS)},
    )
    def get(self, request: Request, chat_id: Any, message_id: Any) -> Response:
        session = services.get_session(request.user, chat_id)
        message = tree.locate(session.pk, message_id)
        found = selectors.versions_of(session, [_as_row(message)]).get(message.id)
        ids = found.ids if found else [message.id]
        rows = {row["id"]: row for row in selectors.messages_by_id(session, ids)}
        active = {m.pk for m in selectors.messages_after(session, after=message.sequence - 1, limit=1)}
        results = [{**rows[i], "active": i in active} for i in ids if i in rows]
        return Response({"results": VersionSerializer(results, many=True).data})


class SwitchVersion(APIView):
    @extend_schema(
        summary="Show another version of a message",
        description=(
            "The conversation shown becomes the path through this message, down to the version "
            "chosen last below it; the chat's sockets get a `path` event. 409 while a reply is "
            "being written or a question waits for its answer."
        ),
        request=None,
        responses={200: SwitchedSerializer, **errors(404, 409, *AUTH_ERRORS)},
    )
    def post(self, request: Request, chat_id: Any, message_id: Any) -> Response:
        sid = parse_chat_id(chat_id)
        event = async_to_sync(runtime.get().runs.switch)(request.user, sid, message_id)
        session = services.get_session(request.user, sid)
        return Response({"sequence": event["sequence"], "chat": ChatSerializer(session).data})


class ForkChat(APIView):
    @extend_schema(
        summary="Start a new chat from a message",
        description=(
            "The new chat holds a copy of the conversation up to and including this message; its "
            'title is the source\'s with " (fork)", or " (fork 2)" and so on for a fork of a fork (untitled if the source is).'
        ),
        request=None,
        responses={201: ChatSerializer, **errors(404, *AUTH_ERRORS)},
    )
    def post(self, request: Request, chat_id: Any, message_id: Any) -> Response:
        fork = services.fork_session(request.user, chat_id, message_id)
        location = reverse("api:chat-detail", kwargs={"chat_id": fork.pk})
        return Response(ChatSerializer(fork).data, status=status.HTTP_201_CREATED, headers={"Location": location})


def _as_row(message: tree.Located) -> dict[str, Any]:
    return {"id": message.id, "branch": message.branch, "sequence": message.sequence}
