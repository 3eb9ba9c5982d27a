"""Search benchmark (issue 15). Run with ``bin/bench search`` (PostgreSQL: DATABASE_URL).

Generates ``--messages`` messages (default 1,000,000) over ``--chats`` chats (10,000) of
``--users`` users (100); one user holds ``--heavy-share`` of them (a tenth: 100,000 of the
default million). Text is drawn from a 50,000-word vocabulary with Zipf frequencies (the
most common English words first, then made-up words), written by INSERT … SELECT in the
database, a few thousand chats per statement, with the search triggers on (as in use) and
the search indexes built after the load (as the migration does).

Then, for the heavy user: p50 and p99 of a search (the real code path, first page) for a
rare word, a common word, a phrase and a common phrase, with the target p99 ≤ 50 ms; the
same searches as an ILIKE scan over the user's messages (what a LIKE search does) and the
ratio; the cost of saving a turn (the user's message and the reply, then the reply's final
text) with the index's triggers against without them (target ≤ 1.3×, interleaved in
blocks); and EXPLAIN ANALYZE of the search statement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from typing import Any, Callable

from bench import setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from chat.agent.reply import EMPTY_TEXT  # noqa: E402
from chat.models import ChatSession, Message  # noqa: E402
from chat.search import index, postgres, query, results  # noqa: E402
from chat.storage import database  # noqa: E402

VOCABULARY = 50_000
COMMON = (
    "the of and to a in is it you that he was for on are as with his they i at be this have from or one had by "
    "word but not what all were we when your can said there use an each which she do how their if will up other "
    "about out many then them these so some her would make like him into time has look two more write go see number "
    "no way could people my than first water been call who oil its now find long down day did get come made may part"
).split()
SYLLABLES = "ka ri to ne su mi lo pa ve da ze fu ro ti na be co gu le mo".split()
CHATS_PER_STATEMENT = 500


def _sql(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _word(rank: int) -> str:
    if rank <= len(COMMON):
        return COMMON[rank - 1]
    n, parts = rank, []
    while n:
        n, digit = divmod(n, len(SYLLABLES))
        parts.append(SYLLABLES[digit])
    return "".join(parts) + "x"  # never one of COMMON


def load(messages: int, chats: int, users: int, heavy_share: float) -> Any:
    """The data set; returns the heavy user."""
    per_chat = max(2, messages // chats)
    heavy_chats = max(1, round(chats * heavy_share))
    User = get_user_model()
    password = make_password(None)
    people = User.objects.bulk_create([User(username=f"searcher-{i}", password=password) for i in range(users)])
    heavy = people[0]
    _sql("CREATE TABLE bench_words (rank int PRIMARY KEY, word text NOT NULL)")
    rows = [(r, _word(r)) for r in range(1, VOCABULARY + 1)]
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO bench_words VALUES (%s, %s)", rows)
    # Chats: the heavy user's first, the rest round-robin over the others; started over two years.
    _sql(
        "CREATE TABLE bench_chats AS SELECT n, gen_random_uuid() AS id,"
        " CASE WHEN n < %s THEN %s ELSE (%s::bigint[])[1 + (n %% %s)] END AS owner_id,"
        " now() - interval '730 days' * random() AS started FROM generate_series(0, %s - 1) n",
        [heavy_chats, heavy.pk, [p.pk for p in people[1:]] or [heavy.pk], max(1, users - 1), chats],
    )
    _sql("CREATE UNIQUE INDEX ON bench_chats (n)")
    # Built after the load, as the migration builds them after its backfill.
    _sql("DROP INDEX IF EXISTS chat_message_search_terms, chat_message_search_recent")
    # Each word's rank drawn from a Zipf distribution (rank = N^u is P(rank) ~ 1/rank), then
    # looked up by index (hash and merge joins are turned off: they would hash the
    # vocabulary once per message).
    def words(count: str) -> str:
        return (
            "(SELECT string_agg(w.word, ' ') FROM (SELECT floor(power(%(vocabulary)s::float8, random()))::int AS rank"
            f" FROM generate_series(1, {count}) g) r JOIN bench_words w ON w.rank = r.rank)"
        )

    started = time.perf_counter()
    for first in range(0, chats, CHATS_PER_STATEMENT):
        with transaction.atomic():
            _sql("SET LOCAL enable_hashjoin = off")
            _sql("SET LOCAL enable_mergejoin = off")
            _sql(
                f"""
                INSERT INTO {ChatSession._meta.db_table} (id, owner_id, title, state, message_count, active_branch,
                    total_tokens, last_sequence, branch_count, revision, created_at, updated_at)
                SELECT c.id, c.owner_id, t.title, 'idle', %(per)s, 0, %(per)s * 60, %(per)s, 0, %(per)s, c.started,
                       c.started + %(per)s * interval '3 minutes'
                FROM bench_chats c CROSS JOIN LATERAL (SELECT {words("3 + c.n %% 3")} AS title) t
                WHERE c.n >= %(first)s AND c.n < %(last)s
                """,
                {"per": per_chat, "first": first, "last": first + CHATS_PER_STATEMENT, "vocabulary": VOCABULARY},
            )
            _sql(
                f"""
                INSERT INTO {Message._meta.db_table} (id, session_id, branch, sequence, role, content, tokens,
                    tokens_estimated, cumulative_tokens, finished, created_at)
                SELECT gen_random_uuid(), c.id, 0, s.seq, CASE WHEN s.seq %% 2 = 1 THEN 'user' ELSE 'assistant' END,
                       CASE WHEN s.seq %% 2 = 1 THEN to_jsonb(t.body)
                            ELSE jsonb_build_array(jsonb_build_object('type', 'text', 'text', t.body)) END,
                       60, true, 60 * s.seq, true, c.started + s.seq * interval '3 minutes'
                FROM bench_chats c CROSS JOIN generate_series(1, %(per)s) s(seq)
                CROSS JOIN LATERAL (SELECT {words(
                    "CASE WHEN s.seq %% 2 = 1 THEN 6 + (s.seq * 7 + c.n) %% 20 ELSE 30 + (s.seq * 13 + c.n) %% 90 END"
                )} AS body) t
                WHERE c.n >= %(first)s AND c.n < %(last)s
                """,
                {"per": per_chat, "first": first, "last": first + CHATS_PER_STATEMENT, "vocabulary": VOCABULARY},
            )
        done = min(chats, first + CHATS_PER_STATEMENT)
        print(f"  {done:,} chats, {done * per_chat:,} messages ({time.perf_counter() - started:.0f} s)", flush=True)
    building = time.perf_counter()
    index.finish()
    _sql("VACUUM ANALYZE chat_message_search")
    _sql(f"ANALYZE {Message._meta.db_table}")
    _sql(f"ANALYZE {ChatSession._meta.db_table}")
    print(f"  search indexes built and analysed in {time.perf_counter() - building:.0f} s", flush=True)
    return heavy


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _ilike(owner_id: int, pattern: str) -> Any:
    return _sql(
        f"SELECT m.id FROM {Message._meta.db_table} m JOIN {ChatSession._meta.db_table} c ON c.id = m.session_id"
        " WHERE c.owner_id = %s AND m.content::text ILIKE %s ORDER BY m.created_at DESC LIMIT 20",
        [owner_id, f"%{pattern}%"],
    )


def _matches(owner_id: int, text: str) -> int:
    return _sql(
        "SELECT count(*) FROM chat_message_search WHERE owner_id = %s AND document @@ chat_search_tsquery(%s)",
        [owner_id, query.tsquery(query.parse(text))],
    )[0][0]


def bench_searches(heavy: Any, runs: int, ilike_runs: int) -> None:
    held = Message.objects.filter(session__owner=heavy).count()
    rare = _word(20_000)
    cases = [
        ("rare word", rare, rare),
        ("common word", "the", "the"),
        ("phrase", f'"{_word(10)} {_word(30)}"', f"{_word(10)} {_word(30)}"),
        ("common phrase", f'"{_word(2)} {_word(1)}"', f"{_word(2)} {_word(1)}"),
        # Typed as the first letters of a word: the last word is also a prefix.
        ("short prefix", "th", "th"),
        ("one letter", "t", "t"),
    ]
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (p99s move with it)")
    print(f"Search for a user holding {held:,} messages: first page of 20, {runs} runs each (target p99 <= 50 ms)")
    for label, typed, pattern in cases:
        parsed = query.parse(typed)
        times = _timed(lambda parsed=parsed: results.search(heavy, parsed), runs)
        p50, p99 = _percentiles(times)
        like = _timed(lambda pattern=pattern: _ilike(heavy.pk, pattern), ilike_runs)
        l50, l99 = _percentiles(like)
        print(
            f"  {label:<14} {typed!r:<22} {_matches(heavy.pk, typed):>7,} matches   p50 {p50 * 1e3:7.2f} ms  p99 {p99 * 1e3:7.2f} ms"
            f"   ILIKE p50 {l50 * 1e3:8.1f} ms  p99 {l99 * 1e3:8.1f} ms   ratio {l50 / p50:6.1f}x"
        )
    for label, typed, _ in cases[:3]:
        sql, params = postgres.statement(
            heavy.pk, query.parse(typed), window=results.CANDIDATES, after=None, limit=21, half_life=results.HALF_LIFE
        )
        with connection.cursor() as cursor:
            cursor.cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, prepare=False)
            plan = [row[0] for row in cursor.cursor.fetchall()]
        print(f"\n  EXPLAIN ANALYZE of the search statement, {label} {typed!r}:")
        for line in plan:
            print("    " + line)


_TRIGGERS = ("chat_message_search_insert", "chat_message_search_update")


def _triggers(enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    for name in _TRIGGERS:
        _sql(f"ALTER TABLE {Message._meta.db_table} {verb} TRIGGER {name}")


def bench_save(heavy: Any, blocks: int, per_block: int) -> None:
    """A turn's writes: the user's message with the empty reply (one INSERT), then the
    reply's final text (one UPDATE), as the turn service and the reply do them."""
    chats = list(ChatSession.objects.filter(owner=heavy).values_list("id", flat=True)[:20])
    user_text = " ".join(_word(r) for r in (3, 140, 7, 2200, 1, 58, 310, 12, 4, 900, 25, 6))
    reply_text = " ".join(_word(r) for r in range(1, 90, 1))

    def turn(i: int) -> None:
        chat = chats[i % len(chats)]
        saved = database.save_messages(chat, [{"role": "user", "content": user_text}, {"role": "assistant", "content": EMPTY_TEXT, "finished": False}])
        reply = saved.messages[1]
        database.update_message(chat, reply["sequence"], known=reply, content=[{"type": "text", "text": reply_text}], finished=True, tokens=120)

    with_index, without = [], []
    i = 0
    for block in range(blocks * 2):
        enabled = block % 2 == 0
        _triggers(enabled)
        turn(i)  # the first statements after ALTER TABLE plan again: not timed
        for _ in range(per_block):
            start = time.perf_counter()
            turn(i)
            (with_index if enabled else without).append(time.perf_counter() - start)
            i += 1
    _triggers(True)
    a, b = statistics.median(with_index), statistics.median(without)
    print(
        f"\nSaving a turn (INSERT of message + reply, UPDATE of the reply), {len(with_index)} each, in alternating blocks\n"
        f"  with the search index: {a * 1e3:.3f} ms   without: {b * 1e3:.3f} ms   ratio {a / b:.2f}   (target <= 1.3)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--heavy-share", type=float, default=0.1, help="share of the chats held by one user")
    parser.add_argument("--runs", type=int, default=300, help="timed searches per query")
    parser.add_argument("--ilike-runs", type=int, default=15)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("bench/search.py measures PostgreSQL: set DATABASE_URL (skipped).")
        return
    print(f"Loading {args.messages:,} messages over {args.chats:,} chats of {args.users} users…", flush=True)
    started = time.perf_counter()
    heavy = load(args.messages, args.chats, args.users, args.heavy_share)
    print(f"  loaded in {time.perf_counter() - started:.0f} s")
    size = _sql("SELECT pg_size_pretty(pg_total_relation_size('chat_message_search')), pg_size_pretty(pg_total_relation_size('chat_message'))")[0]
    print(f"  search table with its indexes: {size[0]} (chat_message with its indexes: {size[1]})")
    bench_searches(heavy, args.runs, args.ilike_runs)
    bench_save(heavy, blocks=60, per_block=5)


if __name__ == "__main__":
    from bench import throwaway_database

    if "-h" in sys.argv or "--help" in sys.argv:
        main()
    with throwaway_database():
        main()
    print(f"run {uuid.uuid4().hex[:6]} done")
