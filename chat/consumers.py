"""The chat websocket: authorise, parse, hand off, relay. Nothing else.

User actions go to the run manager (which asks the turn service); what this socket is
sent is decided by its ``EventRelay``; events reach it through the process's hub
(``chat.runs.hub``), which calls ``deliver``; frames are parsed by ``chat.protocol``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, Awaitable, Callable

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agentsite import logs
from chat import metrics, protocol, runtime, services
from chat.db import db_async
from chat.errors import OUTAGES, NotFound, UserError
from chat.ids import ChatRef, parse_chat_id
from chat.models import ChatSession
from chat.runs import turns
from chat.runs.relay import EventRelay, Sent, TooSlow

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408
# The database or Redis could not be reached: try again later.
CLOSE_UNAVAILABLE = 4503

try:
    # What daphne raises for a send on a socket the client has just closed.
    from autobahn.exception import Disconnected

    CLOSED: tuple[type[BaseException], ...] = (Disconnected,)
except ImportError:  # pragma: no cover - another ASGI server
    CLOSED = ()

UNAVAILABLE = UserError("unavailable", "The service is briefly unavailable; nothing was lost. Try again in a moment.")



class ChatConsumer(AsyncWebsocketConsumer):
    chat: ChatRef | None = None
    relay: EventRelay | None = None
    # Events the hub delivers before ``ready`` went out wait here, to follow it in order.
    _early: list[tuple[list[tuple[int, bytes]], str]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the consumer ends (even by an exception), leave the hub.
            self._leave()

    async def connect(self) -> None:
        await self.accept()  # accept first: a close code only reaches an accepted socket
        if self.scope.get("outage"):  # the handshake could not read the session (agentsite.websocket)
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        try:
            await self._open()
        except NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
        except OUTAGES:
            logger.warning("cannot open a chat socket: database or Redis unavailable", exc_info=True)
            self._leave()
            await self.close(code=CLOSE_UNAVAILABLE)

    async def _open(self) -> None:
        rt = runtime.get()
        await rt.start()  # once per process (the ASGI app starts it first; tests skip the app)
        sid = parse_chat_id(self.scope["url_route"]["kwargs"]["session_id"])
        # This socket's log lines (and its runs', started from here) say whose they are.
        logs.bind(request_id=uuid.uuid4().hex, session_id=sid, user_id=self.user.pk)
        state = await db_async(services.socket_state)(self.user, sid)
        # The user's address of the chat: a run publishes under the owner's, so a socket of
        # anyone else never hears of it (chat.ids).
        self.chat = ChatRef(self.user.pk, sid)
        self._relaying = asyncio.Lock()  # relay calls and their frames go out one at a time
        self._early = []
        # Joined before reading the position: nothing published from then on can be missed.
        await rt.hub.join(self.chat, self)
        position = await rt.log.position(self.chat)
        rt.hub.note(self.chat, position.last_id, position.epoch)
        metrics.SOCKETS_OPEN.inc()
        self.relay = EventRelay(
            self.chat,
            rt.log,
            last_sent=position.last_id,
            epoch=position.epoch,
            window=settings.WS_ACK_WINDOW,
            unacked_limit=settings.WS_UNACKED_LIMIT,
        )
        if await rt.runs.recover(sid) or state["state"] == ChatSession.State.RUNNING:
            # A run we (or a sweep) just found dead is failed now; its error event follows
            # this ready, live.
            state = await db_async(services.socket_state)(self.user, sid)
        running = state["state"] == ChatSession.State.RUNNING
        await self._send(
            {
                "type": "ready",
                "last_event_id": position.last_id,
                "log_epoch": position.epoch,
                "model": rt.provider.display_name,
                **state,
                "run_events_after": position.run_start if running else None,
            }
        )
        early, self._early = self._early, None
        for events, epoch in early:
            await self.deliver(events, epoch)

    async def disconnect(self, code: int) -> None:
        self._leave()

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
            logger.warning("websocket frame on chat %s: service unavailable", self.chat, exc_info=True)
            await self._send(protocol.error_frame(UNAVAILABLE))
        except Exception:
            logger.exception("websocket frame on chat %s failed", self.chat)
            await self._send(protocol.error_frame(UserError("internal_error", "Something went wrong on our side.")))

    async def _handle(self, command: protocol.Command) -> None:
        assert self.chat is not None
        runs = runtime.get().runs
        if isinstance(command, (protocol.SendMessage, protocol.Choose, protocol.Edit, protocol.Regenerate, protocol.Compact)):
            begun = await runs.start_turn(self.user, self.chat.session_id, command)
            if isinstance(begun, turns.Acknowledged):
                await self._send(begun.event)
        elif isinstance(command, protocol.Switch):
            await runs.switch(self.user, self.chat.session_id, command.message_id)
        elif isinstance(command, protocol.Cancel):
            await runs.cancel(self.user, self.chat.session_id)
        elif isinstance(command, protocol.Resume):
            await self._relay(lambda relay: relay.resume(command.after))
        elif isinstance(command, protocol.Ack):
            await self._relay(lambda relay: relay.ack(command.last))

    # --- what the hub calls (chat.runs.hub.Listener) ---------------------------------------

    async def deliver(self, events: list[tuple[int, bytes]], epoch: str) -> None:
        if self._early is not None:
            self._early.append((events, epoch))
            return
        try:
            await self._relay(lambda relay: relay.live(events, epoch))
        except TooSlow:
            await self.close(code=CLOSE_TOO_SLOW)
        except CLOSED:
            # The client went away while its disconnect is still queued for this consumer.
            self._leave()

    async def catch_up(self) -> None:
        try:
            await self._relay(lambda relay: relay.catch_up())
        except TooSlow:
            await self.close(code=CLOSE_TOO_SLOW)

    async def unavailable(self) -> None:
        self._leave()
        await self.close(code=CLOSE_UNAVAILABLE)

    # ---------------------------------------------------------------------------------------

    async def _relay(self, call: Callable[[EventRelay], Awaitable[Sent]]) -> None:
        async with self._relaying:
            if self.relay is not None:
                await self._deliver(await call(self.relay))

    async def _deliver(self, sent: Sent) -> None:
        send = self.base_send  # every streamed event comes here: the shortest way out
        for frame in sent.frames:
            await send({"type": "websocket.send", "text": frame})

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, allow_nan=False))

    def _leave(self) -> None:
        chat, relay, self.chat, self.relay = self.chat, self.relay, None, None
        if relay is not None:
            metrics.SOCKETS_OPEN.dec()
        if chat is not None:
            runtime.get().hub.leave(chat, self)
