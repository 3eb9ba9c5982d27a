"""Storage benchmarks (issues 2 and 13). Run with ``bin/bench storage``.

Measured against whatever DATABASE_URL and REDIS_URL point at (the targets are for
PostgreSQL and Redis). Each ratio's two sides run interleaved (A B A B …) in one process
and the medians are compared, so machine noise hits both sides alike. A throwaway test
database is created and dropped; Redis keys live under a prefix of this run's own.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any, Awaitable, Callable

from bench import setup_django

setup_django()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from chat import runtime, services  # noqa: E402
from chat.message_manager import MessageManager  # noqa: E402
from chat.models import ChatSession, Message  # noqa: E402
from chat.runs import turns as turns_service  # noqa: E402
from chat.storage import HybridStorage, database, keys, paths, tree  # noqa: E402
from chat.storage.cache import MessageCache  # noqa: E402
from tests.factories import seed_history  # noqa: E402
from tests.queries import counting_queries  # noqa: E402

ROUNDS = 300


class CountingCache(MessageCache):
    """Counts reads that hit; optionally invalidates on every write (the article's way)."""

    def __init__(self, inner: MessageCache, *, invalidate_on_write: bool = False, forget_forks: bool = False):
        super().__init__(ttl=inner.ttl, max_messages=inner.max_messages)
        self.inner, self.invalidate_on_write, self.forget_forks = inner, invalidate_on_write, forget_forks
        self.reads = self.hits = self.round_trips = 0

    async def _read(self, result: Any) -> Any:
        self.reads += 1
        self.round_trips += 1
        self.hits += result is not None
        return result

    async def read_recent(self, session_id, limit):
        return await self._read(await self.inner.read_recent(session_id, limit))

    async def read_budget(self, session_id, token_budget):
        return await self._read(await self.inner.read_budget(session_id, token_budget))

    async def fill(self, session_id, snapshot):
        self.round_trips += 1
        return await self.inner.fill(session_id, snapshot)

    async def append(self, session_id, revision, messages, *, forked=False):
        self.round_trips += 1
        if self.invalidate_on_write:
            return await self.inner.drop(session_id)
        # forget_forks: what a cache that cannot keep the shared part of two paths would do.
        return await self.inner.append(session_id, revision, messages, forked=forked and not self.forget_forks)

    async def replace(self, session_id, updated):
        self.round_trips += 1
        if self.invalidate_on_write:
            return await self.inner.drop(session_id)
        return await self.inner.replace(session_id, updated)

    async def invalidate(self, session_id, revision):
        self.round_trips += 1
        return await self.inner.invalidate(session_id, revision)

    async def drop(self, session_id):
        self.round_trips += 1
        return await self.inner.drop(session_id)

    async def ping(self):
        return await self.inner.ping()


class MissingCache(MessageCache):
    """Every read misses and nothing is kept: the L2 path on its own."""

    def __init__(self) -> None:
        super().__init__(ttl=1, max_messages=1)

    async def read_recent(self, session_id, limit):
        return None

    async def read_budget(self, session_id, token_budget):
        return None

    async def fill(self, session_id, snapshot):
        return False

    async def append(self, session_id, revision, messages, *, forked=False):
        return None

    async def replace(self, session_id, updated):
        return None

    async def invalidate(self, session_id, revision):
        return None

    async def drop(self, session_id):
        return None

    async def ping(self):
        return True


async def interleaved(a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], rounds: int = ROUNDS) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run alternately."""
    times_a, times_b = [], []
    for _ in range(10):  # warm-up: connections, scripts, plans
        await a()
        await b()
    for _ in range(rounds):
        start = time.perf_counter()
        await a()
        times_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        await b()
        times_b.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def report(name: str, a_label: str, a: float, b_label: str, b: float, target: str) -> None:
    print(f"{name}\n  {a_label}: {a * 1e3:8.3f} ms   {b_label}: {b * 1e3:8.3f} ms   ratio {a / b:6.2f}   (target {target})")


async def bench_l2_vs_l1(owner: Any) -> None:
    session = await sync_to_async(seed_history)(owner, 1000)
    cached = HybridStorage(cache=runtime.get().cache)
    uncached = HybridStorage(cache=MissingCache())
    await cached.load_recent_messages(session.pk, 100)  # fill
    l2, l1 = await interleaved(
        lambda: uncached.load_recent_messages(session.pk, 100), lambda: cached.load_recent_messages(session.pk, 100)
    )
    report("Load of 100 recent messages", "L2 (database)", l2, "L1 hit", l1, ">= 10")
    if settings.REDIS_URL:
        # What an L1 hit cannot go below on this machine: one round trip that carries the
        # same 100 members, and decoding them.
        client = cached.cache.redis.get()
        members = keys.session_cache_messages(str(session.pk))
        ping, zrange = await interleaved(client.ping, lambda: client.zrange(members, -100, -1, withscores=True))
        print(f"  floor: PING {ping * 1e3:.3f} ms, bare ZRANGE of the 100 members {zrange * 1e3:.3f} ms")


async def bench_budget_scaling(owner: Any) -> None:
    big = await sync_to_async(seed_history)(owner, 100_000)
    small = await sync_to_async(seed_history)(owner, 100)
    storage = HybridStorage(cache=MissingCache())
    budget = 300  # about 30 messages of 10 tokens: the same answer size on both sides
    await database_sync_to_async(_analyze)()
    at_big, at_small = await interleaved(
        lambda: storage.load_within_budget(big.pk, budget), lambda: storage.load_within_budget(small.pk, budget)
    )
    report("Budget load from L2 (30 messages answered)", "100,000 history", at_big, "100 history", at_small, "<= 1.5")
    _print_plan(
        "EXPLAIN ANALYZE of the budget query at 100,000 messages",
        await database_sync_to_async(_explain)(database.active_branch_rows(big.pk, database.budget_range(budget), KEY)),
    )


KEY = "cumulative_tokens"


def _analyze() -> None:
    """Statistics as a table in use has them (autovacuum's ANALYZE), so plans are the real
    ones. Right after a bulk load PostgreSQL knows nothing of the new rows and may read a
    chat whole (see the README's Operating section)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE chat_message")


def _explain(queryset: Any) -> str:
    try:
        return queryset.explain(analyze=True) if connection.vendor == "postgresql" else queryset.explain()
    except Exception as exc:  # noqa: BLE001 - the plan is informative only
        return f"(no plan: {exc})"


def _print_plan(title: str, plan: str) -> None:
    print(f"  {title}:")
    for line in plan.splitlines():
        print("    " + line)


def _branchy_chat(owner: Any, branches: int, per_branch: int) -> ChatSession:
    """A chat of ``branches`` branches of ``per_branch`` messages, each forked halfway back
    along the one before it (an edit 500 messages up): the active path runs through all
    of them, half of each branch is off it."""
    session = ChatSession.objects.create(owner=owner)
    for number in range(branches):
        if number:
            last = ChatSession.objects.values_list("last_sequence", flat=True).get(pk=session.pk)
            tree.fork(session.pk, last - per_branch // 2)
        database.save_messages(
            session.pk,
            [{"role": ("user", "assistant")[i % 2], "content": f"message {i} of branch {number} " + "x" * 20} for i in range(per_branch)],
        )
    return ChatSession.objects.get(pk=session.pk)


async def bench_tree(owner: Any) -> None:
    """Issue 13: a budget load on the active path of a chat with 100 branches and 100,000
    messages costs what it costs on a plain chat: one statement within the active branch;
    past it, the path's segments and one more statement with an index range per segment
    reached."""
    branchy = await database_sync_to_async(_branchy_chat)(owner, 100, 1000)
    plain = await sync_to_async(seed_history)(owner, 100_000)
    stored = await Message.objects.filter(session_id=branchy.pk).acount()
    print(f"Budget load on a chat of {branchy.branch_count + 1} branches, {stored:,} messages ({branchy.last_sequence:,} on the active path)")
    storage = HybridStorage(cache=MissingCache())
    await database_sync_to_async(_analyze)()
    last_segment = await database_sync_to_async(_last_segment_tokens)(branchy)
    for label, budget in (("within the active branch", last_segment // 2), ("reaching back over three forks", last_segment * 3)):
        on_tree, on_line = await interleaved(
            lambda budget=budget: storage.load_within_budget(branchy.pk, budget),
            lambda budget=budget: storage.load_within_budget(plain.pk, budget),
        )
        answered = len(await storage.load_within_budget(branchy.pk, budget))
        async with counting_queries() as queries:
            await storage.load_within_budget(branchy.pk, budget)
        report(
            f"  {label}: {answered} messages, {len(queries)} statement(s)",
            "100 branches", on_tree, "one line of 100,000", on_line, "<= 1.5",
        )
    _print_plan(
        "EXPLAIN ANALYZE of its budget query (the active branch)",
        await database_sync_to_async(_explain)(database.active_branch_rows(branchy.pk, database.budget_range(last_segment // 2), KEY)),
    )
    segments, threshold = await database_sync_to_async(_earlier)(branchy, last_segment * 3)
    _print_plan(
        "EXPLAIN ANALYZE of the earlier segments' query (budget reaching back over three forks)",
        await database_sync_to_async(_explain)(database.path_rows(branchy.pk, paths.within_budget(segments, threshold), KEY)),
    )


def _last_segment_tokens(session: ChatSession) -> int:
    first = tree.segments_of(session.pk, session.active_branch)[-1].first
    before = Message.objects.filter(session_id=session.pk, branch=session.active_branch, sequence=first).values_list(
        "cumulative_tokens", "tokens"
    )[0]
    return session.total_tokens - (before[0] - before[1])


def _earlier(session: ChatSession, budget: int) -> tuple[Any, int]:
    return tree.segments_of(session.pk, session.active_branch)[:-1], session.total_tokens - budget


async def bench_save_scaling(owner: Any) -> None:
    big = await sync_to_async(seed_history)(owner, 10_000)
    small = await sync_to_async(seed_history)(owner, 10)
    storage = HybridStorage(cache=runtime.get().cache)
    await storage.load_recent_messages(big.pk, 100)
    await storage.load_recent_messages(small.pk, 100)
    message = [{"role": "user", "content": "a new message of ordinary length for the benchmark"}]
    at_big, at_small = await interleaved(
        lambda: storage.save_messages(big.pk, message), lambda: storage.save_messages(small.pk, message)
    )
    report("Save (insert + cache update)", "10,000 history", at_big, "10 history", at_small, "<= 2")


async def _workload(owner: Any, cache: CountingCache, sessions: int, turns: int, *, regenerate_every: int = 0) -> None:
    """Each turn of each chat: a budget load, the reply, the next question. With
    ``regenerate_every``, every that many turns the reply is regenerated before the next
    question, through the turn service (a fork, the new reply written, the run ended)."""
    storage = HybridStorage(cache=cache)
    worker = uuid.uuid4()
    ids = [(await ChatSession.objects.acreate(owner=owner)).pk for _ in range(sessions)]
    for sid in ids:  # each chat starts with the user's first message
        await storage.save_messages(sid, [{"role": "user", "content": "hello, let us begin"}])
    for turn in range(turns):
        for sid in ids:
            mm = MessageManager(sid, owner, storage)
            await mm.load(token_budget=settings.CHAT_CONTEXT_TOKENS)
            reply = await mm.add_assistant_message([{"type": "text", "text": f"answer {turn} " + "a" * 200}])
            if regenerate_every and turn % regenerate_every == regenerate_every - 1:
                regenerate = turns_service.Regenerate(reply["id"])
                begun = await turns_service.start_turn(owner, sid, regenerate, storage=storage, worker_id=worker)
                again = [{"type": "text", "text": f"again {turn} " + "b" * 200}]
                await storage.update_message(sid, begun.reply["sequence"], known=begun.reply, content=again)
                await database_sync_to_async(services.end_run)(sid, begun.run_id, "idle")
            await mm.add_user_message(f"question {turn} " + "q" * 100)


async def bench_hit_rate(owner: Any) -> None:
    print("Cache hit rate, 200 sessions x 20 turns (load + 2 saves per turn, interleaved)")
    warm = CountingCache(runtime.get().cache)
    await _workload(owner, warm, 200, 20)
    print(f"  extend-on-write: {warm.hits / warm.reads:6.1%} of {warm.reads} loads   (target >= 95%)")
    article = CountingCache(runtime.get().cache, invalidate_on_write=True)
    await _workload(owner, article, 200, 20)
    print(f"  invalidate-on-write (the article): {article.hits / article.reads:6.1%} of {article.reads} loads")
    regenerating = CountingCache(runtime.get().cache)
    await _workload(owner, regenerating, 200, 20, regenerate_every=10)
    print(
        f"  extend-on-write, a regenerated reply every ten turns: {regenerating.hits / regenerating.reads:6.1%}"
        f" of {regenerating.reads} loads   (target >= 95%)"
    )
    forgetting = CountingCache(runtime.get().cache, forget_forks=True)
    await _workload(owner, forgetting, 200, 20, regenerate_every=10)
    print(f"  the same, a fork leaving a tombstone instead: {forgetting.hits / forgetting.reads:6.1%} of {forgetting.reads} loads")


async def bench_turn_costs(owner: Any) -> None:
    print("Per turn (budget load + user message + reply), warm cache")
    for size in (10, 10_000):
        session = await sync_to_async(seed_history)(owner, size)
        cache = CountingCache(runtime.get().cache)
        storage = HybridStorage(cache=cache)
        await MessageManager(session.pk, owner, storage).load(token_budget=2000)
        cache.round_trips = 0
        async with counting_queries() as queries:
            mm = MessageManager(session.pk, owner, storage)
            await mm.load(token_budget=2000)
            await mm.add_user_message("next question")
            await mm.add_assistant_message([{"type": "text", "text": "next answer"}])
        print(f"  {size:>6} messages of history: {len(queries)} SQL statements, {cache.round_trips} cache round trips")


async def main() -> None:
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 10**9  # the workloads send far faster than a person
    owner = await sync_to_async(get_user_model().objects.create_user)(f"bench-{uuid.uuid4().hex[:8]}")
    print(f"database: {connection.vendor}; cache: {type(runtime.get().cache).__name__}; rounds: {ROUNDS}\n")
    await bench_l2_vs_l1(owner)
    await bench_budget_scaling(owner)
    await bench_save_scaling(owner)
    await bench_hit_rate(owner)
    await bench_turn_costs(owner)
    await bench_tree(owner)


if __name__ == "__main__":
    from bench import throwaway_database

    with throwaway_database():
        asyncio.run(main())
