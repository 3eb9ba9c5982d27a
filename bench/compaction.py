"""Long chats (issue 14). Run with ``bin/bench compaction`` (``--turns N``, default 2,000).

A generated chat of N turns with tool calls (every third turn looks something up: a tool
result of ~1,500 tokens, then a reply) is run through the real turn service, agent loop,
MessageManager and storage, with a deterministic model, three times:

- **compaction** (what the chat does): old tool results stubbed, a summary past
  ``CHAT_COMPACT_AT`` of the window, reused until the next compaction;
- **exact cut**: the newest history that fits, cut exactly (a step of one token), no
  stubs, no summary;
- **coarse cut**: the cut moved in ``CHAT_CONTEXT_CUT_STEP`` steps (the chat before
  compaction), for reference.

For each: the largest prompt (the history's tokens, estimated as the budget counts them)
against the window; the share of consecutive model calls whose prompt starts with the
previous call's prompt up to its cache breakpoint (the last block of its history: a
prompt-cache hit); and, for compaction, time and SQL statements of a turn at turn 10 and
at turn N (plain turns that did not compact; the median time of the plain turns among the
11 around each, less the benchmark model's own comparing of prompts). A turn at N reads
and sends a full window (the history since the summary), one at turn 10 a few hundred
tokens: its time grows with what it sends until the window is full, not after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from contextlib import aclosing
from typing import Any, AsyncIterator

from bench import setup_django

setup_django()

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from chat import history, runtime, services  # noqa: E402
from chat.agent.loop import run_turn  # noqa: E402
from chat.agent.providers.base import ModelEvent, ModelReply, Provider, TextDelta, usage  # noqa: E402
from chat.agent.providers.offline import summary_of  # noqa: E402
from chat.db import db_async  # noqa: E402
from chat.message_manager import MessageManager  # noqa: E402
from chat.models import ChatSession, Summary  # noqa: E402
from chat.runs import turns  # noqa: E402
from chat.storage import HybridStorage  # noqa: E402
from tests.queries import counting_queries  # noqa: E402
from tools.registry import Tool, ToolRegistry  # noqa: E402

RESULT = "Lookup result: " + "facts and figures about the subject, " * 165  # ~1,500 tokens
REPLY = "Here is what I think about that, in a few sentences of ordinary length. " * 8  # ~150 tokens


async def lookup(tool_input: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"content": f"{tool_input.get('query', '')}: {RESULT}"}


TOOLS = ToolRegistry.of([Tool(name="lookup", description="Look something up.", input_schema={"type": "object"}, run=lookup)])


class Model(Provider):
    """Deterministic: "look up …" calls the tool, anything else gets a reply of ~150
    tokens. Each call's prompt is compared with the previous one's as it arrives."""

    name = model = "bench"
    display_name = "Benchmark model"

    def __init__(self) -> None:
        self.calls = self.hits = self.summaries = 0
        self.largest = 0
        self.observing = 0.0  # seconds spent comparing prompts: the benchmark's, not the turn's
        self._previous: list[str] | None = None

    def _observe(self, messages: list[dict[str, Any]]) -> None:
        began = time.perf_counter()
        blocks = [json.dumps([m["role"], b], sort_keys=True) for m in messages for b in m["content"]]
        # The provider puts the breakpoint on the history's last block: the whole of it.
        if self._previous is not None:
            self.hits += blocks[: len(self._previous)] == self._previous
        self._previous = blocks
        self.calls += 1
        self.largest = max(self.largest, history.estimate_tokens([b for m in messages for b in m["content"]]))
        self.observing += time.perf_counter() - began

    async def stream(self, *, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], context: Any = ()) -> AsyncIterator[ModelEvent]:
        self._observe(messages)
        last = messages[-1]["content"]
        typed = " ".join(b.get("text", "") for b in last if b.get("type") == "text")
        if typed.startswith("look up") and not any(b.get("type") == "tool_result" for b in last):
            content = [{"type": "tool_use", "id": f"toolu_{self.calls}", "name": "lookup", "input": {"query": typed}}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": f"({self.calls}) {REPLY}"}]
            yield TextDelta(content[0]["text"], 0)
            stop = "end_turn"
        yield ModelReply(content=content, stop_reason=stop, usage=usage(input_tokens=1, output_tokens=history.estimate_tokens(content)))

    async def summarize(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> ModelReply:
        self.summaries += 1
        text = summary_of(messages, max_chars=4 * max_tokens)
        return ModelReply(content=[{"type": "text", "text": text}], stop_reason="end_turn", usage=usage(output_tokens=max_tokens))

    async def title(self, text: str) -> str:
        return "bench"


class Manager(MessageManager):
    """Records the largest prompt the budget counted (the summary, the messages with stubs)."""

    largest = 0

    async def load(self, token_budget: int | None = None, *, before: int | None = None) -> Any:
        loaded = await super().load(token_budget, before=before)
        Manager.largest = max(Manager.largest, self.prompt_tokens)
        return loaded


def question(turn: int) -> str:
    if turn % 3 == 0:
        return f"look up item {turn}"
    return f"Question {turn}: tell me more about the subject we are discussing, with some detail. " * 2


async def run(owner: Any, variant: str, count: int) -> dict[str, Any]:
    model, storage = Model(), HybridStorage(cache=runtime.get().cache)
    Manager.largest = 0
    sid = uuid.uuid4()
    options: dict[str, Any] = {
        "compaction": {},
        "exact cut": {"compact_at": 0, "cut_step": 1, "keep_turns": 10**9},
        "coarse cut": {"compact_at": 0, "keep_turns": 10**9},
    }[variant]
    last_plain = max(t for t in range(1, count + 1) if t % 3)
    measured: dict[int, dict[str, Any]] = {}
    times: dict[int, float] = {}
    compacting: set[int] = set()
    started = time.perf_counter()
    for turn in range(1, count + 1):
        summaries_before, observed = model.summaries, model.observing
        async with counting_queries() as queries:
            began = time.perf_counter()
            begun = await turns.start_turn(owner, sid, turns.SendMessage(question(turn)), storage=storage, worker_id=uuid.uuid4())
            assert isinstance(begun, turns.Turn)
            mm = Manager(sid, owner, storage, **options)
            state = "idle"
            async with aclosing(run_turn(mm, model, TOOLS, reply=begun.reply)) as events:
                async for event in events:
                    if event["type"] == "error":
                        raise RuntimeError(f"turn {turn}: {event}")
            await db_async(services.end_run)(sid, begun.run_id, state)
            times[turn] = time.perf_counter() - began - (model.observing - observed)
        if model.summaries != summaries_before:
            compacting.add(turn)
        if turn in (10, last_plain):
            measured[turn] = {"sql": len(queries), "statements": list(queries)}
        if turn % 500 == 0:
            print(f"    {variant}: turn {turn} ({time.perf_counter() - started:.0f} s)", flush=True)
    session = await ChatSession.objects.aget(pk=sid)
    summaries = await Summary.objects.filter(session_id=sid).acount()

    def around(at: int) -> float:
        near = [times[t] for t in range(max(1, at - 10), at + 1) if t % 3 and t not in compacting]
        return statistics.median(near) * 1000

    return {
        "model": model,
        "largest": Manager.largest,
        "path_tokens": session.total_tokens,
        "messages": session.message_count,
        "summaries": summaries,
        "measured": measured,
        "time": {10: around(15), last_plain: around(last_plain)},
        "last_plain": last_plain,
        "compacting": compacting,
    }


async def main(count: int) -> None:
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 10**9  # the workload sends far faster than a person
    settings.AGENT_STREAM_FLUSH_INTERVAL = 3600.0
    owner = await sync_to_async(get_user_model().objects.create_user)(f"bench-{uuid.uuid4().hex[:8]}")
    window = settings.CHAT_CONTEXT_TOKENS
    print(
        f"database: {connection.vendor}; cache: {type(runtime.get().cache).__name__}; window {window:,} tokens, "
        f"compaction at {settings.CHAT_COMPACT_AT:.0%}, keep {settings.CHAT_COMPACT_KEEP:.0%}, "
        f"cut step {settings.CHAT_CONTEXT_CUT_STEP:,}; {count:,} turns, a lookup (~1,500 tokens) every third\n"
    )
    results = {}
    for variant in ("compaction", "exact cut", "coarse cut"):
        results[variant] = await run(owner, variant, count)
    print()
    print(f"{'':12} {'calls':>6} {'largest prompt':>15} {'vs window':>10} {'as sent':>8} {'prefix kept':>12} {'summaries':>10}")
    for variant, result in results.items():
        model = result["model"]
        share = model.hits / max(1, model.calls - 1)
        print(
            f"{variant:12} {model.calls:>6} {result['largest']:>15,} {result['largest'] / window:>10.1%} "
            f"{model.largest / window:>8.1%} {share:>12.1%} {result['summaries']:>10}"
        )
    print(
        "(largest prompt: tokens as the budget counts them; as sent: the same estimate over the blocks the model got,\n"
        " where a message stored as plain text is sent as a text block and counts a few tokens more)"
    )
    ours, exact = results["compaction"], results["exact cut"]
    share = ours["model"].hits / max(1, ours["model"].calls - 1)
    print(
        f"\nThe chat: {ours['messages']:,} messages, {ours['path_tokens']:,} tokens stored. "
        f"Prompt-cache prefix kept: compaction {share:.1%} (target ≥ 95%) "
        f"against the exact cut's {exact['model'].hits / max(1, exact['model'].calls - 1):.1%}; "
        f"largest prompt {ours['largest']:,} of {window:,} tokens ({'never above' if ours['largest'] <= window else 'ABOVE'} the window)."
    )
    print(f"Compactions at turns: {sorted(ours['compacting'])[:8]}{' …' if len(ours['compacting']) > 8 else ''}")
    count = ours["last_plain"]
    print("\nA plain turn (one model call): SQL statements, and time (median of the plain turns around it)")
    print(f"{'':12} {'SQL at 10':>10} {f'at {count}':>8} {'ms at 10':>9} {f'at {count}':>8} {'ratio':>6}")
    for variant, result in results.items():
        sql, ms = result["measured"], result["time"]
        print(
            f"{variant:12} {sql[10]['sql']:>10} {sql[count]['sql']:>8} {ms[10]:>9.1f} {ms[count]:>8.1f} {ms[count] / ms[10]:>5.2f}x"
        )
    for turn in (10, count):
        kinds = [" ".join(q.split()[:3]).replace('"', "") for q in ours["measured"][turn]["statements"]]
        print(f"  compaction, turn {turn}: " + "; ".join(kinds))


if __name__ == "__main__":
    from bench import throwaway_database

    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=2_000)
    arguments = parser.parse_args()
    with throwaway_database():
        asyncio.run(main(arguments.turns))
