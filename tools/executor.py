"""Runs the tool_use blocks of one assistant turn; each becomes a tool_result block.

A tool that raises, times out, is unknown or returns something unusable becomes an
``is_error`` result the model can read: one bad tool never ends the run. The keys the UI
and the loop need (``display_data``, ``artifact_data``, ``requires_user_input``,
``interactive_data``) stay beside the result; ``chat.history`` strips them before the
model sees the history.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Sequence

from django.conf import settings

from chat import metrics
from tools.registry import Emit, Tool, ToolContext, ToolError, ToolRegistry

logger = logging.getLogger(__name__)

EXTRA_KEYS = ("display_data", "artifact_data", "requires_user_input", "interactive_data")


def error_result(tool_use_id: str, message: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": message, "is_error": True}


async def execute_tools(
    tool_uses: Sequence[dict[str, Any]],
    registry: ToolRegistry,
    *,
    session_id: str,
    user: Any,
    emit: Emit,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Run the calls and return their tool_result blocks, in the order of ``tool_uses``.

    Consecutive tools that allow it run together; a tool marked ``concurrent=False`` runs
    alone, after the ones before it and before the ones after it, so its effects keep the
    order the model asked for.
    """
    default_timeout = timeout or settings.AGENT_TOOL_TIMEOUT
    results: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []

    async def run(use: dict[str, Any]) -> dict[str, Any]:
        context = ToolContext(session_id=session_id, user=user, tool_use_id=use["id"], emit=emit)
        return await run_tool(use, registry.get(use["name"]), context, default_timeout)

    async def run_batch() -> None:
        results.extend(await asyncio.gather(*(run(use) for use in batch)))
        batch.clear()

    for use in tool_uses:
        tool = registry.get(use["name"])
        if tool is None or tool.concurrent:
            batch.append(use)
            continue
        await run_batch()
        results.append(await run(use))
    await run_batch()
    return results


async def run_tool(use: dict[str, Any], tool: Tool | None, context: ToolContext, default_timeout: float) -> dict[str, Any]:
    """One call, as a tool_result block. Raises only CancelledError."""
    result = await _run_tool(use, tool, context, default_timeout)
    metrics.TOOL_CALLS.labels(use["name"] if tool is not None else "unknown", "error" if result.get("is_error") else "ok").inc()
    return result


async def _run_tool(use: dict[str, Any], tool: Tool | None, context: ToolContext, default_timeout: float) -> dict[str, Any]:
    tool_use_id, name = use["id"], use["name"]
    if tool is None:
        return error_result(tool_use_id, f"There is no tool named {name!r}.")
    tool_input = use.get("input")
    if not isinstance(tool_input, dict):
        return error_result(tool_use_id, "The tool input must be a JSON object.")
    limit = tool.timeout or default_timeout
    timer = asyncio.timeout(limit)
    try:
        async with timer:
            result = await tool.run(tool_input, context)
    except ToolError as exc:
        return error_result(tool_use_id, str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the model, not raised
        if timer.expired():
            return error_result(tool_use_id, f"The tool {name} did not finish within {limit:g} seconds.")
        logger.exception("tool %s failed (tool_use_id=%s)", name, tool_use_id)
        return error_result(tool_use_id, f"The tool {name} failed unexpectedly ({type(exc).__name__}).")
    return _as_tool_result(tool_use_id, name, result)


def _as_tool_result(tool_use_id: str, name: str, result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        logger.error("tool %s returned %r, not a dict", name, type(result))
        return error_result(tool_use_id, f"The tool {name} returned no usable result.")
    content = result.get("content")
    if content is None:
        content = ""
    if not isinstance(content, (str, list)):
        content = str(content)
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": content,
        "is_error": bool(result.get("is_error", False)),
    }
    for key in EXTRA_KEYS:
        if key in result:
            block[key] = result[key]
    try:
        # The block is stored as JSON; find out now rather than when the save fails.
        json.dumps(block, allow_nan=False)
    except (TypeError, ValueError):
        logger.error("tool %s returned a result that is not JSON", name)
        return error_result(tool_use_id, f"The tool {name} returned no usable result.")
    return block
