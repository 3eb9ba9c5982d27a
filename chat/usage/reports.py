"""Reads of the usage ledger: a user's summary (the API, the UI's menu) and the admin's
report. Each is a fixed number of statements whatever the number of rows: the sums are
made by the database, grouped by UTC day, model and (for the report) user."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat.models import UsageRecord
from chat.usage import prices, quotas

_SUMS = {
    "calls": Count("id"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cache_read_tokens": Sum("cache_read_tokens"),
    "cache_write_tokens": Sum("cache_write_tokens"),
    "tool_calls": Sum("tool_calls"),
    "cost_micros": Sum("cost_micros"),
}
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _in_days(start: dt.date, end: dt.date) -> Q:
    """Rows from the start of ``start`` to the end of ``end`` (UTC days)."""
    low = dt.datetime.combine(start, dt.time.min, tzinfo=dt.timezone.utc)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
    return Q(created_at__gte=low, created_at__lt=high)


def _row(values: dict[str, Any]) -> dict[str, Any]:
    row = {key: value for key, value in values.items() if key != "cost_micros"}
    for key in (*TOKEN_FIELDS, "tool_calls", "calls"):
        row[key] = int(row.get(key) or 0)
    row["tokens"] = sum(row[key] for key in TOKEN_FIELDS)
    row["cost_usd"] = prices.dollars(int(values.get("cost_micros") or 0))
    return row


def days(start: dt.date, end: dt.date, *, user_id: int | None = None) -> QuerySet:
    """Sums per UTC day and model (and user, for every user's report): one statement."""
    rows = UsageRecord.objects.filter(_in_days(start, end))
    group = ["day", "model"]
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    else:
        group = ["day", "user_id", "user__username", "model"]
    return rows.annotate(day=TruncDate("created_at", tzinfo=dt.timezone.utc)).values(*group).annotate(**_SUMS).order_by(*group)


def report(start: dt.date, end: dt.date, *, user_id: int | None = None) -> list[dict[str, Any]]:
    return [_row(values) for values in days(start, end, user_id=user_id)]


def summary(user_id: int, start: dt.date, end: dt.date, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A user's usage today and this month against their limits, and per day and model
    from ``start`` to ``end``: three statements."""
    now = now or timezone.now()
    used = quotas.used_by(user_id, now)
    limits = quotas.limits_for(user_id)
    _, _, next_day, next_month = quotas.periods(now)
    return {
        "today": {"tokens": used.tokens_day, "cost_usd": prices.dollars(used.cost_day), "resets_at": next_day},
        "month": {"tokens": used.tokens_month, "cost_usd": prices.dollars(used.cost_month), "resets_at": next_month},
        "limits": limits.as_dict(),
        "start": start,
        "end": end,
        "days": report(start, end, user_id=user_id),
    }
