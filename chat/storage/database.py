"""L2: the durable store, through the Django ORM.

Synchronous on purpose: ``HybridStorage`` runs these functions in Django's database thread.
Every write happens inside one transaction that starts by updating the session row, so
concurrent writers of one session queue on that row lock and sequences, cumulative token
sums and the revision are allocated by the database, never read-then-written in Python.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from django.db import OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from chat import history
from chat.errors import NotFound
from chat.models import Branch, ChatSession, LoopState, Message, Summary
from chat.storage import paths, summaries
from chat.storage.paths import Segment
from chat.storage.tree import segments_of
from chat.usage.ledger import Charge, with_charge
from chat.usage.quotas import may_have_limits_sql

StoredMessage = dict[str, Any]

_FIELDS = (
    "id",
    "branch",
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
    # The revision before this one was a fork (``tree.fork``) that cut the active path back
    # to just before these messages: an edit or a regenerated reply. A cache holding the
    # path as it was before the fork can keep what the two paths share.
    forked: bool = False


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


def _db_value(field_name: str, model: type, value: Any) -> Any:
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


@dataclass(frozen=True)
class RunClaim:
    """Claim the session for a run in the same statement that allocates the turn's messages."""

    run_id: uuid.UUID
    worker_id: uuid.UUID


def _allocate(
    session_id: uuid.UUID, count: int, tokens: int, claim: RunClaim | None, charge: Charge | None = None
) -> tuple[int, int, int, int] | None:
    """Reserve ``count`` sequences at the end of the active path and add ``tokens`` in one
    statement; (last sequence, total tokens, revision, active branch), None if no session.

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
    sql, params = with_charge(
        f"UPDATE {table} SET last_sequence = last_sequence + %s,"
        " message_count = message_count + %s, total_tokens = total_tokens + %s,"
        f" revision = revision + 1, updated_at = %s{claiming}"
        " WHERE id = %s"
        " RETURNING last_sequence, total_tokens, revision, active_branch",
        [count, count, tokens, now, *params, _db_value("id", ChatSession, session_id)],
        charge,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@dataclass(frozen=True)
class Locked:
    owner_id: int
    state: str
    worker: uuid.UUID | None
    # A usage limit may apply to the owner (``chat.usage.quotas.may_have_limits_sql``).
    may_have_limits: bool
    # The newest summary of the active path (``ChatSession.path_summary``), or None.
    summary: dict[str, Any] | None = None


def lock_session(session_id: uuid.UUID) -> Locked | None:
    """The session's owner, state and run worker, locked until the transaction ends; None
    if there is none. SQL of our own: the turn's hottest read. (SQLite has no FOR UPDATE:
    its IMMEDIATE transactions lock the whole database at BEGIN.) It also says whether a
    usage limit may apply to the owner, so that a turn with none costs no statement more,
    and joins the active path's summary (``chat.storage.summaries``), which the run begins
    its prompt with: read here, with the lock, it is the one no other process can change
    before the run ends."""
    quote = connection.ops.quote_name
    table, summary_table = quote(ChatSession._meta.db_table), quote(Summary._meta.db_table)
    lock = f" FOR UPDATE OF {table}" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {table}.owner_id, {table}.state, {table}.run_worker,"
            f" {may_have_limits_sql(f'{table}.owner_id')}, {summaries.columns(summary_table)}"
            f" FROM {table} LEFT JOIN {summary_table} ON {summary_table}.id = {table}.path_summary"
            f" WHERE {table}.id = %s{lock}",
            [_db_value("id", ChatSession, session_id)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    worker = row[2]
    return Locked(
        int(row[0]),
        row[1],
        worker if worker is None or isinstance(worker, uuid.UUID) else uuid.UUID(worker),
        bool(row[3]),
        summaries.from_columns(row[4:]),
    )


def end_run(session_id: uuid.UUID, run_id: uuid.UUID, state: str) -> bool:
    """Release the run's claim with the session's next state; False if it was no longer the
    run's. SQL of our own: once per turn."""
    table = connection.ops.quote_name(ChatSession._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, run_id = NULL, run_worker = NULL, updated_at = %s WHERE id = %s AND run_id = %s",
            [
                state,
                _db_value("updated_at", ChatSession, timezone.now()),
                _db_value("id", ChatSession, session_id),
                _db_value("run_id", ChatSession, run_id),
            ],
        )
        return cursor.rowcount > 0


def claim_run(session_id: uuid.UUID, claim: RunClaim) -> None:
    """Mark the session running for ``claim``'s run, storing nothing (the caller holds its lock)."""
    ChatSession.objects.filter(id=session_id).update(
        state=ChatSession.State.RUNNING,
        run_id=claim.run_id,
        run_worker=claim.worker_id,
        updated_at=timezone.now(),
    )


def _bump_revision(session_id: uuid.UUID, token_delta: int = 0, charge: Charge | None = None) -> tuple[int, int, int] | None:
    """Lock the session row for an update of its messages, adding ``token_delta`` to its
    total (and writing ``charge`` to the usage ledger); returns (revision, last_sequence,
    branch_count)."""
    table = connection.ops.quote_name(ChatSession._meta.db_table)
    sql, params = with_charge(
        f"UPDATE {table} SET revision = revision + 1, total_tokens = total_tokens + %s, updated_at = %s"
        " WHERE id = %s RETURNING revision, last_sequence, branch_count",
        [
            token_delta,
            _db_value("updated_at", ChatSession, timezone.now()),
            _db_value("id", ChatSession, session_id),
        ],
        charge,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


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


def save_messages(
    session_id: uuid.UUID, messages: Iterable[dict[str, Any]], *, claim: RunClaim | None = None, charge: Charge | None = None
) -> Saved:
    """Append messages to an existing session, all or nothing (NotFound if there is none).

    With ``claim`` the session is marked running in the same statement: the turn service
    (``chat.runs.turns``) decided, holding the session's lock, that the run may start. A
    ``client_id`` stored already raises IntegrityError (the unique constraint decides,
    so two sends racing cannot both store it); the turn service answers that case.
    ``charge``: the model call that wrote them, for the usage ledger (``chat.usage.ledger``).
    """
    prepared = [_prepare(m) for m in messages]
    if not prepared:
        raise ValueError("save_messages needs at least one message")
    count, tokens = len(prepared), sum(m["tokens"] for m in prepared)
    # No savepoint: inside a caller's transaction (a turn), any failure aborts all of it.
    with transaction.atomic(savepoint=False):
        allocated = _allocate(session_id, count, tokens, claim, charge)
        if allocated is None:
            raise NotFound("No such chat.")
        last_sequence, total_tokens, revision, branch = allocated
        sequence, cumulative = last_sequence - count, total_tokens - tokens
        now = timezone.now()
        rows = []
        for m in prepared:
            sequence += 1
            cumulative += m["tokens"]
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "session_id": session_id,
                    "branch": branch,
                    "sequence": sequence,
                    "cumulative_tokens": cumulative,
                    "created_at": now,
                    **m,
                }
            )
        _insert(rows)
    return Saved(revision=revision, messages=[_as_stored(row) for row in rows])


# Message columns as the INSERT of ``save_messages`` writes them, with their fields (for
# each value's database form). SQL of our own: the ORM's bulk_create builds model
# instances and compiles the statement on every call, which is most of a save's CPU.
_INSERTED = tuple(
    (name, Message._meta.get_field("session" if name == "session_id" else name))
    for name in ("id", "session_id", *_FIELDS[1:])
)


def _insert(rows: list[dict[str, Any]]) -> None:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for _, field in _INSERTED)
    values = ", ".join(["(" + ", ".join(["%s"] * len(_INSERTED)) + ")"] * len(rows))
    params = [field.get_db_prep_value(row[name], connection) for row in rows for name, field in _INSERTED]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) VALUES {values}", params)


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
    charge: Charge | None = None,
) -> Updated:
    """Change a stored message in place (a streamed reply completing, a token count corrected).

    ``sequence`` is the message's place on the active path. New content without a token
    count is re-estimated; a changed count shifts the cumulative sums of every later message
    of its branch, in the same transaction (a message with other versions after it, on
    other branches, keeps its count: only the reply being written changes it). ``known``,
    the caller's copy of the row (the run writing a reply has it), saves reading it: two
    statements then, and if the copy turns out stale the row is read after all.
    ``charge``: the model call that wrote the change, for the usage ledger, in the same
    transaction (``chat.usage.ledger``).
    """
    if content is not _UNSET:
        history.check_content(content)
    changes = {"content": content, "tokens": tokens, "finished": finished, "usage": usage, "context": context}
    if known is not None:
        try:
            with transaction.atomic():
                return _update(session_id, sequence, known, changes, charge=charge)
        except _Stale:
            pass
    with transaction.atomic():
        locked = _bump_revision(session_id, charge=charge)
        if locked is None:
            raise NotFound("No such chat.")
        active = ChatSession.objects.values_list("active_branch", flat=True).get(id=session_id)
        segments = segments_of(session_id, active)
        try:
            branch = paths.holder(segments, sequence)
        except ValueError:
            raise NotFound(f"No message {sequence} in this chat.") from None
        row = Message.objects.filter(session_id=session_id, branch=branch, sequence=sequence).values(*_FIELDS).first()
        if row is None:
            raise NotFound(f"No message {sequence} in this chat.")
        return _update(session_id, sequence, _as_stored(row), changes, locked=locked)


def _update(
    session_id: uuid.UUID,
    sequence: int,
    current: StoredMessage,
    changes: dict[str, Any],
    locked: tuple[int, int, int] | None = None,
    charge: Charge | None = None,
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
    branch = current["branch"]
    if locked is None:
        locked = _bump_revision(session_id, delta, charge)
        if locked is None:
            raise NotFound("No such chat.")
    elif delta:
        ChatSession.objects.filter(id=session_id).update(total_tokens=F("total_tokens") + delta)
    revision, last_sequence, branch_count = locked
    if (
        delta
        and branch_count
        and Branch.objects.filter(session_id=session_id, parent=branch, fork_sequence__gte=sequence).exists()
    ):
        raise ValueError("a message with other versions after it keeps its token count")
    if not _update_row(session_id, branch, sequence, current, new, delta):
        raise _Stale()
    if delta and sequence < last_sequence:
        Message.objects.filter(session_id=session_id, branch=branch, sequence__gt=sequence).update(
            cumulative_tokens=F("cumulative_tokens") + delta
        )
    return Updated(
        revision=revision,
        message={**current, **new, "cumulative_tokens": current["cumulative_tokens"] + delta},
        token_delta=delta,
        previous_cumulative=current["cumulative_tokens"],
    )


def _update_row(
    session_id: uuid.UUID, branch: int, sequence: int, current: StoredMessage, new: dict[str, Any], delta: int
) -> bool:
    """Write ``new`` into the message if it is still ``current`` (its tokens and running
    sum); False if it is not. SQL of our own, like the insert: once per reply."""
    quote = connection.ops.quote_name
    fields = [Message._meta.get_field(name) for name in new]
    assignments = "".join(f"{quote(field.column)} = %s, " for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Message._meta.db_table)} SET {assignments}cumulative_tokens = cumulative_tokens + %s"
            " WHERE session_id = %s AND branch = %s AND sequence = %s AND tokens = %s AND cumulative_tokens = %s",
            [
                *(field.get_db_prep_value(new[field.name], connection) for field in fields),
                delta,
                _db_value("session", Message, session_id),
                branch,
                sequence,
                current["tokens"],
                current["cumulative_tokens"],
            ],
        )
        return cursor.rowcount > 0


def remove_last(session_id: uuid.UUID, sequence: int) -> bool:
    """Delete message ``sequence`` if it is the newest of the active path; the counters
    follow. The first message of a forked branch stays: it is a version of its own (a
    regenerated reply that failed), and the branch would be left empty."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update()
            .filter(
                session_id=session_id,
                branch=F("session__active_branch"),
                sequence=sequence,
                session__last_sequence=sequence,
            )
            .values("id", "branch", "tokens")
            .first()
        )
        if message is None:
            return False
        if message["branch"] and not Message.objects.filter(
            session_id=session_id, branch=message["branch"], sequence=sequence - 1
        ).exists():
            return False
        Message.objects.filter(id=message["id"]).delete()
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


# What a path read joins from the session: its revision and where its active path ends.
_PATH_STATE = {
    "_revision": F("session__revision"),
    "_branch": F("session__active_branch"),
    "_total": F("session__total_tokens"),
    "_last": F("session__last_sequence"),
}


def _path_read(
    session_id: uuid.UUID,
    key: str,
    newest: Q,
    reaches_back: Callable[[dict[str, Any]], bool],
    earlier: Callable[[tuple[Segment, ...], dict[str, Any]], Q],
) -> Snapshot:
    """Messages of the active path, oldest first, as of one revision.

    The common case is one statement: ``newest`` selects the wanted messages of the active
    branch, joined with the session (its revision, and where the path ends). Only when
    what is wanted reaches back past that branch's first message (``reaches_back`` of the
    oldest row, or no row at all) are the earlier segments read, one index range each
    (``earlier``); a write between the two reads makes it read again.
    """
    for _ in range(5):
        rows = list(active_branch_rows(session_id, newest, key))
        if rows and (rows[0]["sequence"] == 1 or not reaches_back(rows[0])):
            return Snapshot(rows[0]["_revision"], [_as_stored(r) for r in rows], complete=rows[0]["sequence"] == 1)
        state = rows[0] if rows else _path_state(session_id)
        if state is None:
            return Snapshot(0, [], complete=True)
        segments = segments_of(session_id, state["_branch"])[:-1]
        if not segments:  # nothing before the active branch: what was read is all there is
            return Snapshot(state["_revision"], [_as_stored(r) for r in rows], complete=not rows or rows[0]["sequence"] == 1)
        before = list(path_rows(session_id, earlier(segments, state), key))
        revisions = {r["_revision"] for r in before} | ({state["_revision"]} if rows else {_revision(session_id)})
        if revisions != {state["_revision"]}:
            continue  # a write came between the reads
        found = before + rows
        return Snapshot(state["_revision"], [_as_stored(r) for r in found], complete=not found or found[0]["sequence"] == 1)
    raise OperationalError("the chat's path kept changing while it was read")


# The wanted rows of the active branch as a range with both ends. The upper end holds for
# every row of the branch (the path ends at its newest message); it is there for the
# planner, which estimates a one-sided bound on a joined column at a third of the chat and
# would rather read the whole chat than that much by index, but a two-sided range as a
# small slice.


def budget_range(token_budget: int) -> Q:
    total = F("session__total_tokens")
    return Q(cumulative_tokens__gt=total - token_budget, cumulative_tokens__lte=total)


def recent_range(limit: int) -> Q:
    last = F("session__last_sequence")
    return Q(sequence__gt=last - limit, sequence__lte=last)


def active_branch_rows(session_id: uuid.UUID, newest: Q, key: str) -> QuerySet:
    """The first statement of every path read: the ``newest`` messages of the session's
    active branch, with the session's state. (Also what the benchmarks EXPLAIN.)

    ``key`` is the column ``newest`` bounds (``sequence`` or ``cumulative_tokens``): the rows
    are ordered by it, which along a path is the same order, so the index that answers
    the range also gives the order and the planner has no reason to prefer the other one
    and filter the whole branch through it.
    """
    return (
        Message.objects.filter(newest, session_id=session_id, branch=F("session__active_branch"))
        .order_by(key)
        .values(*_FIELDS, **_PATH_STATE)
    )


def path_rows(session_id: uuid.UUID, ranges: Q, key: str) -> QuerySet:
    """The statement that reads earlier segments of a path: ``ranges`` (``chat.storage.paths``)
    of ``key``; the caller orders the segments (each is in order by ``key``)."""
    return Message.objects.filter(ranges, session_id=session_id).order_by(key).values(*_FIELDS, _revision=F("session__revision"))


def _path_state(session_id: uuid.UUID) -> dict[str, Any] | None:
    return ChatSession.objects.filter(id=session_id).values(
        _revision=F("revision"), _branch=F("active_branch"), _total=F("total_tokens"), _last=F("last_sequence")
    ).first()


def load_within_budget(session_id: uuid.UUID, token_budget: int) -> Snapshot:
    """The newest messages of the active path covering ``token_budget``: what fits, plus the
    one before it.

    It reads the messages whose cumulative sum lies above (total - budget): per segment of
    the path a range on the (session, branch, cumulative_tokens) index, whose length is
    the answer plus at most one row. That extra first row (the one that does not fit) is
    kept so a cache filled from this snapshot can prove it covers the budget;
    ``history.fit_budget`` drops it.
    """
    if token_budget <= 0:
        raise ValueError("token_budget must be positive")
    return _path_read(
        session_id,
        "cumulative_tokens",
        budget_range(token_budget),
        lambda oldest: oldest["cumulative_tokens"] - oldest["tokens"] > oldest["_total"] - token_budget,
        lambda segments, state: paths.within_budget(segments, state["_total"] - token_budget),
    )


def load_recent(session_id: uuid.UUID, limit: int) -> Snapshot:
    """The newest ``limit`` messages of the active path, oldest first: per segment an index
    range on (session, branch, sequence)."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    return _path_read(
        session_id,
        "sequence",
        recent_range(limit),
        lambda oldest: oldest["sequence"] > oldest["_last"] - limit + 1,
        lambda segments, state: paths.after_sequence(segments, max(0, state["_last"] - limit)),
    )


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
