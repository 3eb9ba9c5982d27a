"""The agent loop with a scripted model: streaming, storing, tools, limits and failures."""

from __future__ import annotations

import asyncio

import pytest

from chat.agent.providers.base import ProviderError
from chat.message_manager import MessageManager
from tests.chat.agent.conftest import assert_history_valid, collect, of_type, stored_messages, turn
from tests.fakes.scripted import ScriptedProvider, Turn, call, fail, say, stall
from tools.registry import Tool, ToolError, ToolRegistry, builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)


def tool(name, run, **options) -> Tool:
    return Tool(name=name, description=name, input_schema={"type": "object"}, run=run, **options)


async def test_a_reply_is_streamed_stored_and_completed(manager, session_id):
    model = ScriptedProvider(say("Hello", " there", "!"))
    events = await collect(turn(manager, model, builtin_tools(), "Hi"))

    assert [e["type"] for e in events] == [
        "message", "message", "text_delta", "text_delta", "text_delta", "message", "complete"
    ]
    user, started, *deltas, done, complete = events
    assert (user["sequence"], user["role"], user["content"]) == (1, "user", "Hi")
    assert (started["sequence"], started["role"], started["finished"]) == (2, "assistant", False)
    assert [d["text"] for d in deltas] == ["Hello", " there", "!"]
    assert all(d["sequence"] == 2 for d in deltas)
    assert done == {
        "type": "message", "message_id": started["message_id"], "sequence": 2, "role": "assistant",
        "content": [{"type": "text", "text": "Hello there!"}], "finished": True,
        "created_at": started["created_at"], "usage": {**model_usage(1), "cost_usd": 0.0},
    }
    assert complete == {"type": "complete", "stop_reason": "end_turn", "usage": model_usage(1)}
    [_, reply] = await stored_messages(session_id)
    assert reply["finished"] is True
    # The reply keeps its call's usage and what it cost (the scripted model is not in the price table).
    assert reply["usage"] == {**model_usage(1), "cost_usd": 0.0}
    assert reply["context"] == {"first_sequence": 1, "last_sequence": 1, "dropped": 0, "token_budget": 100_000}
    assert reply["tokens"] == 10 and reply["tokens_estimated"] is False
    assert model.calls[0]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    ]


def model_usage(calls: int) -> dict[str, int]:
    return {"input_tokens": 100 * calls, "output_tokens": 10 * calls, "cache_read_tokens": 0, "cache_write_tokens": 0}


async def test_every_message_is_stored_before_the_event_that_announces_it(manager, session_id):
    model = ScriptedProvider(call(("calculate", {"expression": "6*7"}), text="Let me see."), say("It is 42."))
    async for event in turn(manager, model, builtin_tools(), "6 times 7?"):
        if event["type"] == "message":
            stored = {m["sequence"]: m for m in await stored_messages(session_id)}
            assert stored[event["sequence"]]["content"] == event["content"]
            assert stored[event["sequence"]]["finished"] == event["finished"]
        if event["type"] == "tool_result":
            results = [b for m in await stored_messages(session_id) if isinstance(m["content"], list) for b in m["content"]]
            assert any(b.get("tool_use_id") == event["tool_use_id"] and b["type"] == "tool_result" for b in results)


async def test_a_tool_call_runs_and_the_model_receives_a_clean_result(manager, session_id):
    model = ScriptedProvider(call(("calculate", {"expression": "6*7"}), ids=["toolu_a"]), say("It is 42."))
    events = await collect(turn(manager, model, builtin_tools(), "6 times 7?"))

    assert of_type(events, "tool_use") == [
        {"type": "tool_use", "tool_use_id": "toolu_a", "name": "calculate", "input": {"expression": "6*7"}}
    ]
    assert of_type(events, "tool_result") == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "6*7 = 42", "is_error": False}
    ]
    assert events[-1]["type"] == "complete"
    assert len(model.calls) == 2
    assert model.calls[1]["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "6*7 = 42", "is_error": False}
    ]
    assert [m["role"] for m in await stored_messages(session_id)] == ["user", "assistant", "user", "assistant"]
    await assert_history_valid(session_id)


async def test_display_data_is_kept_in_storage_announced_and_stripped_for_the_model(manager, session_id):
    chart = {"type": "bar", "labels": ["a", "b"], "values": [1, 2]}
    model = ScriptedProvider(call(("display_chart", chart), ids=["toolu_c"]), say("Shown."))
    events = await collect(turn(manager, model, builtin_tools(), "chart"))

    [display] = of_type(events, "display")
    assert display["tool_use_id"] == "toolu_c"
    assert display["data"]["chart_type"] == "bar" and display["data"]["values"] == [1, 2]
    stored = (await stored_messages(session_id))[2]["content"][0]
    assert stored["display_data"] == display["data"]
    sent = model.calls[1]["messages"][-1]["content"][0]
    assert set(sent) == {"type", "tool_use_id", "content", "is_error"}


async def test_tools_of_one_turn_run_concurrently_and_results_keep_their_order(manager):
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def first(tool_input, context):
        first_started.set()
        await second_started.wait()  # never returns if the tools ran one after the other
        return {"content": "first"}

    async def second(tool_input, context):
        second_started.set()
        await first_started.wait()
        return {"content": "second"}

    tools = ToolRegistry.of([tool("first", first), tool("second", second)])
    model = ScriptedProvider(call(("first", {}), ("second", {}), ids=["t1", "t2"]), say("Done."))
    events = await collect(turn(manager, model, tools, "go", tool_timeout=5))

    assert [(e["tool_use_id"], e["content"], e["is_error"]) for e in of_type(events, "tool_result")] == [
        ("t1", "first", False), ("t2", "second", False)
    ]


async def test_a_tool_marked_not_concurrent_runs_alone_in_the_order_asked(manager):
    log = []

    def recorder(name):
        async def run(tool_input, context):
            log.append(f"{name} start")
            await asyncio.sleep(0)
            log.append(f"{name} end")
            return {"content": name}
        return run

    tools = ToolRegistry.of([tool("a", recorder("a")), tool("alone", recorder("alone"), concurrent=False), tool("b", recorder("b"))])
    model = ScriptedProvider(call(("a", {}), ("alone", {}), ("b", {})), say("Done."))
    await collect(turn(manager, model, tools, "go"))

    assert log == ["a start", "a end", "alone start", "alone end", "b start", "b end"]


async def test_a_tool_that_raises_becomes_an_error_result_and_the_loop_goes_on(manager, session_id):
    async def broken(tool_input, context):
        raise RuntimeError("disk on fire")

    async def refusing(tool_input, context):
        raise ToolError("No such city.")

    tools = ToolRegistry.of([tool("broken", broken), tool("refusing", refusing)])
    model = ScriptedProvider(call(("broken", {}), ("refusing", {}), ids=["t1", "t2"]), say("Sorry."))
    events = await collect(turn(manager, model, tools, "go"))

    results = of_type(events, "tool_result")
    assert [r["is_error"] for r in results] == [True, True]
    assert results[0]["content"] == "The tool broken failed unexpectedly (RuntimeError)."
    assert "disk on fire" not in results[0]["content"]
    assert results[1]["content"] == "No such city."
    assert events[-1]["type"] == "complete"
    await assert_history_valid(session_id)


async def test_a_tool_that_times_out_becomes_an_error_result(manager, session_id):
    async def hangs(tool_input, context):
        await asyncio.Event().wait()

    model = ScriptedProvider(call(("hangs", {}), ids=["t1"]), say("It hung."))
    events = await collect(
        turn(manager, model, ToolRegistry.of([tool("hangs", hangs)]), "go", tool_timeout=0.05)
    )

    [result] = of_type(events, "tool_result")
    assert result["is_error"] is True
    assert result["content"] == "The tool hangs did not finish within 0.05 seconds."
    assert events[-1]["type"] == "complete"
    assert model.calls[1]["messages"][-1]["content"][0]["is_error"] is True


async def test_an_unknown_tool_becomes_an_error_result(manager):
    model = ScriptedProvider(call(("teleport", {}), ids=["t1"]), say("Oh."))
    events = await collect(turn(manager, model, builtin_tools(), "go"))

    assert of_type(events, "tool_result")[0] == {
        "type": "tool_result", "tool_use_id": "t1", "content": "There is no tool named 'teleport'.", "is_error": True
    }


async def test_the_step_limit_stops_a_model_that_keeps_calling_tools(manager, session_id):
    model = ScriptedProvider(*(call(("calculate", {"expression": "1+1"})) for _ in range(3)))
    events = await collect(turn(manager, model, builtin_tools(), "loop", max_steps=3))

    assert len(model.calls) == 3
    assert events[-1] == {
        "type": "error", "code": "step_limit", "retryable": False,
        "message": "Stopped after 3 model calls in one turn, so that a loop cannot run on for ever. Send a message to continue.",
    }
    assert len(of_type(events, "tool_result")) == 3
    await assert_history_valid(session_id)

    # The conversation goes on from there.
    model.add(say("Back."))
    events = await collect(turn(manager, model, builtin_tools(), "continue", max_steps=3))
    assert events[-1]["type"] == "complete"
    await assert_history_valid(session_id)


async def test_cancelling_mid_stream_keeps_the_streamed_text_unfinished(manager, session_id):
    model = ScriptedProvider(stall("Half ", "a ", "thought", until=asyncio.Event()))
    task = asyncio.ensure_future(
        collect(turn(manager, model, builtin_tools(), "Tell me", flush_interval=3600))
    )
    await model.stalled.wait()  # three words streamed, the model is still writing
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [_, reply] = await stored_messages(session_id)
    assert reply["content"] == [{"type": "text", "text": "Half a thought"}]
    assert reply["finished"] is False
    await assert_history_valid(session_id)


async def test_closing_the_event_stream_early_keeps_the_streamed_text(manager, session_id):
    model = ScriptedProvider(say("One ", "two ", "three"))
    events = turn(manager, model, builtin_tools(), "Count", flush_interval=3600)
    async for event in events:
        if event["type"] == "text_delta" and event["text"] == "two ":
            break
    await events.aclose()

    [_, reply] = await stored_messages(session_id)
    assert reply["content"] == [{"type": "text", "text": "One two "}]
    assert reply["finished"] is False


async def test_cancelling_while_a_tool_runs_leaves_a_valid_history(manager, session_id):
    started = asyncio.Event()

    async def slow(tool_input, context):
        started.set()
        await asyncio.Event().wait()

    model = ScriptedProvider(call(("slow", {}), ids=["t1"]))
    task = asyncio.ensure_future(
        collect(turn(manager, model, ToolRegistry.of([tool("slow", slow)]), "go", tool_timeout=60))
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    messages = await stored_messages(session_id)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    api = await assert_history_valid(session_id)
    assert api[-1]["content"][0]["is_error"] is True  # the unanswered call is repaired


async def test_a_page_opened_mid_stream_sees_the_text_so_far(manager, session_id):
    go_on = asyncio.Event()
    model = ScriptedProvider(stall("Writing ", "slowly", until=go_on))
    events = turn(manager, model, builtin_tools(), "Go", flush_interval=1e-9)
    next_event = asyncio.ensure_future(collect(events))
    await model.stalled.wait()  # both words were handled; the model pauses before finishing
    [_, reply] = await stored_messages(session_id)
    assert reply["content"] == [{"type": "text", "text": "Writing slowly"}]
    assert reply["finished"] is False
    go_on.set()
    assert (await next_event)[-1]["type"] == "complete"


async def test_a_flush_interval_longer_than_the_reply_writes_it_once_at_the_end(manager, session_id):
    go_on = asyncio.Event()
    model = ScriptedProvider(stall("Writing ", "slowly", until=go_on))
    events = turn(manager, model, builtin_tools(), "Go", flush_interval=3600)
    next_event = asyncio.ensure_future(collect(events))
    await model.stalled.wait()
    [_, reply] = await stored_messages(session_id)
    assert reply["content"] == [{"type": "text", "text": ""}]
    go_on.set()
    assert (await next_event)[-1]["type"] == "complete"
    [_, reply] = await stored_messages(session_id)
    assert reply["content"] == [{"type": "text", "text": "Writing slowly"}]


async def test_a_model_failure_keeps_the_partial_reply_and_reports_a_retryable_error(manager, session_id):
    model = ScriptedProvider(fail("Par", "tial"))
    events = await collect(turn(manager, model, builtin_tools(), "Go"))

    assert events[-1] == {"type": "error", "code": "stream_interrupted", "message": "The connection broke off.", "retryable": True}
    [_, reply] = await stored_messages(session_id)
    assert (reply["content"], reply["finished"]) == ([{"type": "text", "text": "Partial"}], False)
    # The kept reply is announced as stored, so every client shows exactly what was kept.
    assert events[-2] == {**events[-2], "type": "message", "sequence": reply["sequence"], "content": reply["content"], "finished": False}
    await assert_history_valid(session_id)


async def test_a_failure_before_any_text_stores_no_reply(manager, session_id):
    model = ScriptedProvider(fail(error=ProviderError("model_overloaded", "Busy.", retryable=True)))
    events = await collect(turn(manager, model, builtin_tools(), "Go"))

    assert events[-1]["code"] == "model_overloaded"
    assert [m["role"] for m in await stored_messages(session_id)] == ["user"]


async def test_an_unexpected_failure_is_an_internal_error_and_keeps_the_partial_reply(manager, session_id):
    model = ScriptedProvider(fail("Half", error=KeyError("bug")))
    events = await collect(turn(manager, model, builtin_tools(), "Go"))

    assert events[-1] == {
        "type": "error", "code": "internal_error", "retryable": True,
        "message": "Something went wrong on our side. What was said so far is kept.",
    }
    [_, reply] = await stored_messages(session_id)
    assert (reply["content"], reply["finished"]) == ([{"type": "text", "text": "Half"}], False)


async def test_a_reply_cut_off_by_max_tokens_runs_none_of_its_tool_calls(manager, session_id):
    ran = []

    async def record(tool_input, context):
        ran.append(tool_input)
        return {"content": "ran"}

    cut_off = call(("record", {"partial": "inp"}), ids=["t1"])
    cut_off.stop_reason = "max_tokens"
    model = ScriptedProvider(cut_off, say("Let me try again."))
    events = await collect(turn(manager, model, ToolRegistry.of([tool("record", record)]), "go"))

    assert ran == []
    assert of_type(events, "tool_result")[0]["is_error"] is True
    assert events[-1]["type"] == "complete"


async def test_a_resent_client_id_is_acknowledged_but_not_answered_twice(manager, session_id):
    model = ScriptedProvider(say("Hello."))
    await collect(turn(manager, model, builtin_tools(), "Hi", client_id="c-1"))
    events = await collect(turn(manager, model, builtin_tools(), "Hi", client_id="c-1"))

    assert [(e["type"], e["sequence"]) for e in events] == [("message", 1)]  # acknowledged again, no run
    assert len(model.calls) == 1
    assert len(await stored_messages(session_id)) == 2


async def test_a_resent_client_id_whose_reply_never_came_is_answered(manager, session_id):
    # A run that died before replying.
    await manager.storage.save_messages(session_id, [{"role": "user", "content": "Hi", "client_id": "c-1"}])
    model = ScriptedProvider(say("Hello."))
    events = await collect(turn(manager, model, builtin_tools(), "Hi", client_id="c-1"))

    assert events[0]["sequence"] == 1
    assert events[-1]["type"] == "complete"
    assert [m["role"] for m in await stored_messages(session_id)] == ["user", "assistant"]


async def test_each_reply_records_the_budget_window_and_usage_adds_up(owner, storage, session_id, settings):
    settings.CHAT_COMPACT_AT = 0  # the cut alone, no summary
    mm = MessageManager(session_id, owner, storage=storage, injections=(), cut_step=50)
    for i in range(10):
        await mm.add_user_message(f"old question {i} " + "x" * 200)
        await mm.add_assistant_message([{"type": "text", "text": f"old answer {i} " + "y" * 200}])
    model = ScriptedProvider(call(("calculate", {"expression": "1+1"})), say("2."))
    events = await collect(turn(mm, model, builtin_tools(), "1+1?", token_budget=300))

    replies = [m for m in await stored_messages(session_id) if m["role"] == "assistant" and m["usage"]]
    first_sent = model.calls[0]["messages"]
    assert replies[0]["context"]["token_budget"] == 300
    assert replies[0]["context"]["dropped"] == replies[0]["context"]["first_sequence"] - 1 > 0
    assert first_sent[0]["content"][0]["text"].startswith("old question")
    assert replies[0]["context"]["last_sequence"] == 21
    assert replies[1]["context"]["last_sequence"] == 23
    assert events[-1]["usage"] == model_usage(2)


async def test_the_current_time_goes_to_the_model_as_the_calls_context_never_into_the_history(owner, storage, session_id):
    mm = MessageManager(session_id, owner, storage=storage)  # default injections: the time
    model = ScriptedProvider(say("Hi."))
    await collect(turn(mm, model, builtin_tools(), "Hello"))

    assert model.calls[0]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    [note] = model.calls[0]["context"]
    assert note["text"].startswith("<context>Current time:")
    assert (await stored_messages(session_id))[0]["content"] == "Hello"


async def test_the_model_gets_the_system_prompt_and_the_tool_schemas(manager):
    model = ScriptedProvider(say("Hi."))
    await collect(turn(manager, model, builtin_tools(), "Hello", system="Be brief."))

    assert model.calls[0]["system"] == "Be brief."
    assert [t["name"] for t in model.calls[0]["tools"]] == [
        "calculate", "analyze_text", "display_chart", "propose_options", "create_artifact"
    ]
    assert all(set(t) == {"name", "description", "input_schema"} for t in model.calls[0]["tools"])


async def test_an_empty_reply_is_stored_as_an_empty_finished_message(manager, session_id):
    model = ScriptedProvider(Turn(steps=[], content=[]))
    events = await collect(turn(manager, model, builtin_tools(), "Hello"))

    assert events[-1]["type"] == "complete"
    [_, reply] = await stored_messages(session_id)
    assert reply["finished"] is True
    await assert_history_valid(session_id)


async def test_a_turn_grown_past_the_window_by_its_tool_results_is_refused_before_the_next_call(owner, storage, session_id):
    big = "r" * 2_000  # a 500-token tool result: the turn no longer fits 300 tokens

    async def huge(tool_input, context):
        return {"content": big}

    tools = ToolRegistry.of([tool("huge", huge)])
    mm = MessageManager(session_id, owner, storage=storage, injections=())
    model = ScriptedProvider(call(("huge", {})), say("never said"))
    events = await collect(turn(mm, model, tools, "go", token_budget=300))

    assert len(model.calls) == 1  # the second call was never made
    error = events[-1]
    assert (error["type"], error["code"], error["retryable"]) == ("error", "context_too_long", False)
    assert "more than the model's context window of 300" in error["message"]
    await assert_history_valid(session_id)
