"""The admin's usage pages: the report per user and model by day (statements constant in
its rows), its CSV export, the ledger list, and quota overrides."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import UsageLimit, UsageRecord

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2026, 11, 3, 10, tzinfo=dt.timezone.utc)
REPORT = "admin:chat_usagerecord_report"


def spend(user, model="claude-sonnet-4-5", *, day=DAY, tokens=100, cost_micros=2000):
    UsageRecord.objects.create(
        key=f"test:{uuid.uuid4()}", user=user, kind="reply", model=model, input_tokens=tokens, output_tokens=7,
        tool_calls=1, cost_micros=cost_micros, created_at=day,
    )


def get_report(admin_client, **params):
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(reverse(REPORT), {"start": "2026-11-01", "end": "2026-11-30", **params})
    assert response.status_code == 200
    return response, len(captured.captured_queries)


def test_the_report_sums_per_day_user_and_model(admin_client, owner, stranger):
    spend(owner)
    spend(owner)
    spend(owner, "claude-haiku-4-5")
    spend(stranger, day=DAY + dt.timedelta(days=1))
    spend(stranger, day=dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.timezone.utc))  # outside the range

    response, _ = get_report(admin_client)
    rows = [(r["day"], r["user__username"], r["model"], r["calls"], r["tokens"]) for r in response.context["rows"]]
    assert rows == [
        (dt.date(2026, 11, 3), "owner", "claude-haiku-4-5", 1, 107),
        (dt.date(2026, 11, 3), "owner", "claude-sonnet-4-5", 2, 214),
        (dt.date(2026, 11, 4), "stranger", "claude-sonnet-4-5", 1, 107),
    ]
    assert response.context["totals"] == {"calls": 4, "tokens": 428, "tool_calls": 4, "cost_usd": 0.008}
    assert b"Export CSV" in response.content


def test_the_report_runs_the_same_statements_for_ten_rows_or_three_hundred(admin_client, django_user_model):
    users = [django_user_model.objects.create_user(f"user{i}", password="x") for i in range(10)]
    for user in users:
        spend(user)
    _, few = get_report(admin_client)
    for day in range(1, 11):
        for user in users:
            for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"):
                spend(user, model, day=DAY + dt.timedelta(days=day))
    response, many = get_report(admin_client)
    assert len(response.context["rows"]) == 310
    assert few == many


def test_the_csv_export_has_a_header_and_one_line_per_row(admin_client, owner, django_user_model):
    spend(owner)
    sneaky = django_user_model.objects.create_user("=cmd()", password="x")
    spend(sneaky, "claude-haiku-4-5")
    response = admin_client.get(reverse(REPORT), {"start": "2026-11-01", "end": "2026-11-30", "format": "csv"})

    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="usage-2026-11-01-2026-11-30.csv"' in response["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0][:4] == ["day", "user_id", "username", "model"]
    assert lines[1][:4] == ["2026-11-03", str(owner.pk), "owner", "claude-sonnet-4-5"]
    assert lines[1][-1] == "0.002"
    assert lines[2][2:5] == ["'=cmd()", "claude-haiku-4-5", "1"]  # a formula stays text
    assert len(lines) == 3


def test_a_bad_range_shows_the_form_error_and_no_rows(admin_client, owner):
    spend(owner)
    response = admin_client.get(reverse(REPORT), {"start": "2026-11-30", "end": "2026-11-01"})
    assert response.status_code == 200 and response.context["rows"] == []
    assert b"The start must not be after the end." in response.content


def test_the_report_is_for_staff_only(client, owner):
    client.force_login(owner)
    response = client.get(reverse(REPORT))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_ledger_list_is_read_only_and_links_the_report(admin_client, owner):
    spend(owner)
    response = admin_client.get(reverse("admin:chat_usagerecord_changelist"))
    assert response.status_code == 200 and reverse(REPORT).encode() in response.content
    record = UsageRecord.objects.get()
    assert admin_client.post(reverse("admin:chat_usagerecord_delete", args=[record.pk]), {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.count() == 1


def test_a_quota_override_names_a_user_or_a_group_not_both(admin_client, owner):
    group = Group.objects.create(name="team")
    url = reverse("admin:chat_usagelimit_add")
    both = admin_client.post(url, {"user": owner.pk, "group": group.pk, "tokens_per_day": 10})
    assert both.status_code == 200 and b"Choose a user or a group" in both.content
    assert not UsageLimit.objects.exists()
    made = admin_client.post(url, {"group": group.pk, "tokens_per_day": 10, "cost_per_month": "3.50"})
    assert made.status_code == 302
    assert UsageLimit.objects.get().cost_per_month == pytest.approx(3.5)
