"""Publishing a session's events: number them in the event log, then send them to every
socket open on the session, on any process, through the channel layer group.

The log comes first, so that an event a socket receives live can always also be read back
from the log: a socket that sees a gap in ids fills it from there (channels-redis drops
group messages silently when a channel is over capacity).

``RunPublisher`` puts a queue in front: the agent loop never waits on Redis for each
delta, and whatever queued while one batch was being sent goes out as the next batch (one
log write and one group message however many events it holds). Under light load batches
hold one event and add no delay; under heavy load they grow, and the per-event cost falls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer

from chat.ids import ChatRef
from chat.runs.eventlog import EventLog, default_event_log, encode
from chat.storage import keys

logger = logging.getLogger(__name__)

Numbered = list[tuple[int, bytes]]

try:
    from redis.exceptions import RedisError

    _UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
except ImportError:  # pragma: no cover
    _UNAVAILABLE = (OSError, asyncio.TimeoutError)


class Publisher:
    """Publishes events of one chat. Failures are logged once, never raised: the
    messages are in the durable store, and a client that missed events reloads them."""

    _warned = False

    def __init__(self, chat: ChatRef, *, log: EventLog | None = None, layer: Any = None):
        self.chat = chat
        self.log = log if log is not None else default_event_log()
        self.layer = layer if layer is not None else get_channel_layer()

    async def publish(self, events: list[dict[str, Any]]) -> Numbered:
        if not events:
            return []
        payloads = [encode(event) for event in events]
        try:
            last = await self.log.append(self.chat, payloads)
        except _UNAVAILABLE as exc:
            self._warn("event log", exc)
            return []
        numbered = list(zip(range(last - len(payloads) + 1, last + 1), payloads))
        try:
            await self.layer.group_send(
                keys.session_group(self.chat), {"type": "chat.events", "events": numbered}
            )
        except _UNAVAILABLE as exc:
            self._warn("channel layer", exc)
        else:
            if Publisher._warned:
                Publisher._warned = False
                logger.warning("Publishing events works again.")
        return numbered

    def _warn(self, what: str, exc: BaseException) -> None:
        if not Publisher._warned:
            Publisher._warned = True
            logger.warning(
                "Cannot publish events (%s: %s: %s); replies are still stored and shown on reload.",
                what,
                type(exc).__name__,
                exc,
            )


class RunPublisher:
    """A queue in front of a Publisher, drained in batches by one task (order is kept)."""

    def __init__(self, publisher: Publisher, *, max_batch: int = 500, max_queued: int = 10_000):
        self.publisher = publisher
        self.max_batch = max_batch
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(max_queued)
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def put(self, event: dict[str, Any]) -> None:
        """Queue an event; waits only when the queue is full (Redis far behind)."""
        await self._queue.put(event)

    async def close(self) -> None:
        """Publish everything queued, then stop."""
        await self._queue.put(None)
        await asyncio.shield(self._task)

    async def _drain(self) -> None:
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            item = await self._queue.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                if len(batch) >= self.max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            try:
                await self.publisher.publish(batch)
            except Exception:  # noqa: BLE001 - a bad event must not stop the ones after it
                logger.exception("publishing events of chat %s failed", self.publisher.chat)
