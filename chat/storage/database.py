"""L2: the durable store, through the Django ORM.

Synchronous on purpose: ``HybridStorage`` runs these functions in Django's database thread.
Every write happens inside one transaction that starts by updating the session row, so
concurrent writers of one session queue on that row lock and sequences, cumulative token
sums and the revision are allocated by the database, never read-then-written in Python.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from chat import history
from chat.errors import NotFound
from chat.models import ChatSession, LoopState, Message

StoredMessage = dict[str, Any]

_FIELDS = (
    "id",
    "sequence",
    "role",
    "content",
    "tokens",
    "tokens_estimated",
    "cumulative_tokens",
    "finished",
    "client_id",
    "usage",
    "context",
    "created_at",
)
_UNSET: Any = object()


@dataclass(frozen=True)
class Snapshot:
    """A consistent read: the messages as of ``revision``."""

    revision: int
    messages: list[StoredMessage]
    # True when ``messages`` begins at the session's first message (or there is none).
    complete: bool


@dataclass(frozen=True)
class Saved:
    revision: int
    messages: list[StoredMessage]


@dataclass(frozen=True)
class Updated:
    revision: int
    message: StoredMessage
    # Change in the message's tokens; every later message's cumulative sum moved by it.
    token_delta: int
    previous_cumulative: int


def _as_stored(row: dict[str, Any]) -> StoredMessage:
    return {
        **{name: row[name] for name in _FIELDS},
        "id": str(row["id"]),
        "created_at": row["created_at"].isoformat(),
    }


def _message_as_stored(message: Message) -> StoredMessage:
    return _as_stored({name: getattr(message, name) for name in _FIELDS})


def _db_value(field_name: str, model: type, value: Any) -> Any:
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


@dataclass(frozen=True)
class RunClaim:
    """Claim the session for a run in the same statement that allocates the turn's messages."""

    run_id: uuid.UUID
    worker_id: uuid.UUID


def _allocate(session_id: uuid.UUID, count: int, tokens: int, claim: RunClaim | None) -> tuple[int, int, int] | None:
    """Reserve ``count`` sequences and add ``tokens`` in one statement; None if no such session.

    The UPDATE both allocates and takes the session's row lock until the transaction ends;
    with ``claim`` it also marks the session running for that run. Django's ORM cannot
    return updated values, hence the SQL.
    """
    table = connection.ops.quote_name(ChatSession._meta.db_table)
    now = _db_value("updated_at", ChatSession, timezone.now())
    claiming, params = "", []
    if claim is not None:
        claiming = ", state = %s, run_id = %s, run_worker = %s"
        params = [
            ChatSession.State.RUNNING,
            _db_value("run_id", ChatSession, claim.run_id),
            _db_value("run_worker", ChatSession, claim.worker_id),
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_sequence = last_sequence + %s,"
            " message_count = message_count + %s, total_tokens = total_tokens + %s,"
            f" revision = revision + 1, updated_at = %s{claiming}"
            " WHERE id = %s"
            " RETURNING last_sequence, total_tokens, revision",
            [count, count, tokens, now, *params, _db_value("id", ChatSession, session_id)],
        )
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def claim_run(session_id: uuid.UUID, claim: RunClaim) -> None:
    """Mark the session running for ``claim``'s run, storing nothing (the caller holds its lock)."""
    ChatSession.objects.filter(id=session_id).update(
        state=ChatSession.State.RUNNING,
        run_id=claim.run_id,
        run_worker=claim.worker_id,
        updated_at=timezone.now(),
    )


def _bump_revision(session_id: uuid.UUID, token_delta: int = 0) -> tuple[int, int] | None:
    """Lock the session row for an update of its messages, adding ``token_delta`` to its
    total; returns (revision, last_sequence)."""
    table = connection.ops.quote_name(ChatSession._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET revision = revision + 1, total_tokens = total_tokens + %s, updated_at = %s"
            " WHERE id = %s RETURNING revision, last_sequence",
            [
                token_delta,
                _db_value("updated_at", ChatSession, timezone.now()),
                _db_value("id", ChatSession, session_id),
            ],
        )
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def message_by_client_id(session_id: uuid.UUID, client_id: str) -> StoredMessage | None:
    row = Message.objects.filter(session_id=session_id, client_id=client_id).values(*_FIELDS).first()
    return None if row is None else _as_stored(row)


def _prepare(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise ValueError(f"role must be 'user' or 'assistant', got {role!r}")
    content = message.get("content")
    history.check_content(content)
    tokens = message.get("tokens")
    return {
        "role": role,
        "content": content,
        "tokens": max(1, int(tokens)) if tokens is not None else history.estimate_tokens(content),
        "tokens_estimated": tokens is None,
        "finished": bool(message.get("finished", True)),
        "client_id": message.get("client_id") or None,
        "usage": message.get("usage"),
        "context": message.get("context"),
    }


def save_messages(session_id: uuid.UUID, messages: Iterable[dict[str, Any]], *, claim: RunClaim | None = None) -> Saved:
    """Append messages to an existing session, all or nothing (NotFound if there is none).

    With ``claim`` the session is marked running in the same statement: the turn service
    (``chat.runs.turns``) decided, holding the session's lock, that the run may start. A
    ``client_id`` stored already raises IntegrityError (the unique constraint decides,
    so two sends racing cannot both store it); the turn service answers that case.
    """
    prepared = [_prepare(m) for m in messages]
    if not prepared:
        raise ValueError("save_messages needs at least one message")
    count, tokens = len(prepared), sum(m["tokens"] for m in prepared)
    # No savepoint: inside a caller's transaction (a turn), any failure aborts all of it.
    with transaction.atomic(savepoint=False):
        allocated = _allocate(session_id, count, tokens, claim)
        if allocated is None:
            raise NotFound("No such chat.")
        last_sequence, total_tokens, revision = allocated
        sequence, cumulative = last_sequence - count, total_tokens - tokens
        rows = []
        for m in prepared:
            sequence += 1
            cumulative += m["tokens"]
            rows.append(Message(session_id=session_id, sequence=sequence, cumulative_tokens=cumulative, **m))
        Message.objects.bulk_create(rows)
    return Saved(revision=revision, messages=[_message_as_stored(row) for row in rows])


class _Stale(Exception):
    """The caller's copy of the message no longer matches the stored row."""


def update_message(
    session_id: uuid.UUID,
    sequence: int,
    *,
    known: StoredMessage | None = None,
    content: Any = _UNSET,
    tokens: int | None = None,
    finished: bool | None = None,
    usage: Any = _UNSET,
    context: Any = _UNSET,
) -> Updated:
    """Change a stored message in place (a streamed reply completing, a token count corrected).

    New content without a token count is re-estimated; a changed count shifts the cumulative
    sums of every later message, in the same transaction. ``known``, the caller's copy of
    the row (the run writing a reply has it), saves reading it: two statements then, and
    if the copy turns out stale the row is read after all.
    """
    if content is not _UNSET:
        history.check_content(content)
    changes = {"content": content, "tokens": tokens, "finished": finished, "usage": usage, "context": context}
    if known is not None:
        try:
            with transaction.atomic():
                return _update(session_id, sequence, known, changes)
        except _Stale:
            pass
    with transaction.atomic():
        locked = _bump_revision(session_id)
        if locked is None:
            raise NotFound("No such chat.")
        row = Message.objects.filter(session_id=session_id, sequence=sequence).values(*_FIELDS).first()
        if row is None:
            raise NotFound(f"No message {sequence} in this chat.")
        return _update(session_id, sequence, _as_stored(row), changes, locked=locked)


def _update(
    session_id: uuid.UUID,
    sequence: int,
    current: StoredMessage,
    changes: dict[str, Any],
    locked: tuple[int, int] | None = None,
) -> Updated:
    # content, usage, context: _UNSET leaves them; finished: None leaves it.
    new = {name: value for name, value in changes.items() if value is not _UNSET and name not in ("tokens", "finished")}
    if changes["finished"] is not None:
        new["finished"] = changes["finished"]
    if changes["tokens"] is not None:
        new["tokens"], new["tokens_estimated"] = max(1, int(changes["tokens"])), False
    elif "content" in new and current["tokens_estimated"]:
        new["tokens"] = history.estimate_tokens(new["content"])
    delta = new.get("tokens", current["tokens"]) - current["tokens"]
    if locked is None:
        locked = _bump_revision(session_id, delta)
        if locked is None:
            raise NotFound("No such chat.")
    elif delta:
        ChatSession.objects.filter(id=session_id).update(total_tokens=F("total_tokens") + delta)
    revision, last_sequence = locked
    updated = Message.objects.filter(
        session_id=session_id,
        sequence=sequence,
        tokens=current["tokens"],
        cumulative_tokens=current["cumulative_tokens"],
    ).update(**new, cumulative_tokens=F("cumulative_tokens") + delta)
    if not updated:
        raise _Stale()
    if delta and sequence < last_sequence:
        Message.objects.filter(session_id=session_id, sequence__gt=sequence).update(
            cumulative_tokens=F("cumulative_tokens") + delta
        )
    return Updated(
        revision=revision,
        message={**current, **new, "cumulative_tokens": current["cumulative_tokens"] + delta},
        token_delta=delta,
        previous_cumulative=current["cumulative_tokens"],
    )


def remove_last(session_id: uuid.UUID, sequence: int) -> bool:
    """Delete message ``sequence`` if it is the session's newest; the counters follow."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update()
            .filter(session_id=session_id, sequence=sequence, session__last_sequence=sequence)
            .values("tokens")
            .first()
        )
        if message is None:
            return False
        Message.objects.filter(session_id=session_id, sequence=sequence).delete()
        ChatSession.objects.filter(id=session_id).update(
            last_sequence=F("last_sequence") - 1,
            message_count=F("message_count") - 1,
            total_tokens=F("total_tokens") - message["tokens"],
            revision=F("revision") + 1,
            updated_at=timezone.now(),
        )
    return True


def _revision(session_id: uuid.UUID) -> int:
    found = ChatSession.objects.filter(id=session_id).values_list("revision", flat=True).first()
    return found or 0


def _snapshot(session_id: uuid.UUID, rows: list[dict[str, Any]]) -> Snapshot:
    if not rows:
        # No rows at all means the session has no messages, so any revision read now
        # describes the same (empty) state.
        return Snapshot(revision=_revision(session_id), messages=[], complete=True)
    revision = rows[0]["_revision"]
    return Snapshot(
        revision=revision,
        messages=[_as_stored(row) for row in rows],
        complete=rows[0]["sequence"] == 1,
    )


def load_within_budget(session_id: uuid.UUID, token_budget: int) -> Snapshot:
    """The newest messages covering ``token_budget``: what fits, plus the one before it.

    One statement, so the revision and the rows come from one snapshot. It reads the
    messages whose cumulative sum lies above (total - budget): a range on the
    (session, cumulative_tokens) index whose length is the answer plus at most one row.
    That extra first row (the one that does not fit) is kept so a cache filled from this
    snapshot can prove it covers the budget; ``history.fit_budget`` drops it.
    """
    if token_budget <= 0:
        raise ValueError("token_budget must be positive")
    rows = list(
        Message.objects.filter(
            session_id=session_id,
            cumulative_tokens__gt=F("session__total_tokens") - token_budget,
        )
        .order_by("cumulative_tokens")
        .values(*_FIELDS, _revision=F("session__revision"))
    )
    return _snapshot(session_id, rows)


def load_recent(session_id: uuid.UUID, limit: int) -> Snapshot:
    """The newest ``limit`` messages, oldest first; an index range on (session, sequence)."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    rows = list(
        Message.objects.filter(session_id=session_id, sequence__gt=F("session__last_sequence") - limit)
        .order_by("sequence")
        .values(*_FIELDS, _revision=F("session__revision"))
    )
    return _snapshot(session_id, rows)


# --- loop state ---------------------------------------------------------------------------
# Kept only in L2: it is read once per connect or resume, and losing it would strand a
# paused conversation.

_LOOP_FIELDS = ("tool_use_id", "tool_name", "step", "question", "options", "pending_results")


def save_loop_state(session_id: uuid.UUID, state: dict[str, Any]) -> None:
    missing = [name for name in ("tool_use_id", "tool_name", "question") if not state.get(name)]
    if missing:
        raise ValueError(f"loop state needs {', '.join(missing)}")
    values = {name: state[name] for name in _LOOP_FIELDS if name in state}
    if not ChatSession.objects.filter(id=session_id).exists():
        raise NotFound("No such chat.")
    LoopState.objects.update_or_create(session_id=session_id, defaults=values)


def load_loop_state(session_id: uuid.UUID) -> dict[str, Any] | None:
    row = LoopState.objects.filter(session_id=session_id).values(*_LOOP_FIELDS, "created_at").first()
    if row is None:
        return None
    return {**row, "created_at": row["created_at"].isoformat()}


def clear_loop_state(session_id: uuid.UUID) -> bool:
    deleted, _ = LoopState.objects.filter(session_id=session_id).delete()
    return deleted > 0
