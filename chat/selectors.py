"""Reads that the API, the template views and the admin share.

Writes live in ``chat.services``. Lookups by id are scoped by owner, so someone else's
chat or artifact is found exactly as often as a missing one: never. The rest take a
session the caller already holds (from ``services.get_session``).
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator

from django.db.models import QuerySet

from chat.errors import NotFound
from chat.models import Artifact, ChatSession, Message

# What a chat list shows. Message bodies live in another table and are never joined.
SESSION_LIST_FIELDS = ("id", "title", "state", "message_count", "total_tokens", "created_at", "updated_at")


def sessions_of(owner: Any) -> QuerySet[ChatSession]:
    """The owner's chats, newest activity first."""
    sessions = ChatSession.objects.filter(owner_id=owner.pk).only(*SESSION_LIST_FIELDS)
    return sessions.order_by("-updated_at", "-id")


def messages_after(session: ChatSession, *, after: int, limit: int) -> list[Message]:
    """Up to ``limit`` messages with a sequence above ``after``, in order: one index range."""
    page = Message.objects.filter(session_id=session.pk, sequence__gt=after).order_by("sequence")
    return list(page[:limit])


def iter_messages(session: ChatSession, *, chunk: int = 500) -> Iterator[Message]:
    """Every message of a session in order, read ``chunk`` at a time so memory stays flat."""
    after = 0
    while True:
        page = messages_after(session, after=after, limit=chunk)
        yield from page
        if len(page) < chunk:
            return
        after = page[-1].sequence


def artifacts_of(session: ChatSession) -> QuerySet[Artifact]:
    """A chat's artifacts in the order they were made."""
    return Artifact.objects.filter(session_id=session.pk).order_by("created_at", "id")


def get_artifact(owner: Any, artifact_id: Any) -> Artifact:
    """The owner's artifact; someone else's is the same 404."""
    try:
        aid = uuid.UUID(str(artifact_id))
    except ValueError:
        raise NotFound("No such artifact.") from None
    artifact = Artifact.objects.filter(id=aid, session__owner_id=owner.pk).first()
    if artifact is None:
        raise NotFound("No such artifact.")
    return artifact
