"""A local fake of the Anthropic Messages API, for driving the real SDK in tests.

A real HTTP server (in a thread) that answers ``POST /v1/messages`` from a script, one
scripted response per request, in order, and records every request body it received:

- ``stream(...)``: a streaming reply in the API's SSE format (message_start, ping,
  content_block_start / content_block_delta (text_delta, input_json_delta) /
  content_block_stop, message_delta with usage, message_stop), chunked like the API's;
  it can cut the connection after a number of events, end cleanly without
  ``message_stop``, or wait on a ``threading.Event`` after a number of events;
- ``error(status, type)``: an error response (429 with retry-after, 529, 500…);
- ``message(text)``: a non-streaming reply (titles).

A request with nothing scripted gets a 500 with ``no scripted response`` so the test
fails loudly.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # For a stream: (event name, data) pairs. For anything else: a JSON body.
    events: list[tuple[str, dict[str, Any]]] | None = None
    body: dict[str, Any] | None = None
    cut_after: int | None = None  # drop the connection after this many events
    hold_after: int | None = None  # wait for ``release`` after this many events
    release: threading.Event | None = None


def text_block(*chunks: str) -> tuple[str, tuple[str, ...]]:
    return ("text", chunks)


def tool_block(tool_use_id: str, name: str, tool_input: dict[str, Any], pieces: int = 3) -> tuple[str, Any]:
    """A tool_use block whose input JSON arrives in ``pieces`` input_json_delta events."""
    raw = json.dumps(tool_input)
    size = max(1, -(-len(raw) // pieces))
    return ("tool_use", (tool_use_id, name, [raw[i : i + size] for i in range(0, len(raw), size)]))


def stream(
    *blocks: tuple[str, Any],
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
    cut_after: int | None = None,
    end_without_stop: bool = False,
    hold_after: int | None = None,
    release: threading.Event | None = None,
) -> Scripted:
    """A streamed reply made of ``text_block``s and ``tool_block``s."""
    usage = {"input_tokens": 50, "output_tokens": 12, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, **(usage or {})}
    if stop_reason is None:
        stop_reason = "tool_use" if any(kind == "tool_use" for kind, _ in blocks) else "end_turn"
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": usage["input_tokens"],
                        "output_tokens": 1,
                        "cache_read_input_tokens": usage["cache_read_input_tokens"],
                        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                    },
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, (kind, data) in enumerate(blocks):
        if kind == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}))
            for chunk in data:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}}))
        else:
            tool_use_id, name, pieces = data
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": tool_use_id, "name": name, "input": {}}},
                )
            )
            for piece in pieces:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": usage["output_tokens"]}},
        )
    )
    if not end_without_stop:
        events.append(("message_stop", {"type": "message_stop"}))
    return Scripted(events=events, cut_after=cut_after, hold_after=hold_after, release=release)


def stream_error(error_type: str = "overloaded_error", after: int = 2) -> Scripted:
    """A stream that starts, then reports an ``error`` event (as the API does when overloaded)."""
    events = stream(text_block())
    head = events.events[:after]  # type: ignore[index]
    return Scripted(events=[*head, ("error", {"type": "error", "error": {"type": error_type, "message": "Overloaded"}})])


def error(status: int, error_type: str, message: str = "fake error", headers: dict[str, str] | None = None) -> Scripted:
    return Scripted(
        status=status,
        headers=headers or {},
        body={"type": "error", "error": {"type": error_type, "message": message}},
    )


def message(text: str) -> Scripted:
    """A non-streamed reply."""
    return Scripted(
        body={
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 5},
        }
    )


class FakeAnthropicServer:
    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._releases: list[threading.Event] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, *responses: Scripted) -> None:
        self.script.extend(responses)
        self._releases.extend(r.release for r in responses if r.release is not None)

    def start(self) -> FakeAnthropicServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        for release in self._releases:
            release.set()
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever, so only once it runs
        self._server.server_close()

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Scripted | None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self.script.popleft() if self.script else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                return None

            def do_POST(self) -> None:  # noqa: N802 - the base's name
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                scripted = fake._next(body, {k.lower(): v for k, v in self.headers.items()})
                if scripted is None:
                    scripted = error(500, "api_error", "no scripted response")
                if scripted.events is None:
                    self._json(scripted)
                else:
                    self._stream(scripted)

            def _json(self, scripted: Scripted) -> None:
                payload = json.dumps(scripted.body).encode()
                self.send_response(scripted.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("connection", "close")
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.close_connection = True

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _stream(self, scripted: Scripted) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                for count, (name, data) in enumerate(scripted.events or [], start=1):
                    self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    if scripted.cut_after is not None and count >= scripted.cut_after:
                        # No final chunk: the client sees the body end mid-message.
                        return
                    if scripted.hold_after is not None and count == scripted.hold_after and scripted.release:
                        scripted.release.wait(timeout=30)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler
