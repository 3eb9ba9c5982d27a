"""The one writer of sessions (and, through HybridStorage, of messages).

The consumer, the API and the template views call these functions; none of them touches
the ORM for writes directly. Reads that several of them need live here too.
"""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from chat.errors import NotFound, UserError
from chat.models import ChatSession
from chat.storage import get_storage

TITLE_MAX_LENGTH = 200


def get_session(owner: Any, session_id: Any) -> ChatSession:
    """The owner's session; someone else's and a missing one are the same 404."""
    try:
        sid = uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound("No such chat.") from None
    session = ChatSession.objects.filter(id=sid, owner_id=owner.pk).first()
    if session is None:
        raise NotFound("No such chat.")
    return session


def clean_title(title: Any) -> str:
    if not isinstance(title, str):
        raise UserError("invalid_title", "The title must be text.")
    title = " ".join(title.split())
    if not title:
        raise UserError("invalid_title", "The title cannot be empty.")
    if len(title) > TITLE_MAX_LENGTH:
        raise UserError("invalid_title", f"The title can be at most {TITLE_MAX_LENGTH} characters.")
    return title


def create_session(owner: Any, *, title: str = "") -> ChatSession:
    return ChatSession.objects.create(owner=owner, title=clean_title(title) if title else "")


def rename_session(owner: Any, session_id: Any, title: Any) -> ChatSession:
    session = get_session(owner, session_id)
    session.title = clean_title(title)
    session.save(update_fields=["title", "updated_at"])
    return session


def delete_session(owner: Any, session_id: Any) -> None:
    session = get_session(owner, session_id)
    sid = session.pk
    with transaction.atomic():
        session.delete()
    # The cache entry would expire on its own; dropping it frees the memory now.
    async_to_sync(get_storage().drop_cache)(sid)


def set_title(session_id: Any, title: str, *, replace: bool = False) -> bool:
    """Give a session a generated title; False if it has one already (unless ``replace``).

    A generated title never overwrites one the owner chose meanwhile: the check and the
    write are one UPDATE.
    """
    title = " ".join(title.split())[:TITLE_MAX_LENGTH]
    if not title:
        raise UserError("invalid_title", "The title cannot be empty.")
    sessions = ChatSession.objects.filter(id=session_id)
    if not replace:
        sessions = sessions.filter(title="")
    return sessions.update(title=title, updated_at=timezone.now()) > 0


aset_title = database_sync_to_async(set_title)


def check_owner(owner: Any, session_id: Any) -> None:
    """Raise NotFound if the session belongs to someone else.

    An id with no session yet passes: storing the first message creates it for ``owner``.
    """
    try:
        sid = uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound("No such chat.") from None
    if ChatSession.objects.filter(id=sid).exclude(owner_id=owner.pk).exists():
        raise NotFound("No such chat.")


acheck_owner = database_sync_to_async(check_owner)
