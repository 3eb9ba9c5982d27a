"""The turn service: the one place where a user action becomes a run.

A user action (a message; an answer, typed or chosen, to the question a turn paused on)
enters here, whatever door it came in by (the websocket, the API). This module alone
applies the rules about it: the rate limit, the owner, the ``client_id`` (a resend is
acknowledged again, never stored twice), the open question, "one run per chat at a
time", and the user's usage quota (``chat.usage.quotas`` decides, in the transaction).
Then, in one transaction, the chat is claimed for the run and what the user sent is
stored; a refusal changes nothing and creates no chat. The run manager runs the ``Turn``.

The session row, read with ``SELECT … FOR UPDATE``, is the lock: two actions on one chat,
from any process, are decided one after the other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Union

from django.conf import settings
from django.db import IntegrityError, transaction

from chat import history, ratelimit
from chat.agent import events
from chat.agent.events import Event
from chat.agent.reply import EMPTY_TEXT
from chat.attachments import blocks as attachment_blocks
from chat.attachments import service as attachment_service
from chat.db import db_async
from chat.errors import ContextTooLong, NotFound, UserError
from chat.ids import ChatRef
from chat.message_manager import UNREAD
from chat.models import ChatSession, Worker
from chat.storage import HybridStorage, database, tree
from chat.storage.database import RunClaim, Saved, StoredMessage
from chat.usage import quotas
from chat.usage.quotas import NO_LIMITS, Limits
from tools.propose_options import REPLIED_PREFIX, SELECTED_PREFIX

State = ChatSession.State
BUSY = UserError("busy", "The assistant is still answering; wait for it or stop it first.", status=409)
NOT_AWAITING = UserError("not_awaiting_input", "This chat is not waiting for an answer.", status=409)


@dataclass(frozen=True)
class SendMessage:
    """Text the user sent, with the files uploaded for it (``chat.attachments``; their
    ids). While a question is open, it answers the question."""

    text: str
    client_id: str | None = None
    attachments: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class Choose:
    """One of the options of the open question."""

    tool_use_id: str
    choice: str


@dataclass(frozen=True)
class Edit:
    """A new version of a message the user typed: the model answers it on a new branch; the
    old version, and all that followed it, stay a branch of their own."""

    message_id: uuid.UUID
    text: str
    client_id: str | None = None


@dataclass(frozen=True)
class Regenerate:
    """A new version of a reply: the model writes it again, on a new branch."""

    message_id: uuid.UUID


@dataclass(frozen=True)
class Compact:
    """Summarise the conversation shown up to its newest turn now (the Compact button,
    ``/compact``): a run that calls the model for the summary only (``chat.compaction``)."""


Action = Union[SendMessage, Choose, Edit, Regenerate, Compact]


@dataclass(frozen=True)
class Turn:
    """A run that may start: the chat is claimed and what the user sent is stored."""

    chat: ChatRef
    run_id: uuid.UUID
    # What the turn stored, as the events that announce it (sent before the run's own).
    events: list[Event]
    # Model calls the turn made before it paused on the question this action answers.
    step: int
    # The empty reply stored for the run's first model call to write into.
    reply: StoredMessage | None
    # The chat's first message: the chat's title is written from it.
    title_from: str | None
    # The chat's previous run had died with its process: this turn failed it.
    interrupted: bool = False
    # A compaction the user asked for, not a reply.
    compact: bool = False
    # The usage limits the run is held to (none: its calls are not billed to a quota).
    limits: Limits = NO_LIMITS
    # The active path's newest summary, read with the chat's lock (None: it has none;
    # ``UNREAD``: the turn moved the path, and the run reads it).
    path_summary: Any = UNREAD


@dataclass(frozen=True)
class Acknowledged:
    """Nothing starts: the action was stored already. ``event`` tells the sender so again."""

    event: Event


# The turn's reply, stored empty and unfinished with what the user sent, so that the model's
# first word goes out without a write (it is announced with that word; a call that fails
# before it takes the reply back).
REPLY = {"role": "assistant", "content": EMPTY_TEXT, "finished": False}


@dataclass(frozen=True)
class _Begun:
    saved: Saved | None
    events: list[Event]
    # The empty reply stored for the run's first model call.
    reply: StoredMessage | None = None
    step: int = 0
    title_from: str | None = None
    interrupted: bool = False
    compact: bool = False
    limits: Limits = NO_LIMITS
    path_summary: Any = UNREAD


async def start_turn(
    user: Any,
    session_id: uuid.UUID,
    action: Action,
    *,
    storage: HybridStorage,
    worker_id: uuid.UUID,
    dead_before: dt.datetime | None = None,
) -> Turn | Acknowledged:
    """Decide whether ``action`` starts a run; store it and claim the chat for a run on
    worker ``worker_id`` if so. A run going on whose worker last beat before
    ``dead_before`` died with its process: the action fails it and goes ahead.

    Raises UserError (nothing stored, no chat created) if it may not. ``session_id`` may
    be new: the chat is created for ``user`` by its first message.
    """
    _check_fits(action)
    await ratelimit.check_message_rate(user.pk)
    run_id = uuid.uuid4()
    begun = await db_async(_begin)(user.pk, session_id, action, RunClaim(run_id, worker_id), dead_before)
    if isinstance(begun, Acknowledged):
        return begun
    if begun.saved is not None:
        await storage.committed(session_id, begun.saved)
    return Turn(
        chat=ChatRef(user.pk, session_id),
        run_id=run_id,
        events=begun.events,
        step=begun.step,
        title_from=begun.title_from,
        interrupted=begun.interrupted,
        reply=begun.reply,
        compact=begun.compact,
        limits=begun.limits,
        path_summary=begun.path_summary,
    )


def _check_fits(action: Action) -> None:
    """A message larger than the model's window on its own could never be sent: refused
    before anything is stored (what a turn adds later is the agent loop's to check)."""
    if isinstance(action, (SendMessage, Edit)):
        tokens = history.estimate_tokens(action.text)
        if tokens > settings.CHAT_CONTEXT_TOKENS:
            raise ContextTooLong(turn_tokens=tokens, window=settings.CHAT_CONTEXT_TOKENS)


def _begin(
    owner_id: int, session_id: uuid.UUID, action: Action, claim: RunClaim, dead_before: dt.datetime | None
) -> _Begun | Acknowledged:
    try:
        with transaction.atomic():
            return _claim_and_store(owner_id, session_id, action, claim, dead_before)
    except IntegrityError:
        # Nothing was written. Either the client_id is stored already (a resend, or two
        # sends racing), or two first messages raced to create the chat.
        client_id = _client_id(action)
        if client_id:
            with transaction.atomic():
                resent = _resend(owner_id, session_id, client_id, claim)
            if resent is not None:
                return resent
        raise BUSY from None


def _client_id(action: Action) -> str | None:
    return action.client_id if isinstance(action, (SendMessage, Edit)) else None


def _claim_and_store(
    owner_id: int, session_id: uuid.UUID, action: Action, claim: RunClaim, dead_before: dt.datetime | None
) -> _Begun | Acknowledged:
    session = database.lock_session(session_id)
    interrupted, worker, may_have_limits, summary = False, None, True, None
    if session is None:
        if isinstance(action, Choose):
            raise NOT_AWAITING
        if isinstance(action, (Edit, Regenerate, Compact)):
            raise NotFound("No such chat.")
        ChatSession.objects.create(id=session_id, owner_id=owner_id)
        state = State.IDLE
    else:
        owner, state, worker, may_have_limits = session.owner_id, session.state, session.worker, session.may_have_limits
        summary = session.summary
        if owner != owner_id:
            raise NotFound("No such chat.")
    if (
        state == State.RUNNING
        and dead_before is not None
        and worker != claim.worker_id  # this process knows its own runs live
        and _died(worker, dead_before)
    ):
        # Its process died mid-run: the run is failed here rather than by a later sweep, so
        # the user can go on at once.
        state, interrupted = State.FAILED, True
    if state == State.RUNNING:
        # A resend of what this run is answering is acknowledged (the sender missed it).
        stored = database.message_by_client_id(session_id, action.client_id) if _client_id(action) else None
        if stored is None:
            raise BUSY
        return Acknowledged(events.message(stored))
    if isinstance(action, Compact):
        # A summary is a model call like a reply: over a limit, it is refused the same way.
        limits = quotas.admit(owner_id, session_id, may_have_limits=may_have_limits)
        return dataclasses.replace(_compact(session_id, claim, state, interrupted), path_summary=summary, limits=limits)
    if isinstance(action, (Edit, Regenerate)):
        # An edit sent again is acknowledged, not refused: the version it made is shown now,
        # and the message it edited no longer is.
        stored = database.message_by_client_id(session_id, action.client_id) if _client_id(action) else None
        if stored is not None:
            return Acknowledged(events.message(stored))
        limits = quotas.admit(owner_id, session_id, may_have_limits=may_have_limits)
        return dataclasses.replace(_new_version(session_id, action, claim, state), limits=limits)
    # The files sent with it: the owner's own uploads to this chat, or nothing is stored.
    files = attachment_service.claim(owner_id, session_id, action.attachments) if isinstance(action, SendMessage) else []
    limits = quotas.admit(owner_id, session_id, may_have_limits=may_have_limits)
    if isinstance(action, Choose) or state == State.AWAITING_INPUT:
        return dataclasses.replace(_answer(session_id, action, claim, state, files), limits=limits, path_summary=summary)
    content: Any = action.text
    if files:
        content = [*files, *([{"type": "text", "text": action.text}] if action.text else [])]
    message = {"role": "user", "content": content, "client_id": action.client_id}
    saved = database.save_messages(session_id, [message, REPLY], claim=claim)
    stored, reply = saved.messages
    title_from = action.text or ", ".join(block["source"]["name"] for block in files)
    return _Begun(
        saved=saved,
        reply=reply,
        events=[events.message(stored)],
        title_from=title_from if stored["sequence"] == 1 else None,
        interrupted=interrupted,
        limits=limits,
        path_summary=summary,
    )


def _new_version(session_id: uuid.UUID, action: Edit | Regenerate, claim: RunClaim, state: str) -> _Begun:
    """A new version of a message on the active path: a branch forked just before it, the
    edited message (or nothing, for a reply) and the reply to write stored on it."""
    target = tree.locate(session_id, action.message_id)
    if not target.on_active_path:
        raise UserError("not_on_path", "That message is not on the conversation shown; switch to it first.")
    if isinstance(action, Edit) and not (target.role == "user" and history.is_turn_start(target.__dict__)):
        raise UserError(
            "not_editable",
            "Only a message you typed can be edited; an answer to a question or a tool's result cannot.",
        )
    if isinstance(action, Regenerate) and target.role != "assistant":
        raise UserError("not_a_reply", "Only a reply can be regenerated; edit a message of yours instead.")
    if state == State.AWAITING_INPUT:
        # The question stays on the old branch, unanswered: the new version goes on without it.
        database.clear_loop_state(session_id)
    tree.fork(session_id, target.sequence - 1)
    stored: list[dict[str, Any]] = [REPLY]
    if isinstance(action, Edit):
        # The new version keeps the files the old one was sent with.
        files = [b for b in target.content if attachment_blocks.source_of(b)] if isinstance(target.content, list) else []
        content: Any = [*files, {"type": "text", "text": action.text}] if files else action.text
        stored = [{"role": "user", "content": content, "client_id": action.client_id}, REPLY]
    saved = dataclasses.replace(database.save_messages(session_id, stored, claim=claim), forked=True)
    path = events.path(target.sequence)
    return _Begun(
        saved=saved,
        reply=saved.messages[-1],
        events=[path, *(events.message(m) for m in saved.messages[:-1])],
    )


def _compact(session_id: uuid.UUID, claim: RunClaim, state: str, interrupted: bool) -> _Begun:
    """Claim the chat for a compaction; nothing is stored until the summary is written.
    Its ``compacting`` event opens the run in the chat's log, so that a page opened during
    it replays from there (not the previous run's events) and shows it going on."""
    if state == State.AWAITING_INPUT:
        raise UserError("awaiting_input", "Answer the open question first, then compact.", status=409)
    if ChatSession.objects.filter(id=session_id, last_sequence__lt=3).exists():
        raise UserError("nothing_to_compact", "There is nothing before the newest turn to summarise yet.", status=409)
    database.claim_run(session_id, claim)
    return _Begun(saved=None, events=[events.compacting()], compact=True, interrupted=interrupted)


def switch_path(owner_id: int, session_id: uuid.UUID, message_id: uuid.UUID) -> tuple[Event, int]:
    """Make the active path go through message ``message_id`` (another version of one on
    it), down to the leaf chosen there last. Returns the ``path`` event and the revision.

    Refused while a run goes on (``busy``) or a question waits for its answer.
    """
    with transaction.atomic():
        session = database.lock_session(session_id)
        if session is None or session.owner_id != owner_id:
            raise NotFound("No such chat.")
        if session.state == State.RUNNING:
            raise BUSY
        if session.state == State.AWAITING_INPUT:
            raise UserError(
                "awaiting_input",
                "Answer the open question first (or edit a message to start another version).",
                status=409,
            )
        target = tree.locate(session_id, message_id)
        revision = tree.switch(session_id, target)
    return events.path(target.sequence), revision


def _died(worker_id: uuid.UUID | None, dead_before: dt.datetime) -> bool:
    return not Worker.objects.filter(id=worker_id, beat_at__gte=dead_before).exists()


def _answer(
    session_id: uuid.UUID, action: Action, claim: RunClaim, state: str, files: list[dict[str, Any]]
) -> _Begun:
    """Answer the open question: every tool result of the paused turn in one message (and
    the files sent with a typed answer, after them)."""
    pending = database.load_loop_state(session_id) if state == State.AWAITING_INPUT else None
    if pending is None:
        raise NOT_AWAITING
    client_id = None
    if isinstance(action, Choose):
        if action.tool_use_id != pending["tool_use_id"]:
            raise UserError("unknown_question", "That question is not the one this chat is waiting on.")
        if action.choice not in pending["options"]:
            raise UserError("invalid_choice", "That choice is not one of the options.")
        answer = f"{SELECTED_PREFIX}{action.choice}"
    else:
        # Typed instead of clicking. The client_id goes on the stored answer: its message
        # event acknowledges the typed text, and a resend of it is not stored twice.
        answer, client_id = f"{REPLIED_PREFIX}{action.text.strip()}", action.client_id
    results, answered = [], {}
    for block in pending["pending_results"]:
        if block["tool_use_id"] == pending["tool_use_id"]:
            block = {k: v for k, v in block.items() if k != "requires_user_input"}
            answered = block = {**block, "content": answer}
        results.append(block)
    saved = database.save_messages(
        session_id, [{"role": "user", "content": [*results, *files], "client_id": client_id}, REPLY], claim=claim
    )
    database.clear_loop_state(session_id)
    stored, reply = saved.messages
    return _Begun(
        saved=saved,
        reply=reply,
        events=[events.message(stored), events.tool_result(answered)],
        step=pending["step"],
    )


def _resend(owner_id: int, session_id: uuid.UUID, client_id: str, claim: RunClaim) -> _Begun | Acknowledged | None:
    """A message sent again with its client_id: acknowledge what is stored. If nothing is
    running and nothing answered it (the run that took it died before its first word, and
    left only the empty reply stored for it), answer it now, in that reply."""
    session = ChatSession.objects.select_for_update().filter(id=session_id, owner_id=owner_id).first()
    stored: StoredMessage | None = database.message_by_client_id(session_id, client_id) if session else None
    if session is None or stored is None:
        return None
    after = session.last_sequence - stored["sequence"]
    if session.state not in (State.IDLE, State.FAILED) or after > 1:
        return Acknowledged(events.message(stored))
    if after == 1:
        [reply] = database.load_recent(session_id, 1).messages
        if reply["role"] != "assistant" or reply["finished"] or reply["content"] != EMPTY_TEXT:
            return Acknowledged(events.message(stored))
        limits = quotas.admit(owner_id, session_id)
        database.claim_run(session_id, claim)
        return _Begun(saved=None, events=[events.message(stored)], reply=reply, limits=limits)
    limits = quotas.admit(owner_id, session_id)
    saved = database.save_messages(session_id, [REPLY], claim=claim)
    return _Begun(saved=saved, reply=saved.messages[0], events=[events.message(stored)], limits=limits)
