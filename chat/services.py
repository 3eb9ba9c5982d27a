"""The one writer of sessions (and, through HybridStorage, of messages).

The consumer, the API and the template views call these functions; none of them touches
the ORM for writes directly. Reads that several of them need live here too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import unicodedata
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat import history, runtime, selectors
from chat.attachments import service as attachment_service
from chat.db import db_async
from chat.errors import NotFound, UserError
from chat.ids import ChatRef
from chat.models import ChatSession, LoopState, Message, Worker
from chat.storage import database, tree
from chat.usage import ledger

TITLE_MAX_LENGTH = 200
# The answer stored for a question an administrator closed (see repair_stuck_session).
QUESTION_CLOSED_RESULT = "An administrator closed this question before it was answered."


def get_session(owner: Any, session_id: Any) -> ChatSession:
    """The owner's session; someone else's and a missing one are the same 404."""
    return selectors.owned(ChatSession.objects.filter(owner_id=owner.pk), session_id, "No such chat.")


def clean_title(title: Any) -> str:
    if not isinstance(title, str):
        raise UserError("invalid_title", "The title must be text.")
    title = " ".join(title.split())
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in title):
        # Control characters garble a title; NUL and lone surrogates cannot even be stored
        # (PostgreSQL and UTF-8 refuse them).
        raise UserError("invalid_title", "The title contains characters that are not allowed.")
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


# " (fork)", " (fork 2)", " (fork 3)"…: how many forks from the first chat this one is.
_FORKED = re.compile(r" \(fork(?: (\d+))?\)$")


def fork_title(title: str) -> str:
    """A fork's title: its source's with " (fork)", which a long title leaves room for;
    a fork of a fork counts ("Spanish numbers (fork 2)", not "(fork) (fork)"). An
    untitled source gives an untitled fork (titles are made from a chat's first message)."""
    if not title:
        return ""
    forked = _FORKED.search(title)
    if forked:
        title, suffix = title[: forked.start()], f" (fork {int(forked.group(1) or 1) + 1})"
    else:
        suffix = " (fork)"
    return f"{title[: TITLE_MAX_LENGTH - len(suffix)].rstrip()}{suffix}"


def fork_session(owner: Any, session_id: Any, message_id: uuid.UUID) -> ChatSession:
    """A new chat of ``owner`` holding a copy of the path through message ``message_id`` of
    one of their chats (up to and including it), ready to go on in another direction."""
    source = get_session(owner, session_id)
    with transaction.atomic():
        path = tree.path_through(source.pk, tree.locate(source.pk, message_id))
        question = _question_asked_by(source, path[-1])
        fork = ChatSession.objects.create(
            owner=owner,
            title=fork_title(source.title),
            message_count=len(path),
            last_sequence=path[-1]["sequence"],
            total_tokens=path[-1]["cumulative_tokens"],
            state=ChatSession.State.AWAITING_INPUT if question else ChatSession.State.IDLE,
        )
        copied = [
            Message(
                **{key: value for key, value in row.items() if key not in ("id", "session_id", "branch", "client_id")},
                session=fork,
                branch=0,
            )
            for row in path
        ]
        Message.objects.bulk_create(copied)
        if question:
            database.save_loop_state(fork.pk, question)
    return fork


def _question_asked_by(session: ChatSession, message: dict[str, Any]) -> dict[str, Any] | None:
    """The question the chat waits on, if ``message`` is the reply that asked it: a fork
    ending there waits on it too (answered there, it goes on there), rather than holding
    a question nobody can answer."""
    if session.state != ChatSession.State.AWAITING_INPUT or message["role"] != "assistant":
        return None
    waiting = database.load_loop_state(session.pk)
    asked = {block.get("id") for block in message["content"] if isinstance(block, dict) and block.get("type") == "tool_use"}
    return waiting if waiting is not None and waiting["tool_use_id"] in asked else None


def delete_session(owner: Any, session_id: Any) -> None:
    session = get_session(owner, session_id)
    sid = session.pk
    with transaction.atomic():
        session.delete()
        # Its files: the rows now, the files once this has committed.
        attachment_service.delete_for_chat(sid)
    # The cache entry would expire on its own; dropping it frees the memory now.
    drop_session_cache(sid)


def set_title(session_id: Any, title: str, *, replace: bool = False, charge: ledger.Charge | None = None) -> bool:
    """Give a session a generated title; False if it has one already (unless ``replace``).

    A generated title never overwrites one the owner chose meanwhile: the check and the
    write are one UPDATE. ``charge``, the model call that wrote the title, goes to the
    usage ledger in the same transaction, whether the title was kept or not.
    """
    title = " ".join(title.split())[:TITLE_MAX_LENGTH]
    if not title:
        raise UserError("invalid_title", "The title cannot be empty.")
    if charge is not None:
        return _set_title_charged(session_id, title, replace, charge)
    sessions = ChatSession.objects.filter(id=session_id)
    if not replace:
        sessions = sessions.filter(title="")
    return sessions.update(title=title, updated_at=timezone.now()) > 0


def _set_title_charged(session_id: Any, title: str, replace: bool, charge: ledger.Charge) -> bool:
    """``set_title`` with its call's ledger row: on PostgreSQL one statement (the INSERT in
    a WITH), elsewhere two in a transaction. SQL of our own: the ORM cannot prefix a WITH."""
    table = connection.ops.quote_name(ChatSession._meta.db_table)
    field = ChatSession._meta.get_field
    keep = "" if replace else " AND title = ''"
    # One statement on PostgreSQL is a transaction of its own: no BEGIN and COMMIT to pay.
    with transaction.atomic() if connection.vendor != "postgresql" else contextlib.nullcontext():
        sql, params = ledger.with_charge(
            f"UPDATE {table} SET title = %s, updated_at = %s WHERE id = %s{keep}",
            [
                title,
                field("updated_at").get_db_prep_value(timezone.now(), connection),
                field("id").get_db_prep_value(session_id, connection),
            ],
            charge,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount > 0


aset_title = db_async(set_title)


# --- agent runs ------------------------------------------------------------------------------
# A run is claimed by the turn service (chat.runs.turns) with a row lock on the session, so two
# processes (or two sockets) can never run one session at once. The claim names the process
# running it (a Worker, chat.runs.liveness), so that a run whose process died can be found and
# failed by any other process.


def end_run(session_id: uuid.UUID, run_id: uuid.UUID, state: str) -> bool:
    """Release the claim with the session's next state; False if it was no longer ours."""
    return database.end_run(session_id, run_id, state)


def dead_runs(cutoff: dt.datetime, *, judge: uuid.UUID | None = None) -> QuerySet[ChatSession]:
    """Sessions running for a worker whose last beat is older than ``cutoff`` (or gone);
    never those of ``judge``, the worker asking, which knows it is alive."""
    alive = Worker.objects.filter(beat_at__gte=cutoff).values("id")
    stale = ChatSession.objects.filter(state=ChatSession.State.RUNNING).exclude(run_worker__in=alive)
    return stale.exclude(run_worker=judge) if judge is not None else stale


def claimed_runs(runs: list[tuple[uuid.UUID, uuid.UUID]]) -> set[uuid.UUID]:
    """Of these (session, run) pairs, the runs whose claim still stands."""
    if not runs:
        return set()
    query = Q()
    for session_id, run_id in runs:
        query |= Q(id=session_id, run_id=run_id)
    return set(ChatSession.objects.filter(query, state=ChatSession.State.RUNNING).values_list("run_id", flat=True))


def fail_stale_runs(cutoff: dt.datetime, *, judge: uuid.UUID | None = None, session_id: Any = None) -> list[ChatRef]:
    """Mark runs whose process died failed; returns their chats. The dead workers' rows go:
    a worker that was only slow finds its row gone at its next beat and stops its runs."""
    stale = dead_runs(cutoff, judge=judge)
    if session_id is not None:
        stale = stale.filter(id=session_id)
    failed = []
    for sid, owner_id, run_id in stale.values_list("id", "owner_id", "run_id")[:1000]:
        # Conditional again: the run may have ended meanwhile.
        if ChatSession.objects.filter(id=sid, run_id=run_id, state=ChatSession.State.RUNNING).update(
            state=ChatSession.State.FAILED, run_id=None, run_worker=None
        ):
            failed.append(ChatRef(owner_id, sid))
    if session_id is None:
        Worker.objects.filter(beat_at__lt=cutoff).exclude(id=judge).delete()
    return failed


def socket_state(owner: Any, session_id: uuid.UUID) -> dict[str, Any]:
    """What a socket opening on the session is told in ``ready`` (a new id: an empty chat)."""
    session = ChatSession.objects.filter(id=session_id).only("owner_id", "state").first()
    if session is None:
        return {"state": ChatSession.State.IDLE, "pending": None}
    if session.owner_id != owner.pk:
        raise NotFound("No such chat.")
    pending = None
    if session.state == ChatSession.State.AWAITING_INPUT:
        loop_state = LoopState.objects.filter(session=session).first()
        if loop_state is not None:
            pending = {
                "tool_use_id": loop_state.tool_use_id,
                "tool": loop_state.tool_name,
                "question": loop_state.question,
                "options": loop_state.options,
            }
    return {"state": session.state, "pending": pending}


# --- administration -------------------------------------------------------------------------
# Called from the Django admin, by staff, on any user's session: no owner check here.


def _unanswered_tool_results(session: ChatSession, loop: LoopState | None) -> list[dict[str, Any]]:
    """tool_result blocks for the tool calls of the session's last message, if it is a reply
    whose calls were never answered: the paused turn's kept results where there are some, an
    error result for the rest."""
    last = Message.objects.filter(session_id=session.pk, sequence=session.last_sequence).first()
    if last is None or last.role != "assistant" or not isinstance(last.content, list):
        return []
    kept = {r.get("tool_use_id"): r for r in (loop.pending_results if loop else []) if isinstance(r, dict)}
    results = []
    for block in last.content:
        if block.get("type") != "tool_use":
            continue
        tool_use_id = block.get("id")
        if tool_use_id in kept:
            results.append(kept[tool_use_id])
            continue
        closed = loop is not None and tool_use_id == loop.tool_use_id
        results.append(
            {
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": QUESTION_CLOSED_RESULT if closed else history.INTERRUPTED_TOOL_RESULT,
                "is_error": True,
            }
        )
    return results


def repair_stuck_session(session_id: uuid.UUID) -> bool:
    """Unstick a session left paused or running: answer its open tool calls with error
    results, drop its loop state and mark it idle. Returns whether anything changed.

    Safe to repeat: once the history ends in the answers, a second call stores nothing.
    Meant for a session whose run is gone; a run still going would find its turn answered.
    """
    session = ChatSession.objects.get(pk=session_id)
    loop = LoopState.objects.filter(session_id=session.pk).first()
    results = _unanswered_tool_results(session, loop)
    if results:
        # Through the storage layer, so the cached tail is extended rather than left stale.
        answers = {"role": "user", "content": results}
        async_to_sync(runtime.get().storage.save_messages)(session.pk, [answers])
    with transaction.atomic():
        cleared, _ = LoopState.objects.filter(session_id=session.pk).delete()
        idled = ChatSession.objects.filter(pk=session.pk).exclude(state=ChatSession.State.IDLE).update(
            state=ChatSession.State.IDLE
        )
    return bool(results or cleared or idled)


def drop_session_cache(session_id: uuid.UUID) -> None:
    """Forget a session's cached tail; the next read refills it from the database."""
    async_to_sync(runtime.get().storage.drop_cache)(session_id)
