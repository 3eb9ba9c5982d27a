"""The websocket protocol (v1): client frames parsed into commands, or a UserError.

Pure functions, so every rule about what a client may send is testable without a socket.
Unknown extra fields are ignored (newer clients may send more); missing or mistyped ones
are errors naming the field.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Union

import orjson
from django.conf import settings

from chat import text as user_text
from chat.errors import UserError
from chat.runs.turns import Choose, Compact, Edit, Regenerate, SendMessage

CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
# Event ids are at most what a JavaScript number holds exactly (and far below Redis's 2^63).
MAX_EVENT_ID = 2**53 - 1


@dataclass(frozen=True)
class Switch:
    message_id: uuid.UUID


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Resume:
    after: int


@dataclass(frozen=True)
class Ack:
    last: int


# Actions that start runs are the turn service's own types: parsed here, used there.
Command = Union[SendMessage, Choose, Edit, Regenerate, Compact, Switch, Cancel, Resume, Ack]


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
    if not 0 <= value <= MAX_EVENT_ID:
        raise UserError("invalid_field", f"'{name}' must be an event id from 0 to {MAX_EVENT_ID}.")
    return value


def _message_id(frame: dict[str, Any]) -> uuid.UUID:
    value = _field(frame, "message_id", str)
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise UserError("invalid_field", "'message_id' must be a message's id.") from None
    return parsed


def _client_id(frame: dict[str, Any]) -> str | None:
    client_id = _field(frame, "client_id", str, required=False)
    if client_id is not None and not CLIENT_ID.match(client_id):
        raise UserError("invalid_field", "'client_id' must be 1 to 100 letters, digits or . _ : -")
    return client_id


def _attachments(frame: dict[str, Any]) -> tuple[uuid.UUID, ...]:
    """The ids of the files uploaded for this message (``POST …/attachments/``), if any."""
    value = frame.get("attachments")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError("invalid_field", "'attachments' must be a list of upload ids.")
    limit = settings.ATTACHMENT_MAX_PER_MESSAGE
    if len(value) > limit:
        raise UserError("too_many_attachments", f"A message can carry at most {limit} files.")
    try:
        return tuple(uuid.UUID(v) for v in value)
    except ValueError:
        raise UserError("invalid_field", "'attachments' must be a list of upload ids.") from None


def message_text(text: str, attachments: tuple[uuid.UUID, ...], *, max_chars: int) -> str:
    """The text of a message; with files it may be empty (the files are the message)."""
    if attachments and user_text.invisible(text):
        return ""
    return user_text.check_message(text, max_chars=max_chars)


def parse(text: str | None, bytes_data: bytes | None, *, max_frame_bytes: int, max_text_chars: int) -> Command:
    if bytes_data is not None:
        raise UserError("binary_frame", "Binary frames are not supported; send JSON text.")
    if text is None:
        raise UserError("invalid_frame", "Empty frame.")
    if len(text) > max_frame_bytes or len(text.encode()) > max_frame_bytes:
        raise UserError("frame_too_large", f"Frames can be at most {max_frame_bytes} bytes.")
    try:
        # orjson, not json: it refuses nesting past 1,024 levels with an error instead of
        # recursing into a RecursionError, and strings that are not valid Unicode.
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):
            raise UserError("invalid_text", "The frame holds a lone surrogate, which is not valid Unicode.") from None
        raise UserError("invalid_json", f"The frame is not valid JSON ({str(exc).split(':')[0]}).") from None
    if not isinstance(frame, dict):
        raise UserError("invalid_frame", "A frame must be a JSON object with a 'type'.")
    kind = frame.get("type")
    if kind == "user_message":
        attachments = _attachments(frame)
        message = message_text(_field(frame, "text", str), attachments, max_chars=max_text_chars)
        return SendMessage(text=message, client_id=_client_id(frame), attachments=attachments)
    if kind == "interactive_response":
        tool_use_id = _field(frame, "tool_use_id", str)
        choice = _field(frame, "choice", str)
        if len(choice) > max_text_chars:
            raise UserError("text_too_long", f"A choice can be at most {max_text_chars} characters.")
        return Choose(tool_use_id=tool_use_id, choice=choice)
    if kind == "edit":
        message_id = _message_id(frame)
        edited = user_text.check_message(_field(frame, "text", str), max_chars=max_text_chars)
        return Edit(message_id=message_id, text=edited, client_id=_client_id(frame))
    if kind == "regenerate":
        return Regenerate(message_id=_message_id(frame))
    if kind == "switch":
        return Switch(message_id=_message_id(frame))
    if kind == "compact":
        return Compact()
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
RETRYABLE = frozenset({"busy", "rate_limited", "unavailable", "quota_busy"})


def error_frame(error: UserError, **extra: Any) -> dict[str, Any]:
    """An error for the one socket that caused it (not logged, so no id)."""
    # The error's own fields (a quota's resets_at) beside code and message.
    return {
        "type": "error",
        **error.as_dict(),
        "retryable": error.code in RETRYABLE,
        **extra,
    }
