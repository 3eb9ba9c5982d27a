"""Reads that the API, the template views and the admin share.

Writes live in ``chat.services``. Lookups by id are scoped by owner, so someone else's
chat or artifact is found exactly as often as a missing one: never. The rest take a
session the caller already holds (from ``services.get_session``).
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator, TypeVar

from django.db.models import Model, Q, QuerySet

from chat.errors import NotFound
from chat.models import Artifact, ChatSession, Message
from chat.storage import paths, tree

Row = TypeVar("Row", bound=Model)

# What a chat list shows. Message bodies live in another table and are never joined.
SESSION_LIST_FIELDS = ("id", "title", "state", "message_count", "total_tokens", "created_at", "updated_at")


def sessions_of(owner: Any) -> QuerySet[ChatSession]:
    """The owner's chats, newest activity first."""
    sessions = ChatSession.objects.filter(owner_id=owner.pk).only(*SESSION_LIST_FIELDS)
    return sessions.order_by("-updated_at", "-id")


def messages_after(session: ChatSession, *, after: int, limit: int) -> list[Message]:
    """Up to ``limit`` messages of the active path with a sequence above ``after``, in
    order: one index range per branch segment of the path."""
    segments = tree.segments_of(session.pk, session.active_branch)
    page = Message.objects.filter(paths.after_sequence(segments, after), session_id=session.pk).order_by("sequence")
    return list(page[:limit])


def iter_messages(session: ChatSession, *, chunk: int = 500) -> Iterator[Message]:
    """Every message of the active path in order, read ``chunk`` at a time so memory stays flat."""
    after = 0
    while True:
        page = messages_after(session, after=after, limit=chunk)
        yield from page
        if len(page) < chunk:
            return
        after = page[-1].sequence


def iter_all_messages(session: ChatSession, *, chunk: int = 500) -> Iterator[Message]:
    """Every message of every branch, by branch then sequence, ``chunk`` at a time."""
    branch, after = 0, 0
    while True:
        page = list(
            Message.objects.filter(session_id=session.pk)
            .filter(Q(branch=branch, sequence__gt=after) | Q(branch__gt=branch))
            .order_by("branch", "sequence")[:chunk]
        )
        yield from page
        if len(page) < chunk:
            return
        branch, after = page[-1].branch, page[-1].sequence


def versions_of(session: ChatSession, messages: list[dict[str, Any]]) -> dict[Any, tree.Versions]:
    """The versions of each of ``messages`` (id, branch, sequence) that has others (see
    ``chat.storage.tree``); nothing to read in a chat that never forked."""
    if not session.branch_count:
        return {}
    return tree.versions(session.pk, messages)


def messages_by_id(session: ChatSession, ids: list[Any]) -> list[dict[str, Any]]:
    """What a list of versions shows of each message."""
    return list(
        Message.objects.filter(session_id=session.pk, id__in=ids).values(
            "id", "branch", "sequence", "role", "created_at", "finished"
        )
    )


def artifacts_of(session: ChatSession) -> QuerySet[Artifact]:
    """A chat's artifacts in the order they were made."""
    return Artifact.objects.filter(session_id=session.pk).order_by("created_at", "id")


def owned(rows: QuerySet[Row], row_id: Any, missing: str) -> Row:
    """The row of ``rows`` (already narrowed to its owner's) with this id: a malformed id,
    a missing row and someone else's are the same 404, saying ``missing``."""
    try:
        pk = uuid.UUID(str(row_id))
    except ValueError:
        raise NotFound(missing) from None
    row = rows.filter(pk=pk).first()
    if row is None:
        raise NotFound(missing)
    return row


def get_artifact(owner: Any, artifact_id: Any) -> Artifact:
    """The owner's artifact; someone else's is the same 404."""
    return owned(Artifact.objects.filter(session__owner_id=owner.pk), artifact_id, "No such artifact.")
