"""Uploads, the owner's files, removal, and the check a message's attachments pass.

An upload is checked (``inspect``) before anything is stored: a refusal stores nothing.
Django's upload handlers have streamed the request body to a temporary file already (or
memory, under 2.5 MB); the storage moves or streams that file, never a second copy in
memory.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import unicodedata
import uuid
from typing import Any, Sequence

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone

from chat import selectors
from chat.attachments import blocks
from chat.attachments.inspect import inspect, too_large
from chat.errors import NotFound, UserError
from chat.models import Attachment, ChatSession, attachment_storage

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = 200
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
}


def clean_name(name: str | None) -> str:
    """The file's own name, without any directory, control or format characters."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")).strip()
    if len(base) > NAME_MAX_LENGTH:
        stem, dot, extension = base.rpartition(".")
        base = (stem[: NAME_MAX_LENGTH - len(extension) - 1] + dot + extension) if dot and len(extension) < 10 else base[:NAME_MAX_LENGTH]
    return base or "file"


def _chat_check(owner: Any, chat_id: uuid.UUID) -> None:
    """A chat that exists must be the owner's; one that does not yet is theirs to start."""
    if ChatSession.objects.filter(id=chat_id).exclude(owner_id=owner.pk).exists():
        raise NotFound("No such chat.")


def upload(owner: Any, chat_id: uuid.UUID, uploaded: File) -> Attachment:
    """Check ``uploaded`` and store it as an attachment of ``chat_id``, not yet sent."""
    _chat_check(owner, chat_id)
    # The owner's uploads that were never sent (a tab closed before sending) go after a while.
    cutoff = timezone.now() - dt.timedelta(hours=settings.ATTACHMENT_UNSENT_HOURS)
    Attachment.objects.filter(owner_id=owner.pk, sent=False, created_at__lt=cutoff).delete()
    limit = settings.ATTACHMENT_MAX_PER_MESSAGE
    if Attachment.objects.filter(owner_id=owner.pk, chat_id=chat_id, sent=False).count() >= limit:
        raise UserError(
            "too_many_attachments", f"A message can carry at most {limit} files; remove one or send these first."
        )
    name = clean_name(uploaded.name)
    if uploaded.size is None or uploaded.size > settings.ATTACHMENT_MAX_BYTES:
        raise too_large(settings.ATTACHMENT_MAX_BYTES)
    found = inspect(uploaded, name, uploaded.size)
    content: File = ContentFile(found.replacement) if found.replacement is not None else uploaded
    content.seek(0)
    attachment = Attachment(
        id=uuid.uuid4(),
        owner_id=owner.pk,
        chat_id=chat_id,
        name=name,
        kind=found.kind,
        media_type=found.media_type,
        size=content.size,
        width=found.width,
        height=found.height,
        pages=found.pages,
        excerpt=found.excerpt,
        tokens=found.tokens,
    )
    path = f"{owner.pk}/{chat_id}/{attachment.pk}{_EXTENSIONS[found.media_type]}"
    attachment.file.save(path, content, save=False)
    try:
        attachment.save(force_insert=True)
    except BaseException:
        attachment_storage().delete(attachment.file.name)
        raise
    return attachment


def get(owner: Any, attachment_id: Any) -> Attachment:
    """The owner's attachment; someone else's is the same 404 as a missing one."""
    return selectors.owned(Attachment.objects.filter(owner_id=owner.pk), attachment_id, "No such attachment.")


def of_chat(owner: Any, chat_id: uuid.UUID) -> list[Attachment]:
    return list(Attachment.objects.filter(owner_id=owner.pk, chat_id=chat_id).order_by("created_at"))


def remove(owner: Any, attachment_id: Any) -> None:
    """Remove an upload not sent yet (a sent one is part of the history)."""
    attachment = get(owner, attachment_id)
    if attachment.sent:
        raise UserError("attachment_sent", "This file was sent with a message; delete the chat to remove it.", status=409)
    attachment.delete()


def delete_for_chat(chat_id: uuid.UUID) -> int:
    """Delete a chat's attachments (their files go once the deletion committed)."""
    deleted, _ = Attachment.objects.filter(chat_id=chat_id).delete()
    return deleted


def delete_file_after_commit(sender: Any, instance: Attachment, **kwargs: Any) -> None:
    """``post_delete`` of an Attachment, however it was deleted (a chat, a user, the
    admin): its file goes once the deletion committed; rolled back, the file stays."""
    name = instance.file.name

    def delete_file() -> None:
        try:
            attachment_storage().delete(name)
        except Exception:  # the row is gone; a file left behind is logged, not fatal
            logger.exception("could not delete attachment file %s", name)

    transaction.on_commit(delete_file)


def claim(owner_id: int, chat_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """The content blocks of a message's attachments, marked sent. Inside the turn's
    transaction: a refusal (someone else's upload, another chat's, too many, too big) rolls
    the whole turn back."""
    if not ids:
        return []
    limit = settings.ATTACHMENT_MAX_PER_MESSAGE
    if len(ids) > limit:
        raise UserError("too_many_attachments", f"A message can carry at most {limit} files.")
    if len(set(ids)) != len(ids):
        raise UserError("invalid_field", "'attachments' lists a file twice.")
    found = {a.pk: a for a in Attachment.objects.select_for_update().filter(id__in=ids, owner_id=owner_id)}
    for attachment_id in ids:
        attachment = found.get(attachment_id)
        if attachment is None:
            raise UserError("unknown_attachment", f"Attachment {attachment_id} is not one of your uploads.")
        if attachment.chat_id != chat_id:
            raise UserError("wrong_chat", f"{attachment.name} was uploaded to another chat; upload it to this one.")
    total = sum(found[i].size for i in ids)
    if total > settings.ATTACHMENT_MAX_MESSAGE_BYTES:
        raise UserError(
            "attachments_too_large",
            f"A message's files can be at most {settings.ATTACHMENT_MAX_MESSAGE_BYTES // (1024 * 1024)} MB together.",
            status=413,
        )
    Attachment.objects.filter(id__in=[i for i in ids if not found[i].sent]).update(sent=True)
    return [blocks.stored_block(found[i]) for i in ids]
