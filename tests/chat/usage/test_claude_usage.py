"""The ledger on the Claude path: the real anthropic SDK against the local fake Messages
API (tests/fakes/anthropic_server.py), prompt-cache tokens priced with their multipliers,
a retried call counted once, a cancelled stream charged what it had used."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chat.agent import titles
from chat.agent.providers.anthropic import AnthropicProvider
from chat.models import UsageRecord
from chat.usage.ledger import Payer
from tests.chat.agent.conftest import collect, stored_messages, turn
from tests.fakes import anthropic_server as api
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)

CACHED = {"input_tokens": 321, "output_tokens": 7, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 21}


@pytest.fixture
def server():
    fake = api.FakeAnthropicServer().start()
    yield fake
    fake.stop()


@pytest.fixture
async def claude(server):
    async def no_wait(seconds):
        return None

    provider = AnthropicProvider(
        api_key="test-key", model="claude-sonnet-4-5-20250929", title_model="claude-haiku-4-5", max_tokens=1024,
        base_url=server.url, max_retries=2, sleep=no_wait,
    )
    yield provider
    await provider.aclose()


async def rows(**filters) -> list[dict]:
    return [r async for r in UsageRecord.objects.filter(**filters).order_by("created_at").values()]


async def test_a_claude_reply_is_charged_its_cache_reads_and_writes(manager, claude, server, session_id, owner, settings):
    settings.USAGE_CACHE_READ_MULTIPLIER, settings.USAGE_CACHE_WRITE_MULTIPLIER = 0.1, 1.25
    server.add(api.stream(api.text_block("Hello", " from", " Claude."), usage=CACHED))
    await collect(turn(manager, claude, builtin_tools(), "Hi"))

    [row] = await rows(user=owner)
    assert (row["model"], row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        "claude-sonnet-4-5-20250929", 321, 7, 300, 21
    )
    # $3 in, $15 out per million; reads at 0.1 of input, writes at 1.25.
    assert row["cost_micros"] == round(321 * 3 + 300 * 0.3 + 21 * 3.75 + 7 * 15)
    [_, reply] = await stored_messages(session_id)
    assert reply["usage"]["cost_usd"] == round(row["cost_micros"] / 1e6, 6)


async def test_a_call_retried_after_a_429_is_counted_once(manager, claude, server, owner):
    server.add(api.error(429, "rate_limit_error", headers={"retry-after": "0"}), api.stream(api.text_block("Hi."), usage=CACHED))
    events = await collect(turn(manager, claude, builtin_tools(), "Hi"))

    assert events[-1]["type"] == "complete" and len(server.requests) == 2
    [row] = await rows(user=owner)
    assert (row["input_tokens"], row["partial"]) == (321, False)


async def test_a_cancelled_claude_stream_is_charged_its_input_cache_and_what_was_streamed(manager, claude, server, session_id, owner):
    release = threading.Event()
    # message_start, ping, block start, two words: then the server holds the stream.
    server.add(api.stream(api.text_block("Half", " a", " thought"), usage=CACHED, hold_after=5, release=release))
    seen: list[dict] = []

    async def consume():
        async for event in turn(manager, claude, builtin_tools(), "Tell me", flush_interval=3600):
            seen.append(event)

    runner = asyncio.ensure_future(consume())
    for _ in range(500):
        if sum(e["type"] == "text_delta" for e in seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert [e["text"] for e in seen if e["type"] == "text_delta"] == ["Half", " a"]
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    release.set()

    [row] = await rows(user=owner)
    assert row["partial"] is True
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (321, 300, 21)
    assert row["output_tokens"] >= 1


async def test_a_claude_title_is_charged_to_the_title_model(claude, server, session_id, owner):
    import uuid

    server.add(api.message("Hiking the Alps"))
    payer = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4())
    assert await titles.generate_title(session_id, "how do I hike?", claude, payer=payer) == "Hiking the Alps"

    [row] = await rows(kind="title")
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("claude-haiku-4-5", 20, 5)
    assert row["cost_micros"] == 20 * 1 + 5 * 5
