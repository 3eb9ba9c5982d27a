"""Publishing a chat's events: number them in the event log, then hand them to the
sockets: this process's directly (``chat.runs.hub``), other processes' through the Redis
channel the log's append script publishes on.

The log comes first, so that an event a socket receives can always also be read back from
the log: a socket that sees a gap in ids fills it from there.

If the log cannot be reached (Redis away), the events still reach this process's sockets
of the chat, numbered here after the newest id they know; the log's next append starts
above those ids (its ``floor``), so no id is ever given to two events. The messages are in
the durable store whatever happens: a client that missed events reloads them.

``RunPublisher`` puts a queue in front for one run: the agent loop never waits on Redis for
each delta, and whatever queued while one batch was being sent goes out as the next batch
(one log write however many events it holds). Under light load batches hold one event and
add no delay; under heavy load they grow, and the per-event cost falls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chat import metrics
from chat.ids import ChatRef
from chat.redis_client import REDIS_ERRORS
from chat.runs.eventlog import EventLog, encode
from chat.runs.hub import Hub

logger = logging.getLogger(__name__)


class Publisher:
    """The process's publisher. Failures are logged once per outage, never raised."""

    def __init__(self, log: EventLog, hub: Hub):
        self.log = log
        self.hub = hub
        self._warned = False

    async def publish(self, chat: ChatRef, events: list[dict[str, Any]], *, run_start: bool = False) -> None:
        if not events:
            return
        payloads = [encode(event) for event in events]
        floor, epoch = self.hub.position(chat)
        try:
            with metrics.EVENT_LOG_APPENDS.time():
                appended = await self.log.append(chat, payloads, floor=floor, run_start=run_start)
        except REDIS_ERRORS as exc:
            self._warn(exc)
            if not self.hub.has_sockets(chat):
                return
            last = floor + len(payloads)
        else:
            last, epoch = appended.last_id, appended.epoch
            if self._warned:
                self._warned = False
                logger.warning("The event log is reachable again.")
        await self.hub.deliver(chat, list(zip(range(last - len(payloads) + 1, last + 1), payloads)), epoch)

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "Cannot write the event log (%s: %s); events reach this process's sockets only, "
                "and replies are stored and shown on reload.",
                type(exc).__name__,
                exc,
            )


class RunPublisher:
    """A buffer in front of the publisher for one run's events, drained in batches by one
    task (order is kept): whatever was put while one batch was being published goes out
    as the next. Putting an event is a list append while the buffer has room."""

    def __init__(self, publisher: Publisher, chat: ChatRef, *, max_batch: int = 500, max_queued: int = 10_000):
        self.publisher = publisher
        self.chat = chat
        self.max_batch = max_batch
        self.max_queued = max_queued
        self._pending: list[dict[str, Any]] = []
        self._closed = False
        self._wake = asyncio.Event()  # something was put (or the publisher closed)
        self._room = asyncio.Event()  # the buffer is below max_queued
        self._room.set()
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def put(self, event: dict[str, Any]) -> None:
        """Buffer an event; waits only when the buffer is full (Redis far behind)."""
        while len(self._pending) >= self.max_queued:
            self._room.clear()
            await self._room.wait()
        self._pending.append(event)
        self._wake.set()

    async def close(self) -> None:
        """Publish everything buffered, then stop."""
        self._closed = True
        self._wake.set()
        await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            self._room.set()
            for start in range(0, len(batch), self.max_batch):
                try:
                    await self.publisher.publish(self.chat, batch[start : start + self.max_batch])
                except Exception:  # noqa: BLE001 - a bad event must not stop the ones after it
                    logger.exception("publishing events of chat %s failed", self.chat.session_id)
            if self._closed and not self._pending:
                return
