"""Agent runs: one per chat at a time, detached from the sockets that asked for them.

The run manager only schedules, cancels and watches runs. Whether an action starts a run
is the turn service's decision (``chat.runs.turns``), which claims the chat in the
database for this process (its ``Worker``), so the rule holds across processes; the run
then goes on as a task here, publishing its events through the process's publisher.
Closing the tab does not stop it. A run whose process died is found by its process's
silence (``chat.runs.liveness``): the next action on the chat, a socket opening on it or
any process's periodic sweep marks it failed, tells the sockets, and leaves the history as
stored: valid, the cut-off reply kept unfinished.

A run that ends while the database is away still sends its last event; its end is written
once the database answers again (until then the chat stays claimed by this live process).

Cancelling a run that another process runs goes through the hub: a message on the Redis
channel every process hears.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from agentsite import logs
from chat import metrics, services
from chat.agent import events
from chat.agent.loop import run_turn
from chat.agent.providers import Provider
from chat.agent.providers.base import usage
from chat.agent.titles import schedule_title
from chat.compaction import run_compaction
from chat.db import db_async
from chat.errors import OUTAGES, UserError
from chat.ids import ChatRef
from chat.message_manager import MessageManager
from chat.models import ChatSession
from chat.runs import turns
from chat.runs.hub import Hub
from chat.runs.liveness import Liveness
from chat.runs.publisher import Publisher, RunPublisher
from chat.storage import HybridStorage
from chat.usage import quotas
from chat.usage.ledger import Payer
from tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

State = ChatSession.State

INTERRUPTED_EVENT = events.error(
    "run_interrupted",
    "The reply was interrupted because the server running it stopped. What was said so far "
    "is kept; send a message to continue.",
    retryable=True,
)
UNAVAILABLE_EVENT = events.error(
    "unavailable",
    "The reply stopped because the service is briefly unavailable. What was said so far is kept; "
    "try again in a moment.",
    retryable=True,
)

# Events that end a run, and the state the session is left in.
_ENDINGS = {"complete": State.IDLE, "awaiting_user_input": State.AWAITING_INPUT, "error": State.FAILED}


@dataclass
class _Run:
    run_id: uuid.UUID
    task: asyncio.Task[None]


class RunManager:
    """The runs of one process (one event loop)."""

    def __init__(
        self,
        *,
        storage: HybridStorage,
        publisher: Publisher,
        hub: Hub,
        liveness: Liveness,
        provider: Provider,
        tools: ToolRegistry,
    ):
        self.storage = storage
        self.publisher = publisher
        self.hub = hub
        self.liveness = liveness
        self.provider = provider
        self.tools = tools
        self._runs: dict[uuid.UUID, _Run] = {}
        self._verdicts: set[asyncio.Task[None]] = set()
        # Runs that ended while the database was away: (run id, state) to write.
        self._unwritten_ends: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        hub.runs_here = lambda chat: chat.session_id in self._runs
        hub.on_cancel = self._cancel_run
        liveness.on_declared_dead = self._declared_dead

    # --- what users ask for --------------------------------------------------------------

    async def start_turn(self, user: Any, session_id: uuid.UUID, action: turns.Action) -> turns.Turn | turns.Acknowledged:
        """Start the run ``action`` asks for, if the turn service lets it start (UserError
        if not). An action stored already starts nothing: ``Acknowledged`` says what is
        stored, for the sender alone."""
        received_at = time.perf_counter()
        begun = await turns.start_turn(
            user,
            session_id,
            action,
            storage=self.storage,
            worker_id=self.liveness.worker_id,
            dead_before=self.liveness.stale_cutoff(),
        )
        if isinstance(begun, turns.Acknowledged):
            return begun
        metrics.TURNS.labels("compact" if begun.compact else "answer" if begun.step else "message").inc()
        task = asyncio.get_running_loop().create_task(self._run(user, begun, received_at))
        self._runs[session_id] = _Run(begun.run_id, task)
        task.add_done_callback(lambda _: self._runs.pop(session_id, None))
        return begun

    async def switch(self, user: Any, session_id: uuid.UUID, message_id: uuid.UUID) -> dict[str, Any]:
        """Show another version of a message (the turn service decides whether it may);
        the chat's sockets are told with a ``path`` event, which this returns too."""
        event, revision = await db_async(turns.switch_path)(user.pk, session_id, message_id)
        await self.storage.path_changed(session_id, revision)
        await self.publisher.publish(ChatRef(user.pk, session_id), [event])
        return event

    async def cancel(self, user: Any, session_id: uuid.UUID) -> None:
        """Stop the chat's run, wherever it runs; what it streamed is kept."""
        session = await db_async(services.get_session)(user, session_id)
        if session.state != State.RUNNING:
            raise UserError("not_running", "Nothing is running in this chat.")
        local = self._runs.get(session.pk)
        if local is not None:
            local.task.cancel()
        elif session.run_id is not None:
            await self.hub.cancel_elsewhere(str(session.run_id))

    async def recover(self, session_id: uuid.UUID | None = None) -> list[ChatRef]:
        """Fail runs whose process died (all, or one chat's) and tell their sockets."""
        cutoff = self.liveness.stale_cutoff()
        if cutoff is None:
            return []  # this process cannot tell yet (it just started, or the database was away)
        failed = await db_async(services.fail_stale_runs)(cutoff, judge=self.liveness.worker_id, session_id=session_id)
        for chat in failed:
            logger.warning("run of session %s died with its process; marked failed", chat.session_id)
            await self.publisher.publish(chat, [INTERRUPTED_EVENT])
        return failed

    # --- the process's background work ---------------------------------------------------

    def start(self) -> None:
        if self._sweeper is None:
            self.liveness.start()
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def aclose(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        self.liveness.stop()

    def _cancel_run(self, run_id: str) -> None:
        for run in list(self._runs.values()):
            if str(run.run_id) == run_id:
                run.task.cancel()

    def _declared_dead(self) -> None:
        """Another process declared this one dead (its worker row was gone): the runs whose
        claims it failed stop here. A run whose claim still stands goes on: a row removed
        for another reason, or a run claimed after the verdict, is not a dead process's."""
        if self._runs:
            task = asyncio.get_running_loop().create_task(self._cancel_unclaimed())
            self._verdicts.add(task)
            task.add_done_callback(self._verdicts.discard)

    async def _cancel_unclaimed(self) -> None:
        runs = list(self._runs.items())
        try:
            claimed = await db_async(services.claimed_runs)([(sid, run.run_id) for sid, run in runs])
        except DatabaseError:
            claimed = set()  # the claims cannot be read: as if gone (the runs could not end anyway)
        for _, run in runs:
            if run.run_id not in claimed:
                run.task.cancel()

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        swept_at = loop.time()
        while True:
            await asyncio.sleep(settings.RUN_HEARTBEAT_INTERVAL)
            try:
                await self._write_ends()
                if loop.time() - swept_at >= settings.RUN_STALE_AFTER / 2:
                    swept_at = loop.time()
                    await self.recover()
            except Exception:  # noqa: BLE001 - try again at the next sweep
                logger.warning("sweep for dead runs failed", exc_info=True)

    async def _write_ends(self) -> None:
        """Write the ends of runs that ended while the database was away."""
        for session_id, (run_id, state) in list(self._unwritten_ends.items()):
            await db_async(services.end_run)(session_id, run_id, state)
            self._unwritten_ends.pop(session_id, None)
            logger.warning("run of session %s: its end is written now that the database answers", session_id)

    # --- running -------------------------------------------------------------------------

    async def _run(self, user: Any, turn: turns.Turn, received_at: float) -> None:
        with metrics.RUNS_ACTIVE.track_inprogress():
            await self._run_turn(user, turn, received_at)

    async def _run_turn(self, user: Any, turn: turns.Turn, received_at: float) -> None:
        chat, run_id, session_id = turn.chat, turn.run_id, turn.chat.session_id
        waiting_for_first_word = True
        publisher = RunPublisher(self.publisher, chat)
        this = asyncio.current_task()
        assert this is not None
        # This task's log lines say whose run they are about (LOG_FORMAT=json).
        logs.bind(session_id=session_id, run_id=run_id, user_id=user.pk)
        payer = Payer(user_id=user.pk, session_id=session_id, run_id=run_id, billed=turn.limits.any())
        mm = MessageManager(session_id, user, self.storage, path_summary=turn.path_summary)
        if turn.compact:
            stream = run_compaction(mm, self.provider, payer=payer)
        else:
            stream = run_turn(
                mm,
                self.provider,
                self.tools,
                step=turn.step,
                reply=turn.reply,
                payer=payer,
                allowance=quotas.allowance(user.pk, turn.limits),
            )
        state = State.IDLE
        last: dict[str, Any] | None = None  # the event that ends the run, sent last of all
        try:
            # What the turn stored, first: it marks where the run starts in the log, and
            # the chat's title (written meanwhile) comes after it.
            if turn.interrupted:
                await self.publisher.publish(chat, [INTERRUPTED_EVENT])
            await self.publisher.publish(chat, turn.events, run_start=True)
            if turn.title_from is not None:
                schedule_title(session_id, turn.title_from, self.provider, self._publish_to(chat), payer=payer)
            async for event in stream:
                if event["type"] in _ENDINGS:
                    state, last = _ENDINGS[event["type"]], event
                else:
                    await publisher.put(event)
                    if waiting_for_first_word and event["type"] == "text_delta":
                        waiting_for_first_word = False
                        metrics.FIRST_DELTA.observe(time.perf_counter() - received_at)
        except asyncio.CancelledError:
            # Cancelled on request (or our claim was lost): wind down normally from here.
            this.uncancel()
            state, last = State.IDLE, events.complete("cancelled", usage())
            kept = await self._kept_reply(session_id)
            if kept is not None:
                await publisher.put(events.message(kept))  # what was streamed, as stored
        except OUTAGES:
            logger.warning("run of session %s stopped: database unavailable", session_id, exc_info=True)
            state, last = State.FAILED, UNAVAILABLE_EVENT
        except Exception:
            logger.exception("run of session %s failed", session_id)
            state = State.FAILED
            last = events.error("internal_error", "Something went wrong on our side. What was said so far is kept.", retryable=True)
        finally:
            with suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            await publisher.close()
            # The session's state changes before the clients hear the run ended, so that a
            # click on the answer that ending shows them can never find the run still busy.
            try:
                await db_async(services.end_run)(session_id, run_id, state)
            except OUTAGES:
                self._unwritten_ends[session_id] = (run_id, state)
            if last is not None:
                await self.publisher.publish(chat, [last])

    async def _kept_reply(self, session_id: uuid.UUID) -> dict[str, Any] | None:
        """The reply a cancelled run left unfinished, as stored (None if it left none)."""
        try:
            [last] = await self.storage.load_recent_messages(session_id, 1)
        except Exception:  # noqa: BLE001 - the announcement is a courtesy; the reply is stored
            return None
        return last if last["role"] == "assistant" and not last["finished"] else None

    def _publish_to(self, chat: ChatRef) -> Any:
        async def publish(event: dict[str, Any]) -> None:
            await self.publisher.publish(chat, [event])

        return publish


