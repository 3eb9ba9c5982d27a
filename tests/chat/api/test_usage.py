"""GET /api/v1/usage/: your own usage; staff may read anyone's; bad ranges are 400."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from chat.models import UsageLimit, UsageRecord

pytestmark = pytest.mark.django_db


def spend(user, model="claude-sonnet-4-5", *, tokens=100, cost_micros=1500, at=None):
    UsageRecord.objects.create(
        key=f"test:{uuid.uuid4()}", user=user, kind="reply", model=model, input_tokens=tokens,
        output_tokens=10, cache_read_tokens=5, tool_calls=1, cost_micros=cost_micros, created_at=at or timezone.now(),
    )


@pytest.fixture
def client(owner):
    client = Client()
    client.force_login(owner)
    return client


def test_you_see_your_usage_today_this_month_your_limits_and_per_day_and_model(client, owner, stranger):
    today = timezone.now().replace(hour=12)
    spend(owner, at=today)
    spend(owner, at=today)
    spend(owner, "claude-haiku-4-5", at=today)
    spend(stranger, at=today)  # not yours
    UsageLimit.objects.create(user=owner, tokens_per_month=50_000, cost_per_day="2.50")

    body = client.get("/api/v1/usage/").json()

    assert body["user"] == {"id": owner.pk, "username": "owner"}
    assert body["today"]["tokens"] == 3 * 115 and body["today"]["cost_usd"] == 0.0045
    assert body["month"]["tokens"] >= 3 * 115
    assert body["limits"] == {"tokens_per_day": None, "tokens_per_month": 50_000, "cost_per_day_usd": 2.5, "cost_per_month_usd": None}
    assert body["start"] == today.date().replace(day=1).isoformat() and body["end"] == today.date().isoformat()
    sonnet = next(d for d in body["days"] if d["model"] == "claude-sonnet-4-5")
    assert sonnet == {
        "day": today.date().isoformat(), "model": "claude-sonnet-4-5", "calls": 2, "input_tokens": 200,
        "output_tokens": 20, "cache_read_tokens": 10, "cache_write_tokens": 0, "tokens": 230, "tool_calls": 2,
        "cost_usd": 0.003,
    }
    assert [d["model"] for d in body["days"]] == ["claude-haiku-4-5", "claude-sonnet-4-5"]


def test_a_range_reads_those_days_only(client, owner):
    spend(owner, at=dt.datetime(2026, 1, 10, 9, tzinfo=dt.timezone.utc))
    spend(owner, at=dt.datetime(2026, 1, 11, 23, 59, tzinfo=dt.timezone.utc))
    spend(owner, at=dt.datetime(2026, 1, 12, 0, 0, tzinfo=dt.timezone.utc))
    body = client.get("/api/v1/usage/?start=2026-01-10&end=2026-01-11").json()
    assert [d["day"] for d in body["days"]] == ["2026-01-10", "2026-01-11"]


@pytest.mark.parametrize(
    "query",
    ["start=2026-02-01&end=2026-01-01", "start=2024-01-01&end=2026-01-01", "start=yesterday", "start=", "user=0", "user=abc"],
)
def test_a_bad_range_or_user_is_a_400_saying_why(client, query):
    response = client.get(f"/api/v1/usage/?{query}")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_someone_elses_usage_is_a_404_unless_you_are_staff(client, owner, stranger):
    spend(stranger)
    assert client.get(f"/api/v1/usage/?user={stranger.pk}").status_code == 404
    assert client.get(f"/api/v1/usage/?user={owner.pk}").status_code == 200

    owner.is_staff = True
    owner.save()
    body = client.get(f"/api/v1/usage/?user={stranger.pk}").json()
    assert body["user"]["username"] == "stranger" and body["days"][0]["calls"] == 1
    assert client.get("/api/v1/usage/?user=99999").status_code == 404


def test_anonymous_is_a_401(db):
    assert Client().get("/api/v1/usage/").status_code in (401, 403)


def test_the_summary_reads_the_same_statements_however_many_rows(client, owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for _ in range(3):
        for model in ("a", "b", "c", "d"):
            spend(owner, model)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/usage/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] == counts[2], counts
