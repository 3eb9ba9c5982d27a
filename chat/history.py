"""Pure functions over a conversation's messages: checking, estimating, cutting, cleaning.

Stored messages keep every key the UI needs; what goes to the model is rebuilt from them
here, so that a history the Messages API would reject is never sent (DESIGN.md rule 2).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence

INTERRUPTED_TOOL_RESULT = "The tool call was interrupted before it returned a result."

# The keys the Messages API accepts on each content block type we send. Anything else a
# block carries (display_data, interactive_data, …) is ours and is stripped.
_API_KEYS: dict[str, tuple[str, ...]] = {
    "text": ("type", "text"),
    "image": ("type", "source"),
    "document": ("type", "source", "title", "context"),
    "tool_use": ("type", "id", "name", "input"),
    "tool_result": ("type", "tool_use_id", "content", "is_error"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
}
# Blocks allowed inside a tool_result's content list.
_TOOL_RESULT_INNER = ("text", "image", "document")
_IMAGE_TOKENS = 1600


def check_content(content: Any) -> None:
    """Raise ValueError unless ``content`` is a string or a list of typed blocks."""
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise ValueError("content must be a string or a non-empty list of content blocks")
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ValueError("every content block must be an object with a string 'type'")
    try:
        json.dumps(content, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"content must be JSON without NaN or Infinity: {exc}") from None


def estimate_tokens(content: Any) -> int:
    """A cheap, deliberately generous estimate (about 4 characters a token), at least 1.

    Providers report exact counts later; the estimate only has to keep budget cuts safe.
    """
    if isinstance(content, str):
        return max(1, math.ceil(len(content) / 4))
    total = 0
    for block in content:
        kind = block.get("type")
        source = block.get("source")
        if isinstance(source, dict) and isinstance(source.get("tokens"), int):
            # An attachment (chat.attachments): its estimate was made from its pixels or
            # pages when it was uploaded.
            total += source["tokens"] + math.ceil(len(str(block.get("title", ""))) / 4)
            continue
        if kind == "image":
            total += _IMAGE_TOKENS
            continue
        visible = {key: block[key] for key in _API_KEYS.get(kind, ("type",)) if key in block}
        total += math.ceil(len(json.dumps(visible, ensure_ascii=False)) / 4)
    return max(1, total)


def is_turn_start(message: dict[str, Any]) -> bool:
    """A user message the user typed: not one that carries tool results."""
    if message["role"] != "user":
        return False
    content = message["content"]
    return isinstance(content, str) or not any(b.get("type") == "tool_result" for b in content)


def drop_to_turn_start(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Move a cut forward to the first message that may begin a history.

    A cut that landed between a tool_use and its tool_result, or on an assistant reply, would
    leave the model an orphan; the first message must be a user turn.
    """
    for index, message in enumerate(messages):
        if is_turn_start(message):
            return list(messages[index:])
    return []


def fit_budget(messages: Sequence[dict[str, Any]], token_budget: int) -> list[dict[str, Any]]:
    """Of a tail whose every message but the first ends inside the budget, the part that fits.

    Budget reads fetch the messages whose cumulative sum lies above (total - budget); only
    the first of those can start below that line and so not fit.
    """
    if messages:
        threshold = messages[-1]["cumulative_tokens"] - token_budget
        first = messages[0]
        if first["cumulative_tokens"] - first["tokens"] < threshold:
            return list(messages[1:])
    return list(messages)


def coarse_cut(messages: Sequence[dict[str, Any]], token_budget: int, step: int) -> list[dict[str, Any]]:
    """Cut an exact budget window at a multiple of ``step`` tokens from the session start.

    With an exact cut, every turn drops a little more of the oldest history and the prompt
    changes from its first message on, so the provider's prompt cache never hits. Rounding
    the cut point up to a step keeps the prefix identical until history grows by ``step``.
    """
    if not messages:
        return []
    total = messages[-1]["cumulative_tokens"]
    if total <= token_budget:
        return list(messages)
    threshold = math.ceil((total - token_budget) / step) * step
    newest = newest_turn_start(messages)
    if newest is not None:
        # A step larger than what is left of the budget (a small budget, a large newest
        # turn) would cut into the newest turn, or past it: the newest turn always goes.
        threshold = min(threshold, _start(messages[newest]))
    return [m for m in messages if _start(m) >= threshold]


def _start(message: dict[str, Any]) -> int:
    """The running token sum just before ``message``."""
    return message["cumulative_tokens"] - message["tokens"]


def newest_turn_start(messages: Sequence[dict[str, Any]]) -> int | None:
    """The index of the newest message that begins a turn (the user typed it), if any."""
    for index in range(len(messages) - 1, -1, -1):
        if is_turn_start(messages[index]):
            return index
    return None


def _api_block(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    keys = _API_KEYS.get(kind)
    if keys is None:
        return None
    clean = {key: block[key] for key in keys if key in block}
    if kind == "text" and not clean.get("text"):
        return None  # the API rejects empty text blocks
    if kind == "tool_result":
        inner = clean.get("content")
        if isinstance(inner, list):
            inner = [
                c for c in (_api_block(b) for b in inner if b.get("type") in _TOOL_RESULT_INNER) if c
            ]
            clean["content"] = inner
        elif inner is None:
            clean.pop("content", None)
        if "is_error" in clean and not isinstance(clean["is_error"], bool):
            clean["is_error"] = bool(clean["is_error"])
    return clean


def api_blocks(content: Any) -> list[dict[str, Any]]:
    """Content as the API accepts it: a list of blocks with only the keys it allows."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [clean for clean in (_api_block(b) for b in content) if clean]


def _interrupted(tool_use_id: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": INTERRUPTED_TOOL_RESULT,
        "is_error": True,
    }


def to_api_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rebuild stored messages into a history the Messages API accepts.

    - starts with a user turn (leading replies and orphaned tool results are dropped);
    - roles alternate (consecutive messages of one role are merged);
    - every tool_use is answered by a tool_result in the next message, first in its content;
      a tool_use whose result never arrived (a crash, a cancel) gets an error result;
    - tool_results that answer nothing are dropped, as are empty messages.
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids of the last assistant message, still unanswered

    def answer_pending(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [results.get(tool_use_id) or _interrupted(tool_use_id) for tool_use_id in pending]

    for message in messages:
        blocks = api_blocks(message["content"])
        if message["role"] == "assistant":
            if not out:
                continue
            if pending:
                out.append({"role": "user", "content": answer_pending({})})
                pending = []
            if not blocks:
                continue
            if out[-1]["role"] == "assistant":
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": "assistant", "content": blocks})
            pending = [b["id"] for b in out[-1]["content"] if b["type"] == "tool_use"]
        else:
            results = {b["tool_use_id"]: b for b in blocks if b["type"] == "tool_result"}
            others = [b for b in blocks if b["type"] != "tool_result"]
            content = answer_pending(results) + others
            pending = []
            if not content:
                continue
            if out and out[-1]["role"] == "user":
                # Only plain blocks can follow: any results were answered in the earlier message.
                out[-1]["content"].extend(others)
            else:
                out.append({"role": "user", "content": content})
    if pending:
        out.append({"role": "user", "content": answer_pending({})})
    return out


# --- long chats: stubs for old tool results, the summary in the prompt -------------------

STUB_MIN_TOKENS = 100  # a result smaller than this is sent whole: a stub would save nothing
SUMMARY_OPEN = "<summary of the earlier conversation>\n"
SUMMARY_CLOSE = "\n</summary of the earlier conversation>"


def stub_line(messages: Sequence[dict[str, Any]], keep_turns: int, step: int) -> int:
    """Tool results of messages whose running token sum is at most this are sent as stubs.

    The line lies before the newest ``keep_turns`` turns, rounded down to a multiple of
    ``step`` tokens: it moves only when history grew by a step, so the prompt's prefix
    (and the provider's prompt cache) stays the same between moves.
    """
    starts = [m for m in messages if is_turn_start(m)]
    if len(starts) <= keep_turns:
        return 0
    return (_start(starts[-keep_turns]) // step) * step


def _stub(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") != "tool_result":
        return block
    content = block.get("content") or ""
    # Every call stubs every old result again: a string's size is its length, no JSON.
    tokens = max(1, math.ceil(len(content) / 4)) if isinstance(content, str) else estimate_tokens(content)
    if tokens < STUB_MIN_TOKENS:
        return block
    stub = f"[An earlier tool result of about {tokens:,} tokens, left out here to save space. Call the tool again if it is needed.]"
    return {**block, "content": stub}


def with_stubs(messages: Sequence[dict[str, Any]], line: int) -> list[dict[str, Any]]:
    """``messages`` with the large tool results of those at or below ``line`` stubbed
    (copies: what is stored is untouched)."""
    out = []
    for message in messages:
        content = message["content"]
        if message["cumulative_tokens"] <= line and isinstance(content, list):
            stubbed = [_stub(block) for block in content]
            if stubbed != content:
                message = {**message, "content": stubbed, "tokens": estimate_tokens(stubbed)}
        out.append(message)
    return out


def summary_message(text: str) -> dict[str, Any]:
    """The summary as the prompt's first (user) message; the first kept turn joins it."""
    return {"role": "user", "content": [{"type": "text", "text": SUMMARY_OPEN + text + SUMMARY_CLOSE}]}


def summary_tokens(text: str) -> int:
    return estimate_tokens(summary_message(text)["content"])


def compaction_cut(messages: Sequence[dict[str, Any]], keep_tokens: int) -> int | None:
    """Where a compaction cuts ``messages`` (a path's messages after its summary, if any):
    the index of the turn start from which on the newest turns fit ``keep_tokens`` (the
    newest turn at least); the messages before it are summarised. None: nothing before
    the newest turn to summarise.

    The cut is always at a turn's start, so what is kept begins with a user turn and no
    tool pair (or question paused on) is split.
    """
    if not messages:
        return None
    total = messages[-1]["cumulative_tokens"]
    starts = [index for index, m in enumerate(messages) if is_turn_start(m)]
    if not starts:
        return None
    cut = starts[-1]
    for index in reversed(starts[:-1]):
        if total - _start(messages[index]) > keep_tokens:
            break
        cut = index
    return cut if cut > 0 else None
