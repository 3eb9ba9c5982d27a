"""``GET /api/v1/search/?q=``: search your chats (``chat.search``)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from chat.api.pagination import parse_whole_number
from chat.api.schema import AUTH_ERRORS, errors
from chat.search import query as search_query
from chat.search import results

DEFAULT_LIMIT = 20
MAX_LIMIT = 50


class FragmentSerializer(serializers.Serializer):
    text = serializers.CharField()
    match = serializers.BooleanField(help_text="One of the words searched for.")


class HitChatSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField(allow_blank=True)


class HitMessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    branch = serializers.IntegerField()
    sequence = serializers.IntegerField(help_text="Its place on its conversation (1 for the first message).")
    role = serializers.ChoiceField(choices=["user", "assistant"])
    created_at = serializers.DateTimeField()
    on_active_path = serializers.BooleanField(
        help_text="On the conversation the chat shows now; if not, `switch/` to it to show it (another version)."
    )


class HitSerializer(serializers.Serializer):
    chat = HitChatSerializer()
    message = HitMessageSerializer(allow_null=True, help_text="The message found; null when the chat's title matched.")
    snippet = FragmentSerializer(many=True, help_text="The matching passage as text fragments, the matched words marked.")


class SearchPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page of hits, or null.")
    results = HitSerializer(many=True)


def encode_cursor(position: results.Position) -> str:
    raw = json.dumps({"s": position.score, "k": str(position.key)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None) -> results.Position | None:
    if raw is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        score, key = data["s"], uuid.UUID(data["k"])
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(score)
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ValidationError({"cursor": "This cursor is not valid."}) from None
    return results.Position(float(score), key)


class Search(APIView):
    @extend_schema(
        summary="Search your chats",
        description=(
            "Messages (what you typed, the replies' text, questions with the answer chosen) and "
            "chat titles matching `q`, best first: relevance mixed with recency (a month older "
            "needs twice the relevance). Syntax as web search engines: all words must appear, "
            "the last word also as the start of a word (`kiw` finds kiwis), "
            '`"a phrase"` as written, `-word` must not, `or` between words accepts either. '
            "Text with no word to look for finds nothing; no text is a syntax error. The newest "
            f"{results.CANDIDATES:,} matching messages are ranked: refine a query that finds more."
        ),
        parameters=[
            OpenApiParameter("q", str, required=True, description=f"What to look for (1 to {search_query.MAX_LENGTH} characters)."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                description="At most this many hits.",
            ),
            OpenApiParameter("cursor", str, description="The page after this one: from a page's `next`."),
        ],
        responses={200: SearchPageSerializer, **errors(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        parsed = search_query.parse(params.get("q"))
        limit = parse_whole_number("limit", params.get("limit"), default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        page = results.search(request.user, parsed, after=decode_cursor(params.get("cursor")), limit=limit)
        next_url = None
        if page.next is not None:
            next_url = replace_query_param(request.build_absolute_uri(), "cursor", encode_cursor(page.next))
        return Response({"next": next_url, "results": HitSerializer(page.hits, many=True).data})
