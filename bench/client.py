"""The benchmark's chat client: one socket of one chat, every wait bounded.

It checks what it reads as a browser would need it: event ids follow each other without a
gap from the ``ready`` on (a gap here is an event the server lost: the relay fills gaps from
the log before they reach a socket), and the reply's deltas add up to the stored reply.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.servers import BenchError

OPEN_TIMEOUT = 30.0
REPLY_TIMEOUT = 120.0
CLOSE_UNAVAILABLE = 4503
# Pauses before opening again a socket refused with 4503 (a process's Redis breaker stays
# open REDIS_RETRY_INTERVAL, 2 s by default).
UNAVAILABLE_RETRY_PAUSES = (1.0, 1.0, 2.0, 2.0)
# Sockets refused with 4503 and opened again, by server address.
REFUSED: Counter[str] = Counter()


class SocketClosed(BenchError):
    def __init__(self, code: int | None, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Reply:
    sent_at: float
    first_delta_at: float | None = None
    done_at: float | None = None
    deltas: int = 0
    text: list[str] = field(default_factory=list)
    stored: str | None = None  # the finished reply, as its final ``message`` says

    @property
    def first_delta(self) -> float:
        assert self.first_delta_at is not None
        return self.first_delta_at - self.sent_at


async def connect_socket(base_url: str, cookie: str, path: str) -> ClientConnection:
    """A websocket to ``base_url`` (``http://host:port``) as the logged-in browser opens it."""
    try:
        return await connect(
            base_url.replace("http://", "ws://", 1) + path,
            additional_headers={"Cookie": f"sessionid={cookie}", "Origin": base_url},
            compression=None,
            proxy=None,
            max_size=None,
            max_queue=None,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,  # keepalive pings would only add work on both sides
            close_timeout=5,
        )
    except (OSError, TimeoutError) as exc:
        raise BenchError(f"cannot open a socket at {base_url}{path}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the handshake was refused (HTTP 403, 500, …)
        raise BenchError(f"the server refused the socket {base_url}{path}: {exc}") from exc


class Chat:
    """A socket on one chat (a new one unless ``session_id`` is given)."""

    def __init__(self, ws: ClientConnection, session_id: str, *, base_url: str = "", cookie: str = ""):
        self.ws = ws
        self.session_id = session_id
        self.base_url, self.cookie = base_url, cookie
        self.last_id = 0

    @classmethod
    async def open(cls, base_url: str, cookie: str, *, session_id: str | None = None) -> Chat:
        """Connect to ``base_url`` (``http://host:port``) and wait for ``ready``.

        A socket closed with 4503 (database or Redis unavailable) is opened again after a
        pause, as the chat page does; ``REFUSED`` counts how often that happened.
        """
        session_id = session_id or str(uuid.uuid4())
        for pause in (*UNAVAILABLE_RETRY_PAUSES, None):
            chat = cls(await connect_socket(base_url, cookie, f"/ws/chat/{session_id}/"), session_id, base_url=base_url, cookie=cookie)
            try:
                ready = await chat.recv(OPEN_TIMEOUT, "ready")
            except SocketClosed as closed:
                if closed.code != CLOSE_UNAVAILABLE or pause is None:
                    raise
                REFUSED[base_url] += 1
                await asyncio.sleep(pause)
                continue
            if ready.get("type") != "ready":
                raise BenchError(f"expected ready, got {ready}")
            chat.last_id = ready["last_event_id"]
            return chat
        raise AssertionError("unreachable")

    async def recv(self, timeout: float, waiting_for: str) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            raise BenchError(f"no frame in {timeout:.0f} s while waiting for {waiting_for} (chat {self.session_id})") from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            raise SocketClosed(code, f"socket closed with {code} while waiting for {waiting_for} (chat {self.session_id})") from exc
        frame = json.loads(raw)
        if "id" in frame:
            if frame["id"] != self.last_id + 1:
                raise BenchError(f"event ids jump from {self.last_id} to {frame['id']} (chat {self.session_id}): events lost")
            self.last_id = frame["id"]
        elif frame.get("type") == "error":
            raise BenchError(f"the server refused a frame (chat {self.session_id}): {frame}")
        return frame

    @property
    def closed(self) -> bool:
        """The server closed the socket (the client library reads close frames by itself)."""
        return self.ws.close_code is not None

    async def reopen(self) -> None:
        """A new socket on the same chat, after the server closed this one."""
        await self.close()
        fresh = await Chat.open(self.base_url, self.cookie, session_id=self.session_id)
        self.ws, self.last_id = fresh.ws, fresh.last_id

    async def send_message(self, text: str) -> Reply:
        reply = Reply(sent_at=time.perf_counter())
        try:
            await self.ws.send(json.dumps({"type": "user_message", "text": text, "client_id": uuid.uuid4().hex}))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            raise SocketClosed(code, f"socket closed with {code} before the message went out (chat {self.session_id})") from exc
        return reply

    async def read_reply(
        self, reply: Reply, *, title: bool = False, check_text: bool = True, timeout: float = REPLY_TIMEOUT
    ) -> Reply:
        """Read until the run's ``complete`` (and, with ``title``, the chat's ``title``).

        ``check_text``: the deltas must add up to the stored reply (not so for the firehose
        model, which stores a summary of what it streamed).
        """
        deadline = time.monotonic() + timeout
        titled = not title
        while reply.done_at is None or not titled:
            frame = await self.recv(max(0.1, deadline - time.monotonic()), "the reply to end")
            kind = frame["type"]
            if kind == "text_delta":
                reply.first_delta_at = reply.first_delta_at or time.perf_counter()
                reply.deltas += 1
                reply.text.append(frame["text"])
            elif kind == "message" and frame["role"] == "assistant" and frame["finished"]:
                reply.stored = _text(frame["content"])
            elif kind == "title":
                titled = True
            elif kind == "complete":
                reply.done_at = time.perf_counter()
            elif kind == "error":
                raise BenchError(f"the run failed (chat {self.session_id}): {frame}")
        if reply.first_delta_at is None:
            raise BenchError(f"the run ended without streaming a word (chat {self.session_id})")
        if check_text and reply.stored is not None and reply.stored != "".join(reply.text):
            raise BenchError(f"the streamed deltas do not add up to the stored reply (chat {self.session_id})")
        return reply

    async def read_deltas(self, count: int, timeout: float = REPLY_TIMEOUT) -> float:
        """Read until ``count`` text_deltas arrived; seconds from the first to the last."""
        deadline = time.monotonic() + timeout
        first, seen = 0.0, 0
        while seen < count:
            frame = await self.recv(max(0.1, deadline - time.monotonic()), f"delta {seen + 1} of {count}")
            if frame["type"] == "text_delta":
                seen += 1
                first = first or time.perf_counter()
        return time.perf_counter() - first

    async def read_until(self, kind: str, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """Read until a frame of type ``kind`` (returned) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.1, deadline - time.monotonic()), kind)
            if frame["type"] == kind:
                return frame

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 10)
        except Exception:  # noqa: BLE001 - closing a socket the server dropped may fail: it is gone either way
            pass


async def close_all(chats: list[Chat]) -> None:
    await asyncio.gather(*(chat.close() for chat in chats))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")
