"""Every client frame rule of the websocket protocol, without a socket."""

from __future__ import annotations

import json
import uuid

import pytest

from chat import protocol
from chat.errors import UserError


def parse(frame=None, *, raw=None, bytes_data=None):
    text = raw if raw is not None else (json.dumps(frame) if frame is not None else None)
    return protocol.parse(text, bytes_data, max_frame_bytes=1000, max_text_chars=100)


def test_valid_frames_become_commands():
    assert parse({"type": "user_message", "text": "hi", "client_id": "c-1"}) == protocol.SendMessage("hi", "c-1")
    assert parse({"type": "user_message", "text": "hi", "extra": 1}) == protocol.SendMessage("hi", None)
    assert parse({"type": "interactive_response", "tool_use_id": "t", "choice": "A"}) == protocol.Choose("t", "A")
    assert parse({"type": "cancel"}) == protocol.Cancel()
    assert parse({"type": "resume", "after": 0}) == protocol.Resume(0)
    assert parse({"type": "ack", "last": 12}) == protocol.Ack(12)
    mid = "6f1c2d3e-0000-4000-8000-00000000000a"
    assert parse({"type": "edit", "message_id": mid, "text": "again", "client_id": "e-1"}) == protocol.Edit(
        uuid.UUID(mid), "again", "e-1"
    )
    assert parse({"type": "regenerate", "message_id": mid.upper()}) == protocol.Regenerate(uuid.UUID(mid))
    assert parse({"type": "switch", "message_id": mid}) == protocol.Switch(uuid.UUID(mid))
    assert parse({"type": "compact"}) == protocol.Compact()


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
        ({"frame": {"type": "ack", "last": 2**53}}, "invalid_field"),
        ({"frame": {"type": "resume", "after": 2**63}}, "invalid_field"),
        ({"frame": {"type": "user_message", "text": "a\x00b"}}, "invalid_text"),
        ({"raw": '{"type": "user_message", "text": "\\ud800"}'}, "invalid_text"),
        ({"frame": {"type": "user_message", "text": "\u200b\u200c\u2060"}}, "empty_message"),
        ({"frame": {"type": "user_message", "text": "\u2800 \u3164"}}, "empty_message"),
        ({"raw": "[" * 400 + "]" * 400}, "invalid_frame"),
        ({"frame": {"type": "edit", "text": "hi"}}, "invalid_field"),
        ({"frame": {"type": "edit", "message_id": "not-an-id", "text": "hi"}}, "invalid_field"),
        ({"frame": {"type": "edit", "message_id": "6f1c2d3e-0000-4000-8000-00000000000a"}}, "invalid_field"),
        ({"frame": {"type": "edit", "message_id": "6f1c2d3e-0000-4000-8000-00000000000a", "text": " "}}, "empty_message"),
        ({"frame": {"type": "edit", "message_id": "6f1c2d3e-0000-4000-8000-00000000000a", "text": "x" * 101}}, "text_too_long"),
        ({"frame": {"type": "regenerate", "message_id": 12}}, "invalid_field"),
        ({"frame": {"type": "switch"}}, "invalid_field"),
    ],
)
def test_bad_frames_get_a_specific_error_code(kwargs, code):
    with pytest.raises(UserError) as caught:
        parse(**kwargs)
    assert caught.value.code == code
    assert caught.value.message


def test_deep_nesting_is_invalid_json_not_a_recursion_error():
    with pytest.raises(UserError) as caught:
        protocol.parse("[" * 5000 + "]" * 5000, None, max_frame_bytes=100_000, max_text_chars=100)
    assert caught.value.code == "invalid_json"


def test_text_that_is_visible_somewhere_is_kept_as_sent():
    assert parse({"type": "user_message", "text": "\u200bhi\x1b[0m"}).text == "\u200bhi\x1b[0m"


def test_error_frames_say_whether_trying_again_helps():
    assert protocol.error_frame(UserError("busy", "wait"))["retryable"] is True
    assert protocol.error_frame(UserError("invalid_json", "bad"))["retryable"] is False


def test_a_user_message_may_name_its_uploaded_files():
    ids = ["6f1c2d3e-0000-4000-8000-00000000000a", "6f1c2d3e-0000-4000-8000-00000000000b"]
    command = parse({"type": "user_message", "text": "look", "attachments": ids})
    assert command == protocol.SendMessage("look", None, tuple(uuid.UUID(i) for i in ids))
    # With files the text may be empty; without, it may not.
    assert parse({"type": "user_message", "text": " ", "attachments": ids[:1]}).text == ""
    with pytest.raises(UserError, match="empty"):
        parse({"type": "user_message", "text": " ", "attachments": []})
    # An old client's frame means what it always meant.
    assert parse({"type": "user_message", "text": "hi"}).attachments == ()


@pytest.mark.parametrize(
    "attachments, code",
    [
        ("6f1c2d3e-0000-4000-8000-00000000000a", "invalid_field"),
        ([1, 2], "invalid_field"),
        (["not-an-id"], "invalid_field"),
        ([str(uuid.UUID(int=i)) for i in range(21)], "too_many_attachments"),
    ],
)
def test_bad_attachment_lists_are_refused(attachments, code):
    with pytest.raises(UserError) as refused:
        parse({"type": "user_message", "text": "hi", "attachments": attachments})
    assert refused.value.code == code
