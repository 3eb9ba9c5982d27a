"""The Django admin: inspect sessions, messages, paused loops and artifacts; unstick them.

Everything is read-only. The two writes are actions that go through ``chat.services``:
repairing a stuck session and dropping a session's cache entry. Pages stay fast on large
histories: list pages never touch the message table, and a session's messages are shown
a page at a time.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timesince import timesince

from chat import services
from chat.models import Artifact, ArtifactVersion, Attachment, ChatSession, LoopState, Message, Summary
from chat.storage import paths, tree

# Characters of one value shown on a page; the rest is summarised.
SHOWN_CHARACTERS = 5000


def pretty(value: Any) -> str:
    """A value as escaped, wrapped text: strings as written, anything else as indented JSON."""
    if value is None or value == "":
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > SHOWN_CHARACTERS:
        text = f"{text[:SHOWN_CHARACTERS]}\n… ({len(text) - SHOWN_CHARACTERS} more characters)"
    return format_html(
        '<pre style="white-space: pre-wrap; max-height: 24em; overflow: auto; margin: 0">{}</pre>', text
    )


def session_link(session_id: uuid.UUID, label: str) -> str:
    url = reverse("admin:chat_chatsession_change", args=[session_id])
    return format_html('<a href="{}">{}</a>', url, label)


class UUIDSearchMixin:
    """A search term that is a UUID finds that object; anything else searches as usual."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        try:
            return queryset.filter(pk=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


class ReadOnlyMixin:
    """Inspection only: changes go through the services (see the actions)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RepairActionsMixin:
    """Actions on sessions, allowed to staff who may change chat sessions."""

    def has_repair_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("chat.change_chatsession")

    def _repair(self, request: HttpRequest, session_ids: list[uuid.UUID]) -> None:
        repaired = sum(services.repair_stuck_session(sid) for sid in session_ids)
        self.message_user(  # type: ignore[attr-defined]
            request,
            f"Repaired {repaired} of {len(session_ids)} session(s): idle, question closed, "
            "open tool calls answered with an error.",
            messages.SUCCESS,
        )


# --- messages, shown inside their session ---------------------------------------------------


class MessagePageFormSet(BaseInlineFormSet):
    """One page of the messages the user sees (the active path): never the whole history.
    The versions left on other branches are in the chat's JSON export."""

    after = 0
    page_size = 50

    def get_queryset(self) -> QuerySet[Message]:
        if not hasattr(self, "_queryset"):
            segments = tree.segments_of(self.instance.pk, self.instance.active_branch)
            page = self.queryset.filter(paths.after_sequence(segments, self.after)).order_by("sequence")
            self._queryset = page[: self.page_size]
        return self._queryset


class MessageInline(ReadOnlyMixin, admin.TabularInline):
    model = Message
    formset = MessagePageFormSet
    template = "admin/chat/message_inline.html"
    page_size = 50
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "sequence",
        "branch",
        "role",
        "shown_content",
        "tokens",
        "finished",
        "shown_usage",
        "shown_context",
        "created_at",
    )

    class Media:
        css = {"all": ("site/admin.css",)}  # the table fits the page however long a value

    def get_formset(self, request: HttpRequest, obj: ChatSession | None = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        total = obj.last_sequence if obj else 0
        try:
            after = max(0, min(int(request.GET.get("messages_after", 0)), total - 1))
        except ValueError:
            after = 0
        size = self.page_size
        # Along the active path sequences run 1..last_sequence without gaps, so pages are
        # plain arithmetic.
        return type(
            "MessagePage",
            (formset,),
            {
                "after": after,
                "page_size": size,
                "total": total,
                "first_shown": after + 1 if total else 0,
                "last_shown": min(after + size, total),
                "previous_after": max(0, after - size) if after else None,
                "next_after": after + size if after + size < total else None,
                "last_page_after": max(0, total - size),
            },
        )

    @admin.display(description="content")
    def shown_content(self, message: Message) -> str:
        return pretty(message.content)

    @admin.display(description="usage")
    def shown_usage(self, message: Message) -> str:
        return pretty(message.usage) if message.role == "assistant" else "—"

    @admin.display(description="context")
    def shown_context(self, message: Message) -> str:
        return pretty(message.context) if message.role == "assistant" else "—"


class ArtifactInline(ReadOnlyMixin, admin.TabularInline):
    model = Artifact
    extra = 0
    show_change_link = True
    fields = readonly_fields = ("title", "kind", "status", "version", "updated_at")


class SummaryInline(ReadOnlyMixin, admin.TabularInline):
    """The chat's summaries (``chat.compaction``), every branch's, oldest first."""

    model = Summary
    fk_name = "session"
    extra = 0
    show_change_link = True
    ordering = ("created_at",)
    fields = readonly_fields = ("covers", "tokens", "model", "created_at")

    @admin.display(description="covers")
    def covers(self, summary: Summary) -> str:
        return f"messages {summary.first_sequence}–{summary.last_sequence} of the path through branch {summary.branch}"


# --- sessions -------------------------------------------------------------------------------


@admin.register(ChatSession)
class ChatSessionAdmin(UUIDSearchMixin, RepairActionsMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("shown_title", "owner", "state", "message_count", "total_tokens", "updated_at")
    list_filter = ("state", ("owner", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("owner",)
    search_fields = ("title",)
    search_help_text = "A title, or a session's full id."
    ordering = ("-updated_at",)
    actions = ("repair_sessions", "drop_cache")
    fields = readonly_fields = (
        "id",
        "owner",
        "title",
        "state",
        "paused_on",
        "message_count",
        "total_tokens",
        "last_sequence",
        "active_branch",
        "branch_count",
        "revision",
        "created_at",
        "updated_at",
    )
    inlines = (ArtifactInline, MessageInline, SummaryInline)

    @admin.display(description="title", ordering="title")
    def shown_title(self, session: ChatSession) -> str:
        return str(session)

    @admin.display(description="paused on")
    def paused_on(self, session: ChatSession) -> str:
        loop = getattr(session, "loop_state", None)
        if loop is None:
            return "—"
        url = reverse("admin:chat_loopstate_change", args=[loop.pk])
        return format_html('<a href="{}">{}: {}</a>', url, loop.tool_name, loop.question)

    @admin.action(permissions=["repair"], description="Repair stuck sessions (close the question, mark idle)")
    def repair_sessions(self, request: HttpRequest, queryset: QuerySet[ChatSession]) -> None:
        self._repair(request, list(queryset.values_list("pk", flat=True)))

    @admin.action(permissions=["repair"], description="Drop cache entries (refilled from the database)")
    def drop_cache(self, request: HttpRequest, queryset: QuerySet[ChatSession]) -> None:
        session_ids = list(queryset.values_list("pk", flat=True))
        for sid in session_ids:
            services.drop_session_cache(sid)
        self.message_user(request, f"Dropped the cache entries of {len(session_ids)} session(s).")


# --- paused loops ---------------------------------------------------------------------------


@admin.register(LoopState)
class LoopStateAdmin(RepairActionsMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("session_title", "owner", "tool_name", "question", "shown_options", "age")
    # The question opens the loop state's page: the first column is a link to the session
    # already, and a link inside the default row link came out empty.
    list_display_links = ("question",)
    list_select_related = ("session__owner",)
    list_filter = ("tool_name",)
    search_fields = ("question", "tool_name")
    ordering = ("created_at",)
    actions = ("clear_loop_states",)
    fields = readonly_fields = (
        "session_title",
        "tool_use_id",
        "tool_name",
        "step",
        "question",
        "shown_options",
        "shown_pending_results",
        "created_at",
        "age",
    )

    @admin.display(description="session")
    def session_title(self, loop: LoopState) -> str:
        return session_link(loop.session_id, str(loop.session))

    @admin.display(description="owner", ordering="session__owner__username")
    def owner(self, loop: LoopState) -> str:
        return loop.session.owner.get_username()

    @admin.display(description="options")
    def shown_options(self, loop: LoopState) -> str:
        return pretty(loop.options)

    @admin.display(description="results kept for the answer")
    def shown_pending_results(self, loop: LoopState) -> str:
        return pretty(loop.pending_results)

    @admin.display(description="age", ordering="created_at")
    def age(self, loop: LoopState) -> str:
        return timesince(loop.created_at)

    @admin.action(permissions=["repair"], description="Clear stuck loop states (repair their sessions)")
    def clear_loop_states(self, request: HttpRequest, queryset: QuerySet[LoopState]) -> None:
        self._repair(request, list(queryset.values_list("session_id", flat=True)))


# --- artifacts ------------------------------------------------------------------------------


class ArtifactVersionInline(ReadOnlyMixin, admin.TabularInline):
    model = ArtifactVersion
    extra = 0
    can_delete = False
    fields = readonly_fields = ("version", "title", "shown_content", "created_at")

    @admin.display(description="content")
    def shown_content(self, version: ArtifactVersion) -> str:
        return pretty(version.content)


@admin.register(Artifact)
class ArtifactAdmin(UUIDSearchMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("title", "kind", "status", "version", "session_title", "owner", "updated_at")
    list_filter = ("kind", "status")
    list_select_related = ("session__owner",)
    search_fields = ("title",)
    search_help_text = "A title, or an artifact's full id."
    ordering = ("-updated_at",)
    fields = readonly_fields = (
        "id",
        "session_title",
        "tool_use_id",
        "kind",
        "title",
        "status",
        "version",
        "shown_content",
        "created_at",
        "updated_at",
    )
    inlines = (ArtifactVersionInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Artifact]:
        # The list shows titles; the content is read only on an artifact's own page.
        return super().get_queryset(request).defer("content")

    @admin.display(description="session")
    def session_title(self, artifact: Artifact) -> str:
        return session_link(artifact.session_id, str(artifact.session))

    @admin.display(description="owner", ordering="session__owner__username")
    def owner(self, artifact: Artifact) -> str:
        return artifact.session.owner.get_username()

    @admin.display(description="content")
    def shown_content(self, artifact: Artifact) -> str:
        return pretty(artifact.content)


@admin.register(Attachment)
class AttachmentAdmin(UUIDSearchMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Files users uploaded, listed. Their content is served to their owner only (the API),
    so staff see what a file is, never the file."""

    list_display = ("name", "kind", "media_type", "shown_size", "shown_shape", "chat", "owner", "sent", "created_at")
    list_filter = ("kind", "sent")
    list_select_related = ("owner",)
    search_fields = ("name",)
    search_help_text = "A file name, or an attachment's full id."
    ordering = ("-created_at",)
    fields = readonly_fields = (
        "id", "name", "kind", "media_type", "shown_size", "shown_shape", "tokens", "excerpt", "chat", "owner",
        "sent", "created_at",
    )

    @admin.display(description="size", ordering="size")
    def shown_size(self, attachment: Attachment) -> str:
        return f"{attachment.size:,} bytes"

    @admin.display(description="pixels or pages")
    def shown_shape(self, attachment: Attachment) -> str:
        if attachment.kind == Attachment.Kind.IMAGE:
            return f"{attachment.width}×{attachment.height}"
        if attachment.kind == Attachment.Kind.PDF:
            return f"{attachment.pages} pages"
        return ""

    @admin.display(description="chat")
    def chat(self, attachment: Attachment) -> str:
        return session_link(attachment.chat_id, str(attachment.chat_id))


# --- summaries ------------------------------------------------------------------------------


@admin.register(Summary)
class SummaryAdmin(UUIDSearchMixin, ReadOnlyMixin, admin.ModelAdmin):
    """What the model is sent instead of a long chat's oldest messages (issue 14)."""

    list_display = ("__str__", "session_title", "last_sequence", "tokens", "model", "created_at")
    list_select_related = ("session",)
    search_fields = ("text",)
    search_help_text = "Words of a summary, or its full id."
    ordering = ("-created_at",)
    fields = readonly_fields = (
        "id",
        "session_title",
        "branch",
        "first_sequence",
        "last_sequence",
        "last_cumulative",
        "tokens",
        "model",
        "shown_usage",
        "previous",
        "shown_text",
        "created_at",
    )

    @admin.display(description="session")
    def session_title(self, summary: Summary) -> str:
        return session_link(summary.session_id, str(summary.session))

    @admin.display(description="usage")
    def shown_usage(self, summary: Summary) -> str:
        return pretty(summary.usage)

    @admin.display(description="text")
    def shown_text(self, summary: Summary) -> str:
        return pretty(summary.text)


# The usage ledger, quota overrides and the usage report live with the rest of usage.
from chat.usage import admin as usage_admin  # noqa: E402, F401
