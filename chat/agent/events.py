"""The events the agent loop yields, one constructor each: the shapes of DESIGN.md's
websocket protocol (less the ``id`` the run layer numbers them with).

``artifact`` events come from ``chat.artifacts.event`` and ``title`` from
``chat.agent.titles``.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def message(stored: dict[str, Any]) -> Event:
    """A message as stored: the durable acknowledgement. ``finished`` is False for a reply
    still being streamed (its text follows as ``text_delta``s) or one that was cut off."""
    event = {
        "type": "message",
        "message_id": stored["id"],
        "sequence": stored["sequence"],
        "role": stored["role"],
        "content": stored["content"],
        "finished": stored["finished"],
        "created_at": stored["created_at"],
    }
    if stored.get("usage"):
        event["usage"] = stored["usage"]
    if stored.get("client_id"):
        event["client_id"] = stored["client_id"]  # lets the sender match its own message
    return event


def path(sequence: int) -> Event:
    """The conversation shown changed from message ``sequence`` on (an edit, a regenerated
    reply, another version chosen): what was shown from there is replaced; the messages of
    the new path follow, or come from the API."""
    return {"type": "path", "sequence": sequence}


def compacting() -> Event:
    """A compaction the user asked for started (the Compact button, ``/compact``): the
    run's first event, as a reply's run starts with what the user sent. It ends with
    ``summary`` and ``complete`` (or ``complete`` alone, or ``error``)."""
    return {"type": "compacting"}


def summary(data: dict[str, Any]) -> Event:
    """The chat was compacted: messages up to ``last_sequence`` of the path are sent to the
    model as this summary from now on (they stay stored and shown)."""
    return {
        "type": "summary",
        "summary_id": data["id"],
        "branch": data["branch"],
        "first_sequence": data["first_sequence"],
        "last_sequence": data["last_sequence"],
        "tokens": data["tokens"],
        "model": data["model"],
        "text": data["text"],
        "created_at": data["created_at"],
    }


def text_delta(text: str, sequence: int) -> Event:
    """More text of the reply stored as message ``sequence``."""
    return {"type": "text_delta", "text": text, "sequence": sequence}


def tool_use(block: dict[str, Any]) -> Event:
    return {"type": "tool_use", "tool_use_id": block["id"], "name": block["name"], "input": block["input"]}


def tool_result(block: dict[str, Any]) -> Event:
    return {
        "type": "tool_result",
        "tool_use_id": block["tool_use_id"],
        "content": block.get("content", ""),
        "is_error": bool(block.get("is_error", False)),
    }


def display(block: dict[str, Any]) -> Event:
    return {"type": "display", "tool_use_id": block["tool_use_id"], "data": block["display_data"]}


def awaiting_user_input(state: dict[str, Any]) -> Event:
    return {
        "type": "awaiting_user_input",
        "tool_use_id": state["tool_use_id"],
        "tool": state["tool_name"],
        "question": state["question"],
        "options": state["options"],
    }


def complete(stop_reason: str, usage: dict[str, int]) -> Event:
    return {"type": "complete", "stop_reason": stop_reason, "usage": usage}


def error(code: str, message: str, *, retryable: bool) -> Event:
    return {"type": "error", "code": code, "message": message, "retryable": retryable}


def for_result(block: dict[str, Any]) -> list[Event]:
    """What the UI is told about one tool result: the result, and its display if it has one."""
    events = [tool_result(block)]
    if block.get("display_data") is not None:
        events.append(display(block))
    return events
