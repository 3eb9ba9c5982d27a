"""The API's views: parse and check the request, call a selector or a service, render.

Ownership is enforced below the views: ``services.get_session`` and
``selectors.get_artifact`` only ever find the caller's own objects.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from chat import downloads, export, selectors, services
from chat.api import turns as api_turns
from chat.api.files import FileNegotiation, file_response, streamed_file_response
from chat.api.pagination import MAX_SEQUENCE, ArtifactPagination, ChatPagination, parse_whole_number
from chat.api.schema import AUTH_ERRORS, errors, file_responses
from chat.api.serializers import (
    ArtifactDetailSerializer,
    ArtifactSerializer,
    ChatCreateSerializer,
    ChatRenameSerializer,
    ChatSerializer,
    ExportSerializer,
    MessagePageSerializer,
    MessageSerializer,
    TokenSerializer,
)
from chat.api.throttles import TokenThrottle

MESSAGES_DEFAULT_LIMIT = 100
MESSAGES_MAX_LIMIT = 500


# --- chats ----------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="Your chats, newest activity first",
        description="Titles and counters only: message bodies are never read for this list.",
        responses={200: ChatSerializer(many=True), **errors(400, *AUTH_ERRORS)},
    )
)
class ChatList(generics.ListAPIView):
    serializer_class = ChatSerializer
    pagination_class = ChatPagination

    def get_queryset(self) -> Any:
        return selectors.sessions_of(self.request.user)

    @extend_schema(
        summary="Start a chat",
        request=ChatCreateSerializer,
        responses={201: ChatSerializer, **errors(400, *AUTH_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        serializer = ChatCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = services.create_session(request.user, title=serializer.validated_data.get("title", ""))
        location = reverse("api:chat-detail", kwargs={"chat_id": session.pk})
        return Response(
            ChatSerializer(session).data, status=status.HTTP_201_CREATED, headers={"Location": location}
        )


class ChatDetail(APIView):
    @extend_schema(summary="One chat", responses={200: ChatSerializer, **errors(404, *AUTH_ERRORS)})
    def get(self, request: Request, chat_id: Any) -> Response:
        return Response(ChatSerializer(services.get_session(request.user, chat_id)).data)

    @extend_schema(
        summary="Rename a chat",
        request=ChatRenameSerializer,
        responses={200: ChatSerializer, **errors(400, 404, *AUTH_ERRORS)},
    )
    def patch(self, request: Request, chat_id: Any) -> Response:
        serializer = ChatRenameSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "title" not in serializer.validated_data:  # nothing to change
            return Response(ChatSerializer(services.get_session(request.user, chat_id)).data)
        session = services.rename_session(request.user, chat_id, serializer.validated_data["title"])
        return Response(ChatSerializer(session).data)

    @extend_schema(
        summary="Delete a chat, its messages and artifacts",
        responses={204: None, **errors(404, *AUTH_ERRORS)},
    )
    def delete(self, request: Request, chat_id: Any) -> Response:
        services.delete_session(request.user, chat_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- messages -------------------------------------------------------------------------------


class MessageList(APIView):
    @extend_schema(
        summary="A chat's messages, in order, as stored",
        description=(
            "Messages with a sequence above `after`, oldest first, content blocks complete with "
            "the display, interactive and artifact data the UI rebuilds the conversation from. "
            "Follow `next` (or pass `next_after` as `after`) for the next page."
        ),
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE, "default": 0},
                description="Return messages after this sequence.",
            ),
            OpenApiParameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MESSAGES_MAX_LIMIT,
                    "default": MESSAGES_DEFAULT_LIMIT,
                },
                description="At most this many messages.",
            ),
        ],
        responses={200: MessagePageSerializer, **errors(400, 404, *AUTH_ERRORS)},
    )
    def get(self, request: Request, chat_id: Any) -> Response:
        query = request.query_params
        after = parse_whole_number("after", query.get("after"), default=0, minimum=0, maximum=MAX_SEQUENCE)
        limit = parse_whole_number(
            "limit", query.get("limit"), default=MESSAGES_DEFAULT_LIMIT, minimum=1, maximum=MESSAGES_MAX_LIMIT
        )
        session = services.get_session(request.user, chat_id)
        page = selectors.messages_after(session, after=after, limit=limit)
        # Sequences run 1..last_sequence, so the page is the last one when it reaches it.
        next_after = page[-1].sequence if page and page[-1].sequence < session.last_sequence else None
        next_url = None
        if next_after is not None:
            next_url = replace_query_param(request.build_absolute_uri(), "after", next_after)
        versions = selectors.versions_of(session, [{"id": m.pk, "branch": m.branch, "sequence": m.sequence} for m in page])
        return Response(
            {
                "results": MessageSerializer(page, many=True, context={"versions": versions}).data,
                "next": next_url,
                "next_after": next_after,
            }
        )

    @extend_schema(
        summary="Send a message, or answer the open question: a run answers it",
        description=(
            "Taken exactly as a websocket `user_message` (a `text`; while a question is open it "
            "answers it) or `interactive_response` (`tool_use_id` and `choice`). The run goes on "
            "in the background: 202 with the stored message; read the reply from this list when "
            "the chat's `state` is idle again (or watch the chat's websocket). A repeated "
            "`client_id` is answered 200 with what was stored. 409 `busy` while a reply is being "
            "written, 429 `rate_limited` past the per-user message rate, 429 `quota_exceeded` "
            "past your usage limit (`resets_at` says when it resets), 409 `quota_busy` close to it "
            "while another reply of yours is being written."
        ),
        request=api_turns.TurnRequestSerializer,
        responses={
            202: api_turns.TurnSerializer,
            200: api_turns.TurnSerializer,
            **errors(400, 404, 409, *AUTH_ERRORS),
        },
    )
    def post(self, request: Request, chat_id: Any) -> Response:
        return api_turns.start_turn(request, chat_id)


# --- artifacts ------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="A chat's artifacts, oldest first",
        responses={200: ArtifactSerializer(many=True), **errors(400, 404, *AUTH_ERRORS)},
    )
)
class ChatArtifactList(generics.ListAPIView):
    serializer_class = ArtifactSerializer
    pagination_class = ArtifactPagination

    def get_queryset(self) -> Any:
        session = services.get_session(self.request.user, self.kwargs["chat_id"])
        # A list shows what each artifact is; its content comes with the artifact itself.
        return selectors.artifacts_of(session).defer("content")


class ArtifactDetail(APIView):
    @extend_schema(
        summary="An artifact with its content and earlier versions",
        responses={200: ArtifactDetailSerializer, **errors(404, *AUTH_ERRORS)},
    )
    def get(self, request: Request, artifact_id: Any) -> Response:
        return Response(ArtifactDetailSerializer(selectors.get_artifact(request.user, artifact_id)).data)


class ArtifactDownload(APIView):
    content_negotiation_class = FileNegotiation

    @extend_schema(
        summary="Download an artifact as a file",
        description=(
            "Named from the artifact's title and kind (markdown `.md`, code by language, "
            "mermaid `.mmd`, svg `.svg`, html `.html`). Always an attachment, with `nosniff` "
            "and a sandboxing Content-Security-Policy: an SVG or HTML file cannot run script "
            "in this site's origin."
        ),
        responses={
            **file_responses("text/markdown", "text/plain", "text/html", "image/svg+xml"),
            **errors(404, *AUTH_ERRORS),
        },
    )
    def get(self, request: Request, artifact_id: Any) -> HttpResponse:
        artifact = selectors.get_artifact(request.user, artifact_id)
        return file_response(artifact.content, downloads.artifact_download(artifact))


# --- export ---------------------------------------------------------------------------------


class ChatExport(APIView):
    content_negotiation_class = FileNegotiation

    @extend_schema(
        summary="Download a whole chat",
        description=(
            "`json`: the chat, its artifacts and every message exactly as stored. `markdown`: a "
            "readable transcript with tool calls and results as labelled blocks."
        ),
        parameters=[OpenApiParameter("format", str, enum=list(export.FORMATS), default="json")],
        responses={
            (200, "application/json"): ExportSerializer,
            **file_responses("text/markdown"),
            **errors(400, 404, *AUTH_ERRORS),
        },
    )
    def get(self, request: Request, chat_id: Any) -> StreamingHttpResponse:
        export_format = request.query_params.get("format", "json")
        if export_format not in export.FORMATS:
            raise serializers.ValidationError({"format": f"Must be one of: {', '.join(export.FORMATS)}."})
        session = services.get_session(request.user, chat_id)
        return streamed_file_response(
            request, export.chunks(session, export_format), downloads.export_download(session, export_format)
        )


# --- tokens ---------------------------------------------------------------------------------


class AuthTokenView(APIView):
    """Your API token: exchange a username and password for it, or revoke it."""

    throttle_classes = [TokenThrottle]

    def get_permissions(self) -> list[Any]:
        return [AllowAny()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(
        summary="Get your API token",
        request=AuthTokenSerializer,
        responses={200: TokenSerializer, **errors(400, *AUTH_ERRORS)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(summary="Revoke your API token", responses={204: None, **errors(*AUTH_ERRORS)})
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
