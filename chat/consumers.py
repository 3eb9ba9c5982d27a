"""The chat websocket: authorise, parse, hand off, relay. Nothing else.

Runs live in ``chat.runs.manager`` (detached from this socket); what this socket is sent
is decided by ``chat.runs.relay``; frames are parsed by ``chat.protocol``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from chat import protocol, services
from chat.agent.providers import get_provider
from chat.db import db_async
from chat.errors import NotFound, UserError
from chat.ids import ChatRef, parse_chat_id
from chat.models import ChatSession
from chat.runs.eventlog import default_event_log
from chat.runs.manager import get_run_manager
from chat.runs.relay import EventRelay, Sent, TooSlow
from chat.storage import keys

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408
# The database or Redis could not be reached while opening the socket: try again later.
CLOSE_UNAVAILABLE = 4503

# A socket that heard nothing for this long asks the log whether it missed a run's last
# events; while nothing comes, it asks again less and less often, up to LOG_CHECK_MAX.
LOG_CHECK_QUIET = 1.0
LOG_CHECK_MAX = 30.0

UNAVAILABLE = UserError("unavailable", "The service is briefly unavailable; nothing was lost. Try again in a moment.")
# What "the database or Redis is away" looks like from here.
OUTAGES: tuple[type[BaseException], ...] = (DatabaseError, RedisError, OSError)


class ChatConsumer(AsyncWebsocketConsumer):
    group: str | None = None
    relay: EventRelay | None = None
    _watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the consumer ends (even by an exception), leave the group.
            await self._leave()

    async def connect(self) -> None:
        await self.accept()  # accept first: a close code only reaches an accepted socket
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        try:
            await self._open()
        except OUTAGES:
            logger.warning("cannot open a chat socket: database or Redis unavailable", exc_info=True)
            await self._leave()
            await self.close(code=CLOSE_UNAVAILABLE)

    async def _open(self) -> None:
        user = self.user
        try:
            sid = parse_chat_id(self.scope["url_route"]["kwargs"]["session_id"])
            state = await db_async(services.socket_state)(user, sid)
        except NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.session_id = str(sid)
        # The user's address of the chat: a run publishes under the owner's, so a socket of
        # anyone else never hears of it (chat.ids).
        self.chat = ChatRef(user.pk, sid)
        self.group = keys.session_group(self.chat)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Joined before reading the last id: nothing published from here on can be missed.
        log = default_event_log()
        last_id, epoch = await log.position(self.chat)
        self.relay = EventRelay(
            self.chat,
            log,
            last_sent=last_id,
            window=settings.WS_ACK_WINDOW,
            unacked_limit=settings.WS_UNACKED_LIMIT,
        )
        # Relay calls and the frames they return go out one at a time, in order.
        self._relaying = asyncio.Lock()
        self._heard_at = asyncio.get_running_loop().time()
        manager = get_run_manager()
        manager.ensure_sweeper()
        recovered = await manager.recover(sid)
        if recovered or state["state"] == ChatSession.State.RUNNING:
            # A run we (or a sweep) just found dead is failed now; its error event follows
            # this ready, live.
            state = await db_async(services.socket_state)(user, self.session_id)
        await self._send({"type": "ready", "last_event_id": last_id, "log_epoch": epoch, "model": _model_name(), **state})
        self._watcher = asyncio.get_running_loop().create_task(self._watch_for_lost_events())

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.relay is None:
            return
        try:
            command = protocol.parse(
                text_data,
                bytes_data,
                max_frame_bytes=settings.WS_MAX_FRAME_BYTES,
                max_text_chars=settings.CHAT_MAX_MESSAGE_CHARS,
            )
            await self._handle(command)
        except UserError as error:
            await self._send(protocol.error_frame(error))
        except TooSlow:
            await self.close(code=CLOSE_TOO_SLOW)
        except OUTAGES:
            logger.warning("websocket frame on session %s: service unavailable", self.session_id, exc_info=True)
            await self._send(protocol.error_frame(UNAVAILABLE))
        except Exception:
            logger.exception("websocket frame on session %s failed", getattr(self, "session_id", "?"))
            await self._send(protocol.error_frame(UserError("internal_error", "Something went wrong on our side.")))

    async def _handle(self, command: protocol.Command) -> None:
        manager = get_run_manager()
        if isinstance(command, (protocol.SendMessage, protocol.Choose)):
            acknowledgement = await manager.start(self.user, self.chat.session_id, command)
            if acknowledgement is not None:
                await self._send(acknowledgement)
        elif isinstance(command, protocol.Cancel):
            await manager.cancel(self.user, self.session_id)
        elif isinstance(command, protocol.Resume):
            await self._relay(lambda relay: relay.resume(command.after))
        elif isinstance(command, protocol.Ack):
            await self._relay(lambda relay: relay.ack(command.last))

    async def chat_events(self, message: dict[str, Any]) -> None:
        """Events published to the session's group."""
        events = [(int(i), bytes(p)) for i, p in message["events"]]
        self._heard_at = asyncio.get_running_loop().time()
        try:
            await self._relay(lambda relay: relay.live(events))
        except TooSlow:
            await self.close(code=CLOSE_TOO_SLOW)

    async def _relay(self, call: Callable[[EventRelay], Awaitable[Sent]]) -> None:
        async with self._relaying:
            if self.relay is not None:
                await self._deliver(await call(self.relay))

    async def _watch_for_lost_events(self) -> None:
        """The channel layer may drop a run's last events (channels-redis drops group
        messages over capacity, silently); nothing later then reveals the gap. After a
        quiet second, the log is asked for anything newer than what was sent."""
        loop = asyncio.get_running_loop()
        checked_at, interval = loop.time(), LOG_CHECK_QUIET
        while self.relay is not None:
            now = loop.time()
            if self._heard_at > checked_at:
                interval = LOG_CHECK_QUIET  # events came since the last check: watch closely again
            due = max(self._heard_at + LOG_CHECK_QUIET, checked_at + interval)
            if now < due:
                await asyncio.sleep(min(due - now, LOG_CHECK_QUIET))
                continue
            checked_at, interval = now, min(interval * 2, LOG_CHECK_MAX)
            try:
                await self._relay(lambda relay: relay.catch_up())
            except TooSlow:
                await self.close(code=CLOSE_TOO_SLOW)
                return
            except OUTAGES:
                logger.debug("checking the event log of session %s failed", self.session_id, exc_info=True)
            except Exception:
                logger.exception("checking the event log of session %s failed", self.session_id)

    async def _deliver(self, sent: Sent) -> None:
        for frame in sent.frames:
            await self.send(text_data=frame)
        if sent.resync_last_id is not None:
            error = UserError("resync", "Some events are no longer available; reload the conversation.")
            await self._send(protocol.error_frame(error, last_event_id=sent.resync_last_id))

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, allow_nan=False))

    async def _leave(self) -> None:
        group, self.group, self.relay = self.group, None, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)


_model: str | None = None


def _model_name() -> str:
    """What the UI shows as the model answering (the provider chosen by settings)."""
    global _model
    if _model is None:
        _model = get_provider().display_name
    return _model
