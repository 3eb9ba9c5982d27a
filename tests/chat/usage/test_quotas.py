"""Quotas: which limits apply, the boundaries, the reset times, a run crossing a limit
mid-way, and concurrent turns near a limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.utils import timezone

from chat.errors import QuotaBusy, QuotaExceeded
from chat.models import ChatSession, Message, UsageLimit, UsageRecord
from chat.runs import turns
from chat.usage import quotas
from chat.usage.quotas import Limits
from tests.chat.agent.conftest import assert_history_valid, collect, turn
from tests.fakes.scripted import ScriptedProvider, call, say
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()
NOW = dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.timezone.utc)


def spend(user, tokens: int = 0, *, cost_micros: int = 0, at: dt.datetime | None = None) -> None:
    UsageRecord.objects.create(
        key=f"test:{uuid.uuid4()}", user=user, kind="reply", model="claude-sonnet-4-5",
        input_tokens=tokens, cost_micros=cost_micros, created_at=at or timezone.now(),
    )


async def start(storage, user, sid, text="hello"):
    return await turns.start_turn(user, sid, turns.SendMessage(text), storage=storage, worker_id=WORKER)


# --- which limits apply ---------------------------------------------------------------------


def test_no_defaults_and_no_overrides_means_no_limits(owner, settings):
    assert quotas.limits_for(owner.pk) == quotas.NO_LIMITS


def test_a_users_own_override_beats_their_groups_and_groups_give_the_most_generous(owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 1000
    settings.USAGE_QUOTA_COST_PER_MONTH = 5.0
    small, big = Group.objects.create(name="small"), Group.objects.create(name="big")
    owner.groups.add(small, big)
    UsageLimit.objects.create(group=small, tokens_per_day=2000, cost_per_day="1.00")
    UsageLimit.objects.create(group=big, tokens_per_day=3000)
    assert quotas.limits_for(owner.pk) == Limits(
        tokens_per_day=3000, tokens_per_month=None, cost_per_day=1_000_000, cost_per_month=5_000_000
    )
    UsageLimit.objects.create(user=owner, tokens_per_day=500)
    assert quotas.limits_for(owner.pk).tokens_per_day == 500
    assert quotas.limits_for(owner.pk).cost_per_month == 5_000_000  # inherited from the default


def test_unlimited_lifts_every_limit(owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 1000
    UsageLimit.objects.create(user=owner, unlimited=True)
    assert quotas.limits_for(owner.pk) == quotas.NO_LIMITS


def test_defaults_are_off_in_the_embedded_mode_whatever_is_set(monkeypatch):
    from agentsite import settings as module

    monkeypatch.setenv("USAGE_QUOTA_TOKENS_PER_DAY", "1000")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert module._limit("USAGE_QUOTA_TOKENS_PER_DAY", int) is None
    monkeypatch.setenv("DATABASE_URL", "postgres://db/agentsite")
    assert module._limit("USAGE_QUOTA_TOKENS_PER_DAY", int) == 1000
    monkeypatch.setenv("USAGE_QUOTA_TOKENS_PER_DAY", "-5")
    with pytest.raises(Exception, match="USAGE_QUOTA_TOKENS_PER_DAY must be more than 0"):
        module._limit("USAGE_QUOTA_TOKENS_PER_DAY", int)


# --- boundaries and reset times -------------------------------------------------------------


def test_periods_reset_at_the_next_utc_midnight_and_the_first_of_the_next_month():
    day, month, next_day, next_month = quotas.periods(NOW)
    assert (day, month) == (dt.datetime(2026, 3, 31, tzinfo=dt.timezone.utc), dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    assert (next_day, next_month) == (
        dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
    )
    assert quotas.periods(dt.datetime(2026, 12, 15, tzinfo=dt.timezone.utc))[3] == dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)


def test_usage_counts_by_day_and_by_month(owner):
    spend(owner, 100, cost_micros=7, at=NOW)
    spend(owner, 20, cost_micros=3, at=NOW - dt.timedelta(days=2))
    spend(owner, 5, at=NOW - dt.timedelta(days=40))  # last month
    assert quotas.used_by(owner.pk, NOW) == quotas.Used(tokens_day=100, tokens_month=120, cost_day=7, cost_month=10)


def test_one_token_under_the_limit_starts_and_at_the_limit_is_refused_with_its_reset_time(owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 1000
    sid = ChatSession.objects.create(owner=owner).pk
    spend(owner, 999, at=NOW)
    assert quotas.admit(owner.pk, sid, now=NOW).tokens_per_day == 1000
    spend(owner, 1, at=NOW)
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit(owner.pk, sid, now=NOW)
    assert refused.value.code == "quota_exceeded" and refused.value.status == 429
    assert refused.value.as_dict()["resets_at"] == "2026-04-01T00:00:00+00:00"
    assert "2026-04-01 00:00 UTC" in refused.value.message


def test_a_month_limit_reached_says_the_month_resets_and_a_cost_limit_counts_dollars(owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_MONTH = 10**9
    settings.USAGE_QUOTA_COST_PER_MONTH = 2.5
    sid = ChatSession.objects.create(owner=owner).pk
    at = dt.datetime(2026, 5, 10, 12, tzinfo=dt.timezone.utc)
    spend(owner, 10, cost_micros=2_499_999, at=at)
    quotas.admit(owner.pk, sid, now=at)
    spend(owner, 10, cost_micros=1, at=at)
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit(owner.pk, sid, now=at)
    assert refused.value.resets_at == dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


async def test_a_turn_over_quota_stores_nothing_and_creates_no_chat(storage, owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 100
    await sync_to_async(spend)(owner, 100)
    sid = uuid.uuid4()
    with pytest.raises(QuotaExceeded):
        await start(storage, owner, sid)
    assert not await ChatSession.objects.filter(pk=sid).aexists()

    existing = await sync_to_async(ChatSession.objects.create)(owner=owner)
    with pytest.raises(QuotaExceeded):
        await start(storage, owner, existing.pk)
    assert await Message.objects.filter(session_id=existing.pk).acount() == 0
    assert (await ChatSession.objects.aget(pk=existing.pk)).state == "idle"


async def test_a_turn_without_limits_is_not_billed_and_one_with_limits_is(storage, owner, stranger, settings):
    unbilled = await start(storage, owner, uuid.uuid4())
    assert not unbilled.limits.any()
    await sync_to_async(UsageLimit.objects.create)(user=stranger, tokens_per_month=10**6)
    billed = await start(storage, stranger, uuid.uuid4())
    assert billed.limits == Limits(tokens_per_month=10**6)


# --- a run crossing a limit -------------------------------------------------------------------


async def test_a_run_crossing_its_limit_finishes_the_reply_answers_its_tools_and_stops(manager, session_id, owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 150  # each scripted call uses 110
    model = ScriptedProvider(
        call(("calculate", {"expression": "1+1"})), call(("calculate", {"expression": "2+2"})), say("Done.")
    )
    limits = await sync_to_async(quotas.limits_for)(owner.pk)
    events = await collect(turn(manager, model, builtin_tools(), "add things", allowance=quotas.allowance(owner.pk, limits)))

    assert len(model.calls) == 2  # the second call crossed the limit: no third
    assert [e["type"] for e in events][-3:] == ["message", "tool_result", "error"]
    assert events[-1]["code"] == "quota_exceeded" and events[-1]["resets_at"]
    await assert_history_valid(session_id)  # the second reply's tool was answered
    assert await UsageRecord.objects.filter(user=owner).acount() == 2


def test_no_allowance_check_without_limits():
    assert quotas.allowance(1, quotas.NO_LIMITS) is None


# --- concurrent turns -------------------------------------------------------------------------


async def chats(owner, n):
    return [(await sync_to_async(ChatSession.objects.create)(owner=owner)).pk for _ in range(n)]


async def race(storage, owner, sids):
    return await asyncio.gather(*(start(storage, owner, sid) for sid in sids), return_exceptions=True)


async def test_near_the_limit_concurrent_turns_go_one_at_a_time(storage, owner, settings):
    # Real concurrency on PostgreSQL (each start on a database thread of its own, queuing on
    # the user's row lock); SQLite runs them one after another.
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 1000
    settings.USAGE_QUOTA_TURN_SHARE = 0.05
    await sync_to_async(spend)(owner, 950)
    outcomes = await race(storage, owner, await chats(owner, 4))

    started = [o for o in outcomes if isinstance(o, turns.Turn)]
    refused = [o for o in outcomes if isinstance(o, QuotaBusy)]
    assert (len(started), len(refused)) == (1, 3), outcomes
    assert refused[0].code == "quota_busy" and refused[0].status == 409
    assert await ChatSession.objects.filter(owner=owner, state="running").acount() == 1


async def test_far_from_the_limit_concurrent_turns_all_start(storage, owner, settings):
    settings.USAGE_QUOTA_TOKENS_PER_DAY = 1_000_000
    outcomes = await race(storage, owner, await chats(owner, 4))
    assert all(isinstance(o, turns.Turn) for o in outcomes), outcomes


@pytest.mark.postgres
async def test_concurrent_runs_to_the_end_overshoot_the_limit_by_at_most_one_turn(owner, settings):
    """Turns sent at once on many chats through the run manager, each using 110 tokens:
    the total ends within one turn of the limit."""
    from chat import runtime

    settings.USAGE_QUOTA_TOKENS_PER_DAY = 1000
    await sync_to_async(spend)(owner, 900)
    manager = runtime.get().runs
    model = ScriptedProvider(*[say("Hi.") for _ in range(8)])
    manager.provider = model
    outcomes = await asyncio.gather(
        *(manager.start_turn(owner, sid, turns.SendMessage("hi")) for sid in await chats(owner, 8)),
        return_exceptions=True,
    )
    for _ in range(200):
        if not await ChatSession.objects.filter(owner=owner, state="running").aexists():
            break
        await asyncio.sleep(0.05)
    used = await sync_to_async(quotas.used_by)(owner.pk)
    assert sum(isinstance(o, turns.Turn) for o in outcomes) >= 1
    assert used.tokens_day <= 1000 + 110


async def test_a_turn_without_limits_costs_no_statement_more_and_one_with_limits_three(storage, owner, stranger):
    from tests.queries import counting_queries

    counts = {}
    await sync_to_async(UsageLimit.objects.create)(user=stranger, tokens_per_day=10**6)
    for user in (owner, stranger):
        chat = await sync_to_async(ChatSession.objects.create)(owner=user)
        async with counting_queries() as queries:
            await start(storage, user, chat.pk)
        counts[user.username] = len(queries)
    # Lock the chat (saying whether a limit may apply), claim it and store the message (3);
    # with a limit: which limits apply, the user's row lock (not on SQLite: its
    # transactions are serial) and this month's sums with the user's running chats.
    from django.db import connection

    assert counts["owner"] == 3
    assert counts["stranger"] == 3 + (3 if connection.features.has_select_for_update else 2)
