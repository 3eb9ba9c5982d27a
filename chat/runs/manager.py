"""Agent runs: one per chat at a time, detached from the sockets that asked for them.

The run manager only schedules, cancels and watches runs. Whether an action starts a run
is the turn service's decision (``chat.runs.turns``), which claims the chat in the
database, so the rule holds across processes; the run then goes on as a task of the
process that received the action, publishing its events through the process's publisher.
Closing the tab does not stop it. While it runs it beats a heartbeat into its claim; a run
whose process died stops beating, and any process (on the next connect to that chat, or
its periodic sweep) marks it failed, tells the sockets, and leaves the history as stored:
valid, the cut-off reply kept unfinished.

Cancelling a run that another process runs goes through the hub: a message on the Redis
channel every process hears.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat import services
from chat.agent import events
from chat.agent.loop import run_turn
from chat.agent.providers import Provider
from chat.agent.providers.base import usage
from chat.agent.titles import schedule_title
from chat.db import db_async
from chat.errors import UserError
from chat.ids import ChatRef
from chat.message_manager import MessageManager
from chat.models import ChatSession
from chat.runs import turns
from chat.runs.hub import Hub
from chat.runs.publisher import Publisher, RunPublisher
from chat.storage import HybridStorage
from tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

State = ChatSession.State

INTERRUPTED = (
    "The reply was interrupted because the server running it stopped. What was said so far "
    "is kept; send a message to continue."
)
# Events that end a run, and the state the session is left in.
_ENDINGS = {"complete": State.IDLE, "awaiting_user_input": State.AWAITING_INPUT, "error": State.FAILED}


@dataclass
class _Run:
    run_id: uuid.UUID
    task: asyncio.Task[None]


class RunManager:
    """The runs of one process (one event loop)."""

    def __init__(self, *, storage: HybridStorage, publisher: Publisher, hub: Hub, provider: Provider, tools: ToolRegistry):
        self.storage = storage
        self.publisher = publisher
        self.hub = hub
        self.provider = provider
        self.tools = tools
        self._runs: dict[uuid.UUID, _Run] = {}
        self._sweeper: asyncio.Task[None] | None = None
        hub.runs_here = lambda chat: chat.session_id in self._runs
        hub.on_cancel = self._cancel_run

    # --- what users ask for --------------------------------------------------------------

    async def start_turn(self, user: Any, session_id: uuid.UUID, action: turns.Action) -> dict[str, Any] | None:
        """Start the run ``action`` asks for, if the turn service lets it start.

        Returns an event for the sender alone when nothing new starts: an action stored
        already is acknowledged again instead of being stored twice.
        """
        begun = await turns.start_turn(user, session_id, action, storage=self.storage)
        if isinstance(begun, turns.Acknowledged):
            return begun.event
        task = asyncio.get_running_loop().create_task(self._run(user, begun))
        self._runs[session_id] = _Run(begun.run_id, task)
        task.add_done_callback(lambda _: self._runs.pop(session_id, None))
        return None

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
        failed = await db_async(services.fail_stale_runs)(settings.RUN_STALE_AFTER, session_id=session_id)
        for chat in failed:
            logger.warning("run of session %s stopped beating; marked failed", chat.session_id)
            await self.publisher.publish(chat, [events.error("run_interrupted", INTERRUPTED, retryable=True)])
        return failed

    # --- the process's background work ---------------------------------------------------

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def aclose(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

    def _cancel_run(self, run_id: str) -> None:
        for run in list(self._runs.values()):
            if str(run.run_id) == run_id:
                run.task.cancel()

    async def _sweep_forever(self) -> None:
        while True:
            # Sleep first: at start-up, the sockets reconnecting find their own dead runs.
            await asyncio.sleep(settings.RUN_STALE_AFTER / 2)
            try:
                await self.recover()
            except Exception:  # noqa: BLE001 - try again at the next sweep
                logger.warning("sweep for dead runs failed", exc_info=True)

    # --- running -------------------------------------------------------------------------

    async def _run(self, user: Any, turn: turns.Turn) -> None:
        chat, run_id, session_id = turn.chat, turn.run_id, turn.chat.session_id
        publisher = RunPublisher(self.publisher, chat)
        this = asyncio.current_task()
        assert this is not None
        stop = asyncio.Event()
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(session_id, run_id, this, stop))
        stream = run_turn(MessageManager(session_id, user, self.storage), self.provider, self.tools, step=turn.step)
        state = State.IDLE
        last: dict[str, Any] | None = None  # the event that ends the run, sent last of all
        try:
            # What the turn stored, first: it marks where the run starts in the log, and
            # the chat's title (written meanwhile) comes after it.
            await self.publisher.publish(chat, turn.events, run_start=True)
            if turn.title_from is not None:
                schedule_title(session_id, turn.title_from, self.provider, self._publish_to(chat))
            async for event in stream:
                if event["type"] in _ENDINGS:
                    state, last = _ENDINGS[event["type"]], event
                else:
                    await publisher.put(event)
        except asyncio.CancelledError:
            # Cancelled on request (or our claim was lost): wind down normally from here.
            this.uncancel()
            state, last = State.IDLE, events.complete("cancelled", usage())
            kept = await self._kept_reply(session_id)
            if kept is not None:
                await publisher.put(events.message(kept))  # what was streamed, as stored
        except Exception:
            logger.exception("run of session %s failed", session_id)
            state = State.FAILED
            last = events.error("internal_error", "Something went wrong on our side. What was said so far is kept.", retryable=True)
        finally:
            stop.set()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            with suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            await publisher.close()
            # The session's state changes before the clients hear the run ended, so that a
            # click on the answer that ending shows them can never find the run still busy.
            await db_async(services.end_run)(session_id, run_id, state)
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

    async def _heartbeat(self, session_id: uuid.UUID, run_id: uuid.UUID, run: asyncio.Task[None], stop: asyncio.Event) -> None:
        while not await _stopped(stop, settings.RUN_HEARTBEAT_INTERVAL):
            try:
                alive = await db_async(services.heartbeat_run)(session_id, run_id)
            except Exception:  # noqa: BLE001 - the database may be back at the next beat
                logger.warning("heartbeat of session %s failed", session_id, exc_info=True)
                continue
            if not alive:
                logger.warning("run of session %s lost its claim (declared dead); stopping it", session_id)
                run.cancel()
                return


async def _stopped(stop: asyncio.Event, interval: float) -> bool:
    """Wait ``interval`` seconds or until ``stop`` is set; True if it is."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), interval)
    return stop.is_set()
