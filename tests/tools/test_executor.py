"""The executor turns one turn's tool calls into tool_result blocks, whatever the tools do."""

from __future__ import annotations

import asyncio

import pytest

from tools.executor import execute_tools
from tools.registry import Tool, ToolKind, ToolRegistry, builtin_tools


def tool(name, run, **options) -> Tool:
    return Tool(name=name, description=name, input_schema={"type": "object"}, run=run, **options)


def use(tool_use_id, name, tool_input=None):
    return {"type": "tool_use", "id": tool_use_id, "name": name, "input": {} if tool_input is None else tool_input}


async def run(registry, *uses, timeout=5):
    async def emit(event):
        return None

    return await execute_tools(list(uses), registry, session_id="s", user=None, emit=emit, timeout=timeout)


async def test_results_keep_the_order_of_the_calls_and_the_extra_keys():
    async def display(tool_input, context):
        return {"content": "shown", "display_data": {"x": 1}, "artifact_data": {"id": "a"}, "other": "dropped"}

    async def ask(tool_input, context):
        return {"requires_user_input": True, "interactive_data": {"question": "Q", "options": ["a", "b"]}}

    registry = ToolRegistry.of([tool("display", display), tool("ask", ask)])
    results = await run(registry, use("t1", "ask"), use("t2", "display"))

    assert results == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "", "is_error": False,
         "requires_user_input": True, "interactive_data": {"question": "Q", "options": ["a", "b"]}},
        {"type": "tool_result", "tool_use_id": "t2", "content": "shown", "is_error": False,
         "display_data": {"x": 1}, "artifact_data": {"id": "a"}},
    ]


async def test_failures_become_error_results_and_the_other_tools_still_run():
    async def ok(tool_input, context):
        return {"content": "fine"}

    async def broken(tool_input, context):
        raise ValueError("oops")

    async def hangs(tool_input, context):
        await asyncio.Event().wait()

    async def not_a_dict(tool_input, context):
        return "just a string"

    async def not_json(tool_input, context):
        return {"content": "x", "display_data": {"when": object()}}

    registry = ToolRegistry.of(
        [tool("ok", ok), tool("broken", broken), tool("hangs", hangs), tool("not_a_dict", not_a_dict), tool("not_json", not_json)]
    )
    results = await run(
        registry,
        use("t1", "broken"), use("t2", "hangs"), use("t3", "missing"), use("t4", "not_a_dict"),
        use("t5", "not_json"), {"type": "tool_use", "id": "t6", "name": "ok", "input": "text"}, use("t7", "ok"),
        timeout=0.05,
    )

    assert [(r["tool_use_id"], r["is_error"], r["content"]) for r in results] == [
        ("t1", True, "The tool broken failed unexpectedly (ValueError)."),
        ("t2", True, "The tool hangs did not finish within 0.05 seconds."),
        ("t3", True, "There is no tool named 'missing'."),
        ("t4", True, "The tool not_a_dict returned no usable result."),
        ("t5", True, "The tool not_json returned no usable result."),
        ("t6", True, "The tool input must be a JSON object."),
        ("t7", False, "fine"),
    ]


async def test_a_tool_raising_timeout_error_itself_is_not_reported_as_a_timeout():
    async def own_timeout(tool_input, context):
        raise TimeoutError("upstream")

    results = await run(ToolRegistry.of([tool("slowpoke", own_timeout)]), use("t1", "slowpoke"), timeout=60)
    assert results[0]["content"] == "The tool slowpoke failed unexpectedly (TimeoutError)."


async def test_a_tools_own_timeout_overrides_the_default():
    async def slow(tool_input, context):
        await asyncio.sleep(0.2)
        return {"content": "done"}

    registry = ToolRegistry.of([tool("slow", slow, timeout=0.01)])
    assert (await run(registry, use("t1", "slow"), timeout=60))[0]["is_error"] is True


async def test_cancellation_reaches_the_tools_and_is_not_swallowed():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def waits(tool_input, context):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(run(ToolRegistry.of([tool("waits", waits)]), use("t1", "waits")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_tools_get_a_context_that_can_emit_events():
    async def emits(tool_input, context):
        await context.emit({"type": "progress", "tool_use_id": context.tool_use_id, "session": context.session_id})
        return {"content": "ok"}

    seen = []

    async def emit(event):
        seen.append(event)

    await execute_tools([use("t9", "emits")], ToolRegistry.of([tool("emits", emits)]), session_id="s1", user=None, emit=emit)
    assert seen == [{"type": "progress", "tool_use_id": "t9", "session": "s1"}]


def test_a_registry_refuses_two_tools_of_one_name():
    async def noop(tool_input, context):
        return {"content": ""}

    registry = ToolRegistry.of([tool("a", noop)])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(tool("a", noop))


def test_the_builtin_tools_and_their_kinds():
    registry = builtin_tools()
    assert {t.name: t.kind for t in registry} == {
        "calculate": ToolKind.REGULAR,
        "analyze_text": ToolKind.DISPLAY,
        "display_chart": ToolKind.DISPLAY,
        "propose_options": ToolKind.INTERACTIVE,
        "create_artifact": ToolKind.ARTIFACT,
    }
    for schema in registry.api_schemas():
        assert set(schema) == {"name", "description", "input_schema"}
        assert schema["input_schema"]["type"] == "object" and schema["input_schema"]["required"]
    assert builtin_tools() is not registry  # each caller gets its own
