"""Claude through the real anthropic SDK, against a local fake Messages API server.

Asserts both what the loop makes of the API's answers and what the API was sent.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from chat.agent.providers import get_provider
from chat.agent.providers.anthropic import AnthropicProvider
from chat.agent.providers.base import ProviderError
from tests.chat.agent.conftest import assert_history_valid, collect, of_type, stored_messages, turn
from tests.chat.test_history import assert_valid
from tests.fakes import anthropic_server as api
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def storage(local_storage):
    return local_storage

MAX_RETRIES = 2


@pytest.fixture
def server():
    fake = api.FakeAnthropicServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
async def claude(server, sleeps):
    async def no_wait(seconds):
        sleeps.append(seconds)

    provider = AnthropicProvider(
        api_key="test-key",
        model="claude-test",
        max_tokens=1024,
        base_url=server.url,
        max_retries=MAX_RETRIES,
        retry_base_delay=1.0,
        retry_max_delay=30.0,
        sleep=no_wait,
    )
    yield provider
    await provider.aclose()


def assert_clean_request(body):
    """What every request must look like: cached system prompt, valid history, clean results."""
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    uncached = [
        {k: v for k, v in block.items() if k != "cache_control"} for block in body["messages"][-1]["content"]
    ]
    assert_valid([*body["messages"][:-1], {**body["messages"][-1], "content": uncached}])
    for message in body["messages"]:
        for block in message["content"]:
            if block["type"] == "tool_result":
                assert set(block) - {"cache_control"} <= {"type", "tool_use_id", "content", "is_error"}


async def test_text_streams_word_by_word_and_usage_is_recorded(manager, claude, server, session_id):
    server.add(
        api.stream(
            api.text_block("Hello", " from", " Claude."),
            usage={"input_tokens": 321, "output_tokens": 7, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 21},
        )
    )
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))

    assert [e["text"] for e in of_type(events, "text_delta")] == ["Hello", " from", " Claude."]
    assert events[-1] == {
        "type": "complete", "stop_reason": "end_turn",
        "usage": {"input_tokens": 321, "output_tokens": 7, "cache_read_tokens": 300, "cache_write_tokens": 21},
    }
    [_, reply] = await stored_messages(session_id)
    assert reply["content"] == [{"type": "text", "text": "Hello from Claude."}]
    assert reply["usage"]["cache_read_tokens"] == 300 and reply["tokens"] == 7
    [body] = server.requests
    assert body["model"] == "claude-test" and body["max_tokens"] == 1024 and body["stream"] is True
    assert [t["name"] for t in body["tools"]] == [t.name for t in builtin_tools()]
    assert_clean_request(body)


async def test_a_tool_call_is_run_and_its_clean_result_sent_back(manager, claude, server, session_id):
    server.add(
        api.stream(api.text_block("Let me compute."), api.tool_block("toolu_1", "calculate", {"expression": "12*(3+4)"})),
        api.stream(api.text_block("It is 84.")),
    )
    events = await collect(turn(manager, claude, builtin_tools(), "12*(3+4)?"))

    assert of_type(events, "tool_use") == [
        {"type": "tool_use", "tool_use_id": "toolu_1", "name": "calculate", "input": {"expression": "12*(3+4)"}}
    ]
    assert of_type(events, "tool_result")[0]["content"] == "12*(3+4) = 84"
    assert events[-1]["type"] == "complete"
    first, second = server.requests
    assert_clean_request(first)
    assert_clean_request(second)
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == [
        {"type": "text", "text": "Let me compute."},
        {"type": "tool_use", "id": "toolu_1", "name": "calculate", "input": {"expression": "12*(3+4)"}},
    ]
    assert second["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12*(3+4) = 84", "is_error": False,
         "cache_control": {"type": "ephemeral"}}
    ]
    await assert_history_valid(session_id)


async def test_two_tool_calls_in_one_turn_are_answered_together_in_order(manager, claude, server):
    server.add(
        api.stream(
            api.tool_block("toolu_a", "analyze_text", {"text": "One sentence here."}),
            api.tool_block("toolu_b", "display_chart", {"type": "pie", "labels": ["x", "y"], "values": [1, 3]}),
        ),
        api.stream(api.text_block("Done.")),
    )
    events = await collect(turn(manager, claude, builtin_tools(), "Analyze and chart"))

    assert [e["tool_use_id"] for e in of_type(events, "tool_result")] == ["toolu_a", "toolu_b"]
    assert [e["tool_use_id"] for e in of_type(events, "display")] == ["toolu_a", "toolu_b"]
    results = server.requests[1]["messages"][-1]["content"]
    assert [b["tool_use_id"] for b in results] == ["toolu_a", "toolu_b"]
    assert results[0]["content"].startswith("Text analysis: 3 words in 1 sentence ")
    assert_clean_request(server.requests[1])


async def test_a_429_is_retried_after_the_time_the_api_asks_for(manager, claude, server, sleeps, session_id):
    server.add(
        api.error(429, "rate_limit_error", headers={"retry-after": "7"}),
        api.stream(api.text_block("Made it.")),
    )
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))

    assert events[-1]["type"] == "complete"
    assert sleeps == [7.0]
    assert len(server.requests) == 2 and server.requests[0] == server.requests[1]
    assert [m["role"] for m in await stored_messages(session_id)] == ["user", "assistant"]


async def test_529_until_the_retries_run_out_is_a_clear_error_and_nothing_half_saved(manager, claude, server, sleeps, session_id):
    server.add(*(api.error(529, "overloaded_error", "Overloaded") for _ in range(MAX_RETRIES + 1)))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))

    assert events[-1] == {
        "type": "error", "code": "model_overloaded", "retryable": True,
        "message": "Claude is overloaded right now. Try again in a little while.",
    }
    assert len(server.requests) == MAX_RETRIES + 1
    # Exponential backoff with jitter: each wait about twice the one before.
    assert len(sleeps) == MAX_RETRIES
    assert 0.75 <= sleeps[0] <= 1.0 and 1.5 <= sleeps[1] <= 2.0
    assert [m["role"] for m in await stored_messages(session_id)] == ["user"]
    await assert_history_valid(session_id)


async def test_a_500_is_retried(manager, claude, server):
    server.add(api.error(500, "api_error"), api.stream(api.text_block("Fine.")))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))
    assert events[-1]["type"] == "complete"
    assert len(server.requests) == 2


async def test_an_overloaded_event_at_the_start_of_a_stream_is_retried(manager, claude, server):
    server.add(api.stream_error("overloaded_error"), api.stream(api.text_block("Fine.")))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))
    assert events[-1]["type"] == "complete"
    assert len(server.requests) == 2


async def test_a_stream_cut_before_any_text_is_retried_unseen(manager, claude, server, session_id):
    server.add(api.stream(api.text_block("Lost"), cut_after=3), api.stream(api.text_block("Whole.")))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))

    assert [e["text"] for e in of_type(events, "text_delta")] == ["Whole."]
    assert (await stored_messages(session_id))[1]["content"] == [{"type": "text", "text": "Whole."}]


async def test_a_stream_cut_mid_message_keeps_the_text_and_the_history_valid(manager, claude, server, session_id):
    # Events: message_start, ping, block start, "Half", " a" → the connection drops.
    server.add(api.stream(api.text_block("Half", " a", " sentence"), cut_after=5))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))

    assert [e["text"] for e in of_type(events, "text_delta")] == ["Half", " a"]
    assert events[-1] == {
        "type": "error", "code": "stream_interrupted", "retryable": True,
        "message": "The connection to Claude broke off in the middle of the reply. Try again.",
    }
    assert len(server.requests) == 1
    [_, reply] = await stored_messages(session_id)
    assert (reply["content"], reply["finished"]) == ([{"type": "text", "text": "Half a"}], False)
    await assert_history_valid(session_id)

    server.add(api.stream(api.text_block("Again.")))
    events = await collect(turn(manager, claude, builtin_tools(), "Go on"))
    assert events[-1]["type"] == "complete"
    assert_clean_request(server.requests[-1])


async def test_a_stream_that_ends_without_message_stop_counts_as_cut(manager, claude, server, session_id):
    server.add(api.stream(api.text_block("Almost"), end_without_stop=True))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))
    assert events[-1]["code"] == "stream_interrupted"
    assert (await stored_messages(session_id))[1]["finished"] is False


async def test_a_bad_request_is_not_retried(manager, claude, server):
    server.add(api.error(400, "invalid_request_error", "messages: roles must alternate"))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))
    assert events[-1]["code"] == "model_rejected" and events[-1]["retryable"] is False
    assert "roles must alternate" in events[-1]["message"]
    assert len(server.requests) == 1


async def test_a_refused_key_is_not_retried(manager, claude, server):
    server.add(api.error(401, "authentication_error", "invalid x-api-key"))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))
    assert events[-1]["code"] == "model_auth" and events[-1]["retryable"] is False


async def test_an_unreachable_api_is_retried_then_reported(manager, sleeps):
    closed = api.FakeAnthropicServer()
    url = closed.url
    closed.stop()  # nothing listens there any more

    async def no_wait(seconds):
        sleeps.append(seconds)

    provider = AnthropicProvider(api_key="k", model="m", max_tokens=10, base_url=url, max_retries=1, sleep=no_wait)
    try:
        events = await collect(turn(manager, provider, builtin_tools(), "Hi"))
    finally:
        await provider.aclose()
    assert events[-1]["code"] == "model_unreachable" and events[-1]["retryable"] is True
    assert len(sleeps) == 1


async def test_cancelling_mid_stream_keeps_the_streamed_text(manager, claude, server, session_id):
    release = threading.Event()
    server.add(api.stream(api.text_block("Still", " going"), hold_after=5, release=release))
    seen = asyncio.Event()

    async def consume():
        async for event in turn(manager, claude, builtin_tools(), "Hi", flush_interval=3600):
            if event["type"] == "text_delta" and event["text"] == " going":
                seen.set()

    task = asyncio.ensure_future(consume())
    await seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()

    [_, reply] = await stored_messages(session_id)
    assert (reply["content"], reply["finished"]) == ([{"type": "text", "text": "Still going"}], False)
    await assert_history_valid(session_id)


def test_waits_grow_exponentially_up_to_the_cap_and_honour_retry_after():
    provider = AnthropicProvider(
        api_key="k", model="m", max_tokens=10, base_url="http://127.0.0.1:9", retry_base_delay=1.0, retry_max_delay=5.0
    )
    plain = ConnectionError("down")
    assert [provider.retry_delay(n, plain) <= 2**n for n in range(3)] == [True] * 3
    assert [provider.retry_delay(n, plain) >= 0.75 * 2**n for n in range(3)] == [True] * 3
    assert provider.retry_delay(10, plain) == 5.0

    class Response:
        headers = {"retry-after": "60"}

    class Limited(Exception):
        response = Response()

    assert provider.retry_delay(0, Limited()) == 5.0  # capped
    Response.headers = {"retry-after-ms": "250"}
    assert provider.retry_delay(0, Limited()) == 0.25


async def test_titles_come_from_a_short_non_streamed_call(claude, server):
    server.add(api.message("Planning a trip to Lisbon"))
    assert await claude.title("I want to go to Lisbon in May") == "Planning a trip to Lisbon"
    [body] = server.requests
    assert body["messages"] == [{"role": "user", "content": "I want to go to Lisbon in May"}]
    assert body["max_tokens"] <= 50 and "stream" not in body


async def test_a_failed_title_call_raises_a_provider_error(claude, server):
    server.add(api.error(400, "invalid_request_error"))
    with pytest.raises(ProviderError):
        await claude.title("Hi")


async def test_claude_is_chosen_when_a_key_is_set_and_says_so(settings, server):
    settings.ANTHROPIC_API_KEY = "sk-test"
    settings.ANTHROPIC_BASE_URL = server.url
    settings.ANTHROPIC_MODEL = "claude-sonnet-test"
    provider = get_provider()
    try:
        assert isinstance(provider, AnthropicProvider)
        assert provider.display_name == "Claude (claude-sonnet-test)"
    finally:
        await provider.aclose()


def test_the_breakpoint_goes_on_the_historys_last_block_and_the_calls_context_after_it():
    provider = AnthropicProvider(api_key="k", model="m", max_tokens=10, base_url="http://127.0.0.1:9")
    plain = [{"role": "user", "content": "Hi"}]
    assert provider.request(system="S", messages=plain, tools=[])["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}
    ]
    history = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    note = {"type": "text", "text": "<context>Current time: 2026-12-01 10:00 UTC</context>"}
    body = provider.request(system="S", messages=history, tools=[], context=[note])
    # The note differs on every call: after the breakpoint, so the history's prefix, cached
    # by this call, is read by the next one.
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}},
                note,
            ],
        }
    ]
    assert history[0]["content"][1] == {"type": "text", "text": "b"}  # the caller's copy untouched
    assert body["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    assert "tools" not in body


def test_tests_cannot_reach_the_real_api():
    with pytest.raises(RuntimeError, match="must not call the real Anthropic API"):
        AnthropicProvider(api_key="k", model="m", max_tokens=10)


async def test_a_long_chat_is_summarised_by_claude_and_the_next_prompts_share_their_prefix(manager, claude, server, settings):
    from chat import history
    from chat.agent.prompts import SUMMARY_PROMPT

    settings.CHAT_COMPACT_AT, settings.CHAT_COMPACT_KEEP = 0.8, 0.3
    for i in range(8):  # ~1,700 tokens of a 2,000-token budget: past the compaction point
        await manager.add_user_message(f"question {i} " + "q" * 400)
        await manager.add_assistant_message([{"type": "text", "text": f"answer {i} " + "a" * 400}])
    server.add(
        api.message("The user asked eight questions; each was answered."),
        api.stream(api.text_block("Fine.")),
        api.stream(api.text_block("Still fine.")),
    )
    first = await collect(turn(manager, claude, builtin_tools(), "and now?", token_budget=2_000))
    second = await collect(turn(manager, claude, builtin_tools(), "and then?", token_budget=2_000))
    assert first[-1]["type"] == second[-1]["type"] == "complete"

    summary_call, reply_call, next_call = server.requests
    # The summary: one call, not streamed, without tools, the conversation then the request.
    assert "stream" not in summary_call and "tools" not in summary_call
    assert summary_call["system"] == SUMMARY_PROMPT and summary_call["max_tokens"] == 400
    assert summary_call["messages"][0]["content"][0]["text"].startswith("question 0")
    assert summary_call["messages"][-1]["content"][-1]["text"].startswith("Summarise the conversation above")
    assert_valid(summary_call["messages"])
    [summarised] = of_type(first, "summary")
    assert summarised["text"] == "The user asked eight questions; each was answered."
    # The reply's prompt begins with it, joined by the first turn kept whole.
    opening = reply_call["messages"][0]["content"]
    assert opening[0]["text"] == history.SUMMARY_OPEN + summarised["text"] + history.SUMMARY_CLOSE
    assert opening[1]["type"] == "text" and opening[1]["text"].startswith("question")
    for body in (reply_call, next_call):
        assert_clean_request(body)
        assert_valid([{**m, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]} for m in body["messages"]])
    # The next call's prompt starts with this one's, up to its cache breakpoint, byte for byte.
    assert prefix_up_to_breakpoint(reply_call) == blocks_of(next_call)[: len(prefix_up_to_breakpoint(reply_call))]


def blocks_of(body):
    return [(m["role"], {k: v for k, v in b.items() if k != "cache_control"}) for m in body["messages"] for b in m["content"]]


def prefix_up_to_breakpoint(body):
    out = []
    for message in body["messages"]:
        for block in message["content"]:
            out.append((message["role"], {k: v for k, v in block.items() if k != "cache_control"}))
            if "cache_control" in block:
                return out
    raise AssertionError("no cache breakpoint in the history")
