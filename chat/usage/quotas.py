"""Quotas: how much one user may use per UTC day and per calendar month.

The owner of every quota rule. Limits come from settings (``USAGE_QUOTA_*``, none in the
embedded mode), overridden per group and per user in the admin (``UsageLimit``): an empty
field inherits, a user's own value beats their groups', among groups the most generous
wins, and ``unlimited`` lifts every limit. Usage is what the ledger holds for the period
(every call, whether it was billed or not: a limit set mid-month counts the month).

- A turn starts only under every limit (``admit``, in the turn service's transaction);
  else ``quota_exceeded``, saying when the first limit reached resets.
- Near a limit turns of one user go one at a time: beside other running turns, a turn
  starts only if each of them still has ``USAGE_QUOTA_TURN_SHARE`` of every limit to use
  (else ``quota_busy``). Admissions of one user queue on a lock of the user's row, so
  concurrent turns see each other: they cannot overshoot by more than one turn.
- A run that crosses a limit finishes the reply it is writing and stops before its next
  model call (``allowance``, asked by the loop).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from chat.agent import events
from chat.agent.events import Event
from chat.db import db_async
from chat.errors import QuotaBusy, QuotaExceeded
from chat.models import ChatSession, UsageLimit, UsageRecord


@dataclass(frozen=True)
class Limits:
    """Per user; None: no limit. Costs in millionths of a dollar."""

    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    cost_per_day: int | None = None
    cost_per_month: int | None = None

    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens_per_day": self.tokens_per_day,
            "tokens_per_month": self.tokens_per_month,
            "cost_per_day_usd": _usd(self.cost_per_day),
            "cost_per_month_usd": _usd(self.cost_per_month),
        }


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Used:
    tokens_day: int = 0
    tokens_month: int = 0
    cost_day: int = 0
    cost_month: int = 0


def _usd(micros: int | None) -> float | None:
    return None if micros is None else round(micros / 1_000_000, 6)


def _micros(dollars: Any) -> int | None:
    return None if dollars is None else int(Decimal(str(dollars)) * 1_000_000)


def defaults() -> Limits:
    return Limits(
        tokens_per_day=settings.USAGE_QUOTA_TOKENS_PER_DAY,
        tokens_per_month=settings.USAGE_QUOTA_TOKENS_PER_MONTH,
        cost_per_day=_micros(settings.USAGE_QUOTA_COST_PER_DAY),
        cost_per_month=_micros(settings.USAGE_QUOTA_COST_PER_MONTH),
    )


_OVERRIDDEN = ("tokens_per_day", "tokens_per_month", "cost_per_day", "cost_per_month")


def limits_for(user_id: int) -> Limits:
    """The limits that apply to the user (one query, written once: a chat's first turn
    asks, and building it with the ORM cost more than the rest of the turn's statements)."""
    names = ("user_id", "unlimited", *_OVERRIDDEN)
    with connection.cursor() as cursor:
        cursor.execute(_limits_sql(connection.vendor), [user_id, user_id])
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    own = next((r for r in rows if r["user_id"] == user_id), None)
    groups = [r for r in rows if r["user_id"] is None]
    if own is not None and own["unlimited"]:
        return NO_LIMITS
    base = defaults()
    values = {name: getattr(base, name) for name in _OVERRIDDEN}
    if any(g["unlimited"] for g in groups):
        values = dict.fromkeys(_OVERRIDDEN)
    else:
        for name in _OVERRIDDEN:
            given = [g[name] for g in groups if g[name] is not None]
            if given:
                values[name] = max(given) if name.startswith("tokens") else _micros(max(given))
    for name in _OVERRIDDEN:
        if own is not None and own[name] is not None:
            values[name] = own[name] if name.startswith("tokens") else _micros(own[name])
    return Limits(**values)


def may_have_limits_sql(owner_column: str) -> str:
    """An SQL expression, true if a default limit is set or the user in ``owner_column``
    (or one of their groups) has an override: the turn service reads it with the chat's
    lock, so a turn without limits costs no statement here."""
    if defaults().any():
        return "1"
    return _limits_subquery(owner_column, connection.vendor)


@functools.lru_cache(maxsize=8)
def _limits_subquery(owner_column: str, vendor: str) -> str:
    return f"(SELECT COUNT(*) FROM {_limits_of(owner_column)})"


@functools.lru_cache(maxsize=2)
def _limits_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("user_id", "unlimited", *_OVERRIDDEN))
    return f"SELECT {columns} FROM {_limits_of('%s')}"


def _limits_of(user: str) -> str:
    """The usage-limit rows of a user (``user``: an SQL expression): their own, and their
    groups'."""
    quote = connection.ops.quote_name
    limits = quote(UsageLimit._meta.db_table)
    memberships = quote(get_user_model().groups.through._meta.db_table)
    return f"{limits} WHERE user_id = {user} OR group_id IN (SELECT group_id FROM {memberships} WHERE user_id = {user})"


def periods(now: dt.datetime) -> tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime]:
    """(start of the UTC day, start of the month, next day, next month) of ``now``."""
    now = now.astimezone(dt.timezone.utc)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return day, month, day + dt.timedelta(days=1), next_month


def used_by(user_id: int, now: dt.datetime | None = None) -> Used:
    """What the user used this day and this month (one statement)."""
    return _used_and_running(user_id, now or timezone.now())[0]


def _used_and_running(user_id: int, now: dt.datetime, session_id: uuid.UUID | None = None) -> tuple[Used, int]:
    """``used_by``, and with ``session_id`` how many other chats of the user are running
    (the same statement)."""
    day, month, _, _ = periods(now)
    quote = connection.ops.quote_name
    table = quote(UsageRecord._meta.db_table)
    tokens = "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens"
    created = UsageRecord._meta.get_field("created_at")
    day_value = created.get_db_prep_value(day, connection)
    running, params = "0", []
    if session_id is not None:
        sessions = quote(ChatSession._meta.db_table)
        running = f"(SELECT COUNT(*) FROM {sessions} WHERE owner_id = %s AND state = %s AND id <> %s)"
        params = [user_id, ChatSession.State.RUNNING, ChatSession._meta.pk.get_db_prep_value(session_id, connection)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(CASE WHEN created_at >= %s THEN {tokens} ELSE 0 END), 0),"
            f" COALESCE(SUM({tokens}), 0),"
            " COALESCE(SUM(CASE WHEN created_at >= %s THEN cost_micros ELSE 0 END), 0),"
            f" COALESCE(SUM(cost_micros), 0), {running}"
            f" FROM {table} WHERE user_id = %s AND created_at >= %s",
            [day_value, day_value, *params, user_id, created.get_db_prep_value(month, connection)],
        )
        row = cursor.fetchone()
    return Used(*(int(v) for v in row[:4])), int(row[4])


def _reached(limits: Limits, used: Used, now: dt.datetime, share: float = 0.0) -> dt.datetime | None:
    """When the latest-resetting limit that ``used`` (plus ``share`` of each limit) reaches
    resets; None if none is reached."""
    _, _, next_day, next_month = periods(now)
    resets = [
        reset
        for limit, value, reset in (
            (limits.tokens_per_day, used.tokens_day, next_day),
            (limits.tokens_per_month, used.tokens_month, next_month),
            (limits.cost_per_day, used.cost_day, next_day),
            (limits.cost_per_month, used.cost_month, next_month),
        )
        if limit is not None and value + share * limit >= limit
    ]
    return max(resets) if resets else None


def _lock_user(user_id: int) -> None:
    """Admissions of one user queue here (SQLite: its transactions are serial already)."""
    if connection.features.has_select_for_update:
        table = connection.ops.quote_name(get_user_model()._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [user_id])


def admit(user_id: int, session_id: uuid.UUID, *, may_have_limits: bool = True, now: dt.datetime | None = None) -> Limits:
    """In the turn's transaction: may the user start a turn on ``session_id``? Returns the
    limits that apply (``NO_LIMITS``: the turn is not billed); raises ``QuotaExceeded`` or
    ``QuotaBusy``. ``may_have_limits`` False (read with the chat's lock) skips every query."""
    if not may_have_limits:
        return NO_LIMITS
    limits = limits_for(user_id)
    if not limits.any():
        return NO_LIMITS
    now = now or timezone.now()
    # The lock first, then the reads: a statement's snapshot is taken when it starts, so
    # sums read in the locking statement could miss the turn that held the lock before.
    _lock_user(user_id)
    used, running = _used_and_running(user_id, now, session_id)
    resets_at = _reached(limits, used, now)
    if resets_at is not None:
        raise QuotaExceeded(resets_at)
    if running:
        resets_at = _reached(limits, used, now, share=(running + 1) * settings.USAGE_QUOTA_TURN_SHARE)
        if resets_at is not None:
            raise QuotaBusy(resets_at)
    return limits


def allowance(user_id: int, limits: Limits) -> Any:
    """The loop's check before each model call after a run's first (``chat.agent.loop``):
    an ``error`` event once the user reached a limit. None if no limit applies."""
    if not limits.any():
        return None

    async def check() -> Event | None:
        now = timezone.now()
        used = await db_async(used_by)(user_id, now)
        resets_at = _reached(limits, used, now)
        if resets_at is None:
            return None
        error = QuotaExceeded(resets_at)
        return {**events.error(error.code, error.message, retryable=False), "resets_at": resets_at.isoformat()}

    return check
