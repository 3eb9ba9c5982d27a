"""The chat sockets of this process, and how events reach them.

Events a run publishes on this process go straight to this process's sockets of that chat:
a method call, no Redis and no channel layer, so a run's own process streams to its
sockets even while Redis is away. Events published on other processes arrive on the
chat's Redis channel (the event log's append script publishes every batch there): the hub
holds one pub/sub connection, subscribed to the channels of the chats that have sockets
here, and hands each batch to them, skipping what this process published itself. The
requests to cancel a run travel on one more channel that every process hears.

When the subscription breaks (Redis gone), sockets here can no longer hear other
processes. Every socket of a chat whose run is not on this process is told so (it closes
with 4503; the client reconnects and resumes from the log once Redis is back); sockets of a
chat whose run is here keep streaming. When the subscription is back, every socket asks
the log for what it may have missed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from django.conf import settings

from chat.ids import ChatRef
from chat.redis_client import BREAKER, REDIS_ERRORS, SharedRedis
from chat.storage import keys

logger = logging.getLogger(__name__)

Numbered = list[tuple[int, bytes]]
# A quiet subscription pings Redis this often, so that a dead connection is noticed.
PING_INTERVAL = 5.0


class Listener(Protocol):
    """A socket, as the hub sees it."""

    async def deliver(self, events: Numbered, epoch: str) -> None: ...

    async def catch_up(self) -> None:
        """Read the log for anything newer than what was sent (events may have been missed)."""

    async def unavailable(self) -> None:
        """Events of other processes cannot reach this socket for now: close it (4503)."""


@dataclass
class _Chat:
    sockets: set[Any] = field(default_factory=set)
    # The newest id this process delivered or its sockets were told of, and its epoch:
    # where this process numbers events itself while the log is unreachable.
    last_id: int = 0
    epoch: str = ""


class Hub:
    def __init__(self, redis: SharedRedis | None, *, origin: str):
        self.redis = redis
        self.origin = origin.encode()
        self._chats: dict[ChatRef, _Chat] = {}
        self._channels: dict[bytes, ChatRef] = {}
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._subscribed = asyncio.Event()  # the listener's connection is up
        self._listener: asyncio.Task[None] | None = None
        # Set by the run manager: is the chat's run on this process? What to cancel.
        self.runs_here: Callable[[ChatRef], bool] = lambda chat: False
        self.on_cancel: Callable[[str], None] = lambda run_id: None

    # --- sockets -----------------------------------------------------------------------

    async def join(self, chat: ChatRef, socket: Listener) -> None:
        """Deliver the chat's events to ``socket`` from now on (raises if Redis is away)."""
        entry = self._chats.get(chat)
        if entry is None:
            entry = self._chats[chat] = _Chat()
            if self.redis is not None:
                try:
                    await self._subscribe(chat)
                except BaseException:
                    if not entry.sockets:
                        self._chats.pop(chat, None)
                    raise
        entry.sockets.add(socket)

    def leave(self, chat: ChatRef, socket: Listener) -> None:
        entry = self._chats.get(chat)
        if entry is None:
            return
        entry.sockets.discard(socket)
        if not entry.sockets:
            del self._chats[chat]
            self._unsubscribe(chat)

    def note(self, chat: ChatRef, last_id: int, epoch: str) -> None:
        """A socket here was told of ``last_id`` (its ``ready``)."""
        entry = self._chats.get(chat)
        if entry is not None and (epoch != entry.epoch or last_id > entry.last_id):
            entry.last_id, entry.epoch = last_id, epoch

    def position(self, chat: ChatRef) -> tuple[int, str]:
        """The newest id this process delivered for the chat, and its epoch (0, "" if none)."""
        entry = self._chats.get(chat)
        return (entry.last_id, entry.epoch) if entry is not None else (0, "")

    def has_sockets(self, chat: ChatRef) -> bool:
        entry = self._chats.get(chat)
        return entry is not None and bool(entry.sockets)

    async def deliver(self, chat: ChatRef, events: Numbered, epoch: str) -> None:
        """Hand a numbered batch to this process's sockets of the chat, in order."""
        entry = self._chats.get(chat)
        if entry is None or not events:
            return
        if epoch != entry.epoch or events[-1][0] > entry.last_id:
            entry.last_id, entry.epoch = events[-1][0], epoch
        for socket in list(entry.sockets):
            try:
                await socket.deliver(events, epoch)
            except Exception:  # noqa: BLE001 - one broken socket must not starve the others
                logger.exception("delivering events of chat %s to a socket failed", chat.session_id)

    # --- other processes ---------------------------------------------------------------

    async def start(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        await self._close_pubsub()

    async def cancel_elsewhere(self, run_id: str) -> None:
        """Ask whichever process runs ``run_id`` to cancel it."""
        if self.redis is not None:
            await self.redis.get().publish(keys.run_control(), run_id)

    async def _subscribe(self, chat: ChatRef) -> None:
        channel = keys.session_channel(chat).encode()
        self._channels[channel] = chat
        BREAKER.check()
        assert self.redis is not None
        confirmed = self._confirmations[channel] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.redis.deadline):
                # The listener may be (re)connecting; it subscribes to every known channel.
                await self._subscribed.wait()
                await self._pubsub.subscribe(channel)
                # Subscribed before the socket reads the log's position: nothing published
                # from then on can be missed.
                await asyncio.shield(confirmed)
        finally:
            self._confirmations.pop(channel, None)

    def _unsubscribe(self, chat: ChatRef) -> None:
        channel = keys.session_channel(chat).encode()
        self._channels.pop(channel, None)
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(self._quietly(self._pubsub.unsubscribe(channel)))

    async def _quietly(self, call: Any) -> None:
        try:
            await call
        except REDIS_ERRORS:
            pass  # the listener notices a broken connection by itself

    async def _listen(self) -> None:
        broken = False
        while True:
            try:
                await self._connect()
                if broken:
                    broken = False
                    logger.warning("Event subscription restored; sockets catch up from the log.")
                    await self._everyone("catch_up", lambda chat: True)
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away, or a bug: either way reconnect
                if not broken:
                    broken = True
                    logger.warning("Event subscription lost (%s: %s); reconnecting.", type(exc).__name__, exc)
                await self._close_pubsub()
                # Sockets whose chat runs elsewhere cannot hear it now: they reconnect.
                await self._everyone("unavailable", lambda chat: not self.runs_here(chat))
                await asyncio.sleep(settings.REDIS_RETRY_INTERVAL)

    async def _connect(self) -> None:
        BREAKER.check()
        assert self.redis is not None
        pubsub = self.redis.get().pubsub()
        await pubsub.subscribe(keys.run_control(), *self._channels)
        self._pubsub = pubsub
        self._subscribed.set()

    async def _read(self) -> None:
        pubsub, loop = self._pubsub, asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            if BREAKER.is_open:
                raise ConnectionError("Redis failed elsewhere in this process")
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                if loop.time() - quiet_since > PING_INTERVAL:
                    await pubsub.ping()
                    quiet_since = loop.time()
                continue
            quiet_since = loop.time()
            await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            confirmed = self._confirmations.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            return
        if kind != "message":
            return
        if channel == keys.run_control().encode():
            self.on_cancel(message["data"].decode())
            return
        chat = self._channels.get(channel)
        if chat is None:
            return
        origin, epoch, first, *payloads = message["data"].split(b"\n")
        if origin == self.origin:
            return  # published here, delivered here already
        start = int(first)
        await self.deliver(chat, list(zip(range(start, start + len(payloads)), payloads)), epoch.decode())

    async def _everyone(self, method: str, which: Callable[[ChatRef], bool]) -> None:
        for chat, entry in list(self._chats.items()):
            if which(chat):
                for socket in list(entry.sockets):
                    try:
                        await getattr(socket, method)()
                    except Exception:  # noqa: BLE001 - one socket must not stop the rest
                        logger.debug("%s on a socket of chat %s failed", method, chat.session_id, exc_info=True)

    async def _close_pubsub(self) -> None:
        self._subscribed.clear()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                pass
