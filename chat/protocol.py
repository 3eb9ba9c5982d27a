"""The websocket protocol (v1): client frames parsed into commands, or a UserError.

Pure functions, so every rule about what a client may send is testable without a socket.
Unknown extra fields are ignored (newer clients may send more); missing or mistyped ones
are errors naming the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Union

from chat.errors import UserError

CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


@dataclass(frozen=True)
class SendMessage:
    text: str
    client_id: str | None


@dataclass(frozen=True)
class Answer:
    tool_use_id: str
    choice: str


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Resume:
    after: int


@dataclass(frozen=True)
class Ack:
    last: int


Command = Union[SendMessage, Answer, Cancel, Resume, Ack]


def _field(frame: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = frame.get(name)
    if value is None and not required:
        return None
    # bool is an int in Python; a JSON true is never a valid id.
    if not isinstance(value, kind) or isinstance(value, bool):
        article = "an integer" if kind is int else "a string"
        raise UserError("invalid_field", f"'{name}' must be {article}.")
    return value


def _event_id(frame: dict[str, Any], name: str) -> int:
    value = _field(frame, name, int)
    if value < 0:
        raise UserError("invalid_field", f"'{name}' must not be negative.")
    return value


def parse(text: str | None, bytes_data: bytes | None, *, max_frame_bytes: int, max_text_chars: int) -> Command:
    if bytes_data is not None:
        raise UserError("binary_frame", "Binary frames are not supported; send JSON text.")
    if text is None:
        raise UserError("invalid_frame", "Empty frame.")
    if len(text) > max_frame_bytes or len(text.encode()) > max_frame_bytes:
        raise UserError("frame_too_large", f"Frames can be at most {max_frame_bytes} bytes.")
    try:
        frame = json.loads(text)
    except ValueError:
        raise UserError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise UserError("invalid_frame", "A frame must be a JSON object with a 'type'.")
    kind = frame.get("type")
    if kind == "user_message":
        message = _field(frame, "text", str)
        if not message.strip():
            raise UserError("empty_message", "The message is empty.")
        if len(message) > max_text_chars:
            raise UserError("text_too_long", f"A message can be at most {max_text_chars} characters.")
        client_id = _field(frame, "client_id", str, required=False)
        if client_id is not None and not CLIENT_ID.match(client_id):
            raise UserError("invalid_field", "'client_id' must be 1 to 100 letters, digits or . _ : -")
        return SendMessage(text=message, client_id=client_id)
    if kind == "interactive_response":
        tool_use_id = _field(frame, "tool_use_id", str)
        choice = _field(frame, "choice", str)
        if len(choice) > max_text_chars:
            raise UserError("text_too_long", f"A choice can be at most {max_text_chars} characters.")
        return Answer(tool_use_id=tool_use_id, choice=choice)
    if kind == "cancel":
        return Cancel()
    if kind == "resume":
        return Resume(after=_event_id(frame, "after"))
    if kind == "ack":
        return Ack(last=_event_id(frame, "last"))
    if not isinstance(kind, str):
        raise UserError("invalid_frame", "A frame must be a JSON object with a 'type'.")
    raise UserError("unknown_type", f"Unknown frame type {kind[:50]!r}.")


# Errors that go away if the client simply tries again a little later.
RETRYABLE = frozenset({"busy", "rate_limited", "unavailable"})


def error_frame(error: UserError, **extra: Any) -> dict[str, Any]:
    """An error for the one socket that caused it (not logged, so no id)."""
    return {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "retryable": error.code in RETRYABLE,
        **extra,
    }
