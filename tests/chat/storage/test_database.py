"""L2 on its own: atomic allocation under real concurrency, failures, the budget query plan."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, connection, connections

from chat import history
from chat.models import ChatSession, Message
from chat.storage import HybridStorage, database
from tests.chat.storage.conftest import make_cache
from tests.factories import new_chat, seed_history

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_concurrent_writers_each_store_once_with_gap_free_sequences(owner):
    sid = ChatSession.objects.create(owner=owner).pk
    database.save_messages(sid, [{"role": "user", "content": "start"}])
    barrier = threading.Barrier(50)

    def write(n):
        barrier.wait()  # all fifty transactions start together
        try:
            saved = database.save_messages(sid, [{"role": "user", "content": f"writer {n}"}, {"role": "assistant", "content": f"reply {n}"}])
            return [m["sequence"] for m in saved.messages]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=50) as pool:
        allocated = list(pool.map(write, range(50)))
    rows = list(Message.objects.filter(session_id=sid).order_by("sequence").values_list("sequence", "content", "cumulative_tokens", "tokens"))
    assert [seq for seq, *_ in rows] == list(range(1, 102))
    assert sorted(content for _, content, *_ in rows[1:]) == sorted([f"writer {n}" for n in range(50)] + [f"reply {n}" for n in range(50)])
    assert all(b - a == 1 for a, b in allocated), "a writer's two messages are consecutive"
    running = 0
    for _, _, cumulative, tokens in rows:
        running += tokens
        assert cumulative == running
    session = ChatSession.objects.get(pk=sid)
    assert (session.last_sequence, session.message_count, session.total_tokens, session.revision) == (101, 101, running, 51)


async def test_a_failing_database_raises_leaves_the_cache_unchanged_and_writes_nothing(owner, monkeypatch):
    storage = HybridStorage(cache=make_cache("local"))
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
    cached_before = await storage.cache.read_recent(str(sid), 2)
    assert cached_before is not None
    session_before = await ChatSession.objects.aget(pk=sid)

    def fail_after_allocating(rows):
        # The sequence UPDATE has run inside the transaction; the INSERT now fails.
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(database, "_insert", fail_after_allocating)
    with pytest.raises(OperationalError):
        await storage.save_messages(sid, [{"role": "user", "content": "lost?"}])
    monkeypatch.undo()

    assert await storage.cache.read_recent(str(sid), 2) == cached_before
    session_after = await ChatSession.objects.aget(pk=sid)
    assert (session_after.last_sequence, session_after.total_tokens, session_after.revision) == (
        session_before.last_sequence,
        session_before.total_tokens,
        session_before.revision,
    )
    assert await Message.objects.filter(session_id=sid).acount() == 2
    # And the session keeps working once the database does.
    [stored] = await storage.save_messages(sid, [{"role": "user", "content": "three"}])
    assert stored["sequence"] == 3


@pytest.mark.postgres
async def test_postgresql_down_the_save_raises_and_nothing_changes(owner):
    from asgiref.sync import sync_to_async

    from chat.db import on_every_thread

    storage = HybridStorage(cache=make_cache("local"))
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "before the outage"}])
    cached_before = await storage.cache.read_recent(str(sid), 1)

    def point_at(port):
        # Every database thread drops its connection; the next query connects to ``port``.
        connections["default"].settings_dict["PORT"] = port
        on_every_thread(connections.close_all)

    real_port = connection.settings_dict["PORT"]
    await sync_to_async(point_at)(1)  # nothing listens on port 1
    try:
        with pytest.raises(OperationalError):
            await storage.save_messages(sid, [{"role": "user", "content": "during the outage"}])
    finally:
        await sync_to_async(point_at)(real_port)
    assert await storage.cache.read_recent(str(sid), 1) == cached_before
    contents = [m["content"] for m in await storage.load_recent_messages(sid)]
    assert contents == ["before the outage"]


@pytest.mark.postgres
def test_budget_query_is_an_index_range_scan_not_a_window_over_history(owner):
    session = seed_history(owner, 20_000)
    for _ in range(100):  # other chats: the statistics of a table in use
        seed_history(owner, 20)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_message")
    recent = database.active_branch_rows(session.pk, database.recent_range(40), "sequence").explain(analyze=True)
    assert "Seq Scan on chat_message" not in recent and "Rows Removed by" not in recent, recent
    queryset = database.active_branch_rows(session.pk, database.budget_range(500), "cumulative_tokens")
    plan = queryset.explain(analyze=True)
    assert "chat_msg_branch_cumulative" in plan, plan
    assert "Seq Scan on chat_message" not in plan, plan
    # Rows read from the message index: the answer plus at most one straddler.
    answer = len(history.fit_budget(database.load_within_budget(session.pk, 500).messages, 500))
    scanned = [line for line in plan.splitlines() if "chat_msg_branch_cumulative" in line][0]
    rows = int(scanned.split("actual")[1].split("rows=")[1].split()[0].rstrip(")").split(".")[0])
    assert rows <= answer + 1, plan
