"""A chat's context: what the next prompt holds against the window, and compaction on
demand (``chat.compaction``)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import compaction, runtime, services
from chat.api.schema import AUTH_ERRORS, errors
from chat.ids import parse_chat_id
from chat.runs import turns


class SummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    branch = serializers.IntegerField(help_text="The summary holds for paths through message (branch, last_sequence).")
    first_sequence = serializers.IntegerField()
    last_sequence = serializers.IntegerField(help_text="The model is sent the summary instead of messages up to this one.")
    tokens = serializers.IntegerField()
    model = serializers.CharField(help_text="The model that wrote it.")
    text = serializers.CharField()
    created_at = serializers.DateTimeField()


class ContextSerializer(serializers.Serializer):
    window = serializers.IntegerField(help_text="The history's token budget per model call (CHAT_CONTEXT_TOKENS).")
    compact_at = serializers.IntegerField(allow_null=True, help_text="Past this many tokens the chat is compacted.")
    prompt_tokens = serializers.IntegerField(help_text="The next prompt's history: the summary and what follows it.")
    path_tokens = serializers.IntegerField(help_text="Every message of the conversation shown, as stored.")
    summary = SummarySerializer(allow_null=True, help_text="The summary the next prompt begins with.")


class StartedSerializer(serializers.Serializer):
    started = serializers.BooleanField()


class ChatContext(APIView):
    @extend_schema(
        summary="What the next prompt holds, against the context window",
        responses={200: ContextSerializer, **errors(404, *AUTH_ERRORS)},
    )
    def get(self, request: Request, chat_id: Any) -> Response:
        session = services.get_session(request.user, chat_id)
        state = async_to_sync(compaction.context_state)(session.pk, request.user, runtime.get().storage)
        return Response(ContextSerializer(state).data)


class CompactChat(APIView):
    @extend_schema(
        summary="Compact the chat now: everything before the newest turn is summarised",
        description=(
            "A run of its own (its `summary` and `complete` events reach the chat's sockets). "
            "409 `busy` while a reply is being written, `awaiting_input` while a question waits, "
            "`nothing_to_compact` for a chat of one turn."
        ),
        request=None,
        responses={202: StartedSerializer, **errors(404, 409, *AUTH_ERRORS)},
    )
    def post(self, request: Request, chat_id: Any) -> Response:
        async_to_sync(runtime.get().runs.start_turn)(request.user, parse_chat_id(chat_id), turns.Compact())
        return Response({"started": True}, status=status.HTTP_202_ACCEPTED)
