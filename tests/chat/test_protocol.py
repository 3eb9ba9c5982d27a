"""Every client frame rule of the websocket protocol, without a socket."""

from __future__ import annotations

import json

import pytest

from chat import protocol
from chat.errors import UserError


def parse(frame=None, *, raw=None, bytes_data=None):
    text = raw if raw is not None else (json.dumps(frame) if frame is not None else None)
    return protocol.parse(text, bytes_data, max_frame_bytes=1000, max_text_chars=100)


def test_valid_frames_become_commands():
    assert parse({"type": "user_message", "text": "hi", "client_id": "c-1"}) == protocol.SendMessage("hi", "c-1")
    assert parse({"type": "user_message", "text": "hi", "extra": 1}) == protocol.SendMessage("hi", None)
    assert parse({"type": "interactive_response", "tool_use_id": "t", "choice": "A"}) == protocol.Answer("t", "A")
    assert parse({"type": "cancel"}) == protocol.Cancel()
    assert parse({"type": "resume", "after": 0}) == protocol.Resume(0)
    assert parse({"type": "ack", "last": 12}) == protocol.Ack(12)


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"raw": "{not json"}, "invalid_json"),
        ({"raw": "[1, 2]"}, "invalid_frame"),
        ({"raw": '"text"'}, "invalid_frame"),
        ({"frame": {"text": "no type"}}, "invalid_frame"),
        ({"frame": {"type": 5}}, "invalid_frame"),
        ({"frame": {"type": "dance"}}, "unknown_type"),
        ({"bytes_data": b"\x00\x01"}, "binary_frame"),
        ({"raw": json.dumps({"type": "user_message", "text": "x" * 2000})}, "frame_too_large"),
        ({"frame": {"type": "user_message", "text": "x" * 101}}, "text_too_long"),
        ({"frame": {"type": "user_message"}}, "invalid_field"),
        ({"frame": {"type": "user_message", "text": 5}}, "invalid_field"),
        ({"frame": {"type": "user_message", "text": "   "}}, "empty_message"),
        ({"frame": {"type": "user_message", "text": "hi", "client_id": "a b"}}, "invalid_field"),
        ({"frame": {"type": "user_message", "text": "hi", "client_id": 7}}, "invalid_field"),
        ({"frame": {"type": "interactive_response", "choice": "A"}}, "invalid_field"),
        ({"frame": {"type": "interactive_response", "tool_use_id": "t", "choice": ["A"]}}, "invalid_field"),
        ({"frame": {"type": "resume"}}, "invalid_field"),
        ({"frame": {"type": "resume", "after": "3"}}, "invalid_field"),
        ({"frame": {"type": "resume", "after": -1}}, "invalid_field"),
        ({"frame": {"type": "resume", "after": True}}, "invalid_field"),
        ({"frame": {"type": "ack", "last": 1.5}}, "invalid_field"),
    ],
)
def test_bad_frames_get_a_specific_error_code(kwargs, code):
    with pytest.raises(UserError) as caught:
        parse(**kwargs)
    assert caught.value.code == code
    assert caught.value.message


def test_error_frames_say_whether_trying_again_helps():
    assert protocol.error_frame(UserError("busy", "wait"))["retryable"] is True
    assert protocol.error_frame(UserError("invalid_json", "bad"))["retryable"] is False
