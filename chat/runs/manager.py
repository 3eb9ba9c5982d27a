"""Agent runs: one per session at a time, detached from the sockets that asked for them.

A run is claimed in the database by the turn service (``chat.runs.turns``), so the rule
holds across processes; it then runs as a task of the process that received the message, publishing
its events to the session's log and group. Closing the tab does not stop it. While it runs
it beats a heartbeat into its claim; a run whose process died stops beating, and any
process (on the next connect to that session, or its periodic sweep) marks it failed, tells
the sockets, and leaves the history as stored: valid, the cut-off reply kept unfinished.

Cancelling reaches a run in another process through a flag in Redis that the run checks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from contextlib import suppress
from typing import Any, Callable

from django.conf import settings

from chat import services
from chat.agent import events
from chat.agent.loop import run_turn
from chat.agent.providers import Provider, get_provider
from chat.agent.providers.base import usage
from chat.agent.titles import schedule_title
from chat.db import db_async
from chat.errors import UserError
from chat.ids import ChatRef
from chat.message_manager import MessageManager
from chat.models import ChatSession
from chat.redis_client import PerLoopRedis
from chat.runs import turns
from chat.runs.eventlog import EventLog, default_event_log
from chat.runs.publisher import Publisher, RunPublisher
from chat.storage import get_storage, keys
from tools.registry import ToolRegistry, builtin_tools

logger = logging.getLogger(__name__)

State = ChatSession.State

CANCEL_POLL_INTERVAL = 0.25

INTERRUPTED = (
    "The reply was interrupted because the server running it stopped. What was said so far "
    "is kept; send a message to continue."
)


class RunManager:
    """The runs of one process (one event loop)."""

    def __init__(
        self,
        *,
        provider_factory: Callable[[], Provider] = get_provider,
        tools_factory: Callable[[], ToolRegistry] = builtin_tools,
        log: EventLog | None = None,
    ):
        self.provider_factory = provider_factory
        self.tools_factory = tools_factory
        self.log = log if log is not None else default_event_log()
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- what sockets ask for ------------------------------------------------------------

    async def start(self, user: Any, session_id: uuid.UUID, action: turns.Action) -> dict[str, Any] | None:
        """Start the run ``action`` asks for (``chat.runs.turns`` decides whether it may).

        Returns an event for the sender alone when nothing new starts: an action stored
        already is acknowledged again instead of being stored twice.
        """
        try:
            after = await self.log.last_id(ChatRef(user.pk, session_id))
        except Exception:  # noqa: BLE001 - without the log a page opened mid-run shows less, nothing more
            after = 0
        begun = await turns.start_turn(user, session_id, action, storage=get_storage(), events_after=after)
        if isinstance(begun, turns.Acknowledged):
            return begun.event
        task = asyncio.get_running_loop().create_task(self._run(user, begun))
        key = str(session_id)
        self._runs[key] = task
        task.add_done_callback(lambda _: self._runs.pop(key, None))
        return None

    async def cancel(self, user: Any, session_id: str) -> None:
        """Stop the session's run, wherever it runs; what it streamed is kept."""
        session = await db_async(services.get_session)(user, session_id)
        if session.state != State.RUNNING:
            raise UserError("not_running", "Nothing is running in this chat.")
        local = self._runs.get(str(session.pk))
        if local is not None:
            local.cancel()
        elif settings.REDIS_URL and session.run_id is not None:
            # Another process runs it: leave it a flag it checks a few times a second.
            await PerLoopRedis.from_settings().get().set(keys.run_cancel(str(session.run_id)), 1, ex=60)

    async def recover(self, session_id: uuid.UUID | None = None) -> list[ChatRef]:
        """Fail runs whose process died (all, or one session's) and tell their sockets."""
        failed = await db_async(services.fail_stale_runs)(settings.RUN_STALE_AFTER, session_id=session_id)
        for chat in failed:
            logger.warning("run of session %s stopped beating; marked failed", chat.session_id)
            await Publisher(chat, log=self.log).publish([events.error("run_interrupted", INTERRUPTED, retryable=True)])
        return failed

    def ensure_sweeper(self) -> None:
        """Start this process's periodic search for dead runs (once)."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    # --- running -------------------------------------------------------------------------

    async def _run(self, user: Any, turn: turns.Turn) -> None:
        chat, run_id, session_id = turn.chat, turn.run_id, str(turn.chat.session_id)
        publisher = RunPublisher(Publisher(chat, log=self.log))
        this = asyncio.current_task()
        assert this is not None
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        helpers = [loop.create_task(self._heartbeat(session_id, run_id, this, stop))]
        if settings.REDIS_URL:
            helpers.append(loop.create_task(self._watch_for_cancel(run_id, this, stop)))
        provider = self.provider_factory()
        stream = run_turn(MessageManager(session_id, user), provider, self.tools_factory(), step=turn.step)
        state = State.IDLE
        last: dict[str, Any] | None = None  # the event that ends the run, sent last of all
        try:
            for event in turn.events:
                await publisher.put(event)
            if turn.title_from is not None:
                schedule_title(session_id, turn.title_from, self._publish_to(chat))
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
            # Cancelled to cut short a call in flight, and told to stop: redis-py can turn
            # a cancellation that meets one of its timeouts into an ordinary error, which
            # the helpers survive by design.
            stop.set()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            with suppress(Exception):
                await provider.aclose()
            await publisher.close()
            # The session's state changes before the clients hear the run ended, so that a
            # click on the answer that ending shows them can never find the run still busy.
            await db_async(services.end_run)(session_id, run_id, state)
            if last is not None:
                await Publisher(chat, log=self.log).publish([last])

    async def _kept_reply(self, session_id: str) -> dict[str, Any] | None:
        """The reply a cancelled run left unfinished, as stored (None if it left none)."""
        try:
            [last] = await get_storage().load_recent_messages(session_id, 1)
        except Exception:  # noqa: BLE001 - the announcement is a courtesy; the reply is stored
            return None
        return last if last["role"] == "assistant" and not last["finished"] else None

    def _publish_to(self, chat: ChatRef) -> Callable[[dict[str, Any]], Any]:
        async def publish(event: dict[str, Any]) -> None:
            await Publisher(chat, log=self.log).publish([event])

        return publish

    async def _heartbeat(self, session_id: str, run_id: uuid.UUID, run: asyncio.Task[None], stop: asyncio.Event) -> None:
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

    async def _watch_for_cancel(self, run_id: uuid.UUID, run: asyncio.Task[None], stop: asyncio.Event) -> None:
        """Cancel ``run`` when another process asks (a flag in Redis, checked a few times a
        second). Only needed with Redis: in the embedded mode one process runs everything."""
        redis = PerLoopRedis.from_settings()
        key = keys.run_cancel(str(run_id))
        while not await _stopped(stop, CANCEL_POLL_INTERVAL):
            try:
                requested = await redis.get().exists(key)
            except Exception:  # noqa: BLE001 - Redis away: only remote cancel is lost meanwhile
                continue
            if requested:
                run.cancel()
                return

    async def _sweep_forever(self) -> None:
        while True:
            # Sleep first: at start-up, the sockets reconnecting find their own dead runs.
            await asyncio.sleep(settings.RUN_STALE_AFTER / 2)
            try:
                await self.recover()
            except Exception:  # noqa: BLE001 - try again at the next sweep
                logger.warning("sweep for dead runs failed", exc_info=True)


async def _stopped(stop: asyncio.Event, interval: float) -> bool:
    """Wait ``interval`` seconds or until ``stop`` is set; True if it is."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), interval)
    return stop.is_set()


# Events that end a run, and the state the session is left in.
_ENDINGS = {"complete": State.IDLE, "awaiting_user_input": State.AWAITING_INPUT, "error": State.FAILED}


_managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RunManager] = weakref.WeakKeyDictionary()


def get_run_manager() -> RunManager:
    """This event loop's RunManager."""
    loop = asyncio.get_running_loop()
    manager = _managers.get(loop)
    if manager is None:
        manager = _managers[loop] = RunManager()
    return manager
