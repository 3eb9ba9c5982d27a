"""The usage menu: this month and today against the user's limits, by model; and a reply's
cost on hover. Headless Chromium against daphne and the offline model."""

from __future__ import annotations

import re
import uuid

import pytest
from django.utils import timezone

from chat.models import UsageLimit, UsageRecord
from tests.ui.pages import expect, send, turns, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]


def test_the_usage_menu_shows_this_month_and_today_against_the_limits(browser_page, owner):
    UsageRecord.objects.create(
        key=f"seed:{uuid.uuid4()}", user=owner, kind="reply", model="claude-sonnet-4-5", input_tokens=120_000,
        output_tokens=3_000, cost_micros=405_000, created_at=timezone.now(),
    )
    UsageLimit.objects.create(user=owner, tokens_per_month=1_000_000, cost_per_day="5.00")
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello there")
    wait_until_idle(page)

    usage = page.get_by_role("button", name="Usage")
    expect(usage).to_have_attribute("aria-expanded", "false")
    usage.click()
    panel = page.get_by_role("region", name="Your usage")
    expect(panel).to_be_visible()
    month = browser_page.api("usage/")["month"]
    expect(panel).to_contain_text(f"This month{month['tokens']:,} tokens · $0.41")
    expect(panel).to_contain_text("limit 1,000,000 tokens")
    expect(panel).to_contain_text("Today")
    expect(panel).to_contain_text("limit $5.00")
    by_model = panel.get_by_role("list", name="This month by model")
    expect(by_model.get_by_role("listitem")).to_have_count(2)  # Sonnet (seeded) and the offline model
    expect(by_model.get_by_role("listitem").first).to_contain_text("claude-sonnet-4-5 1 call · 123,000 tokens · $0.41")
    browser_page.shoot("usage-menu")

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(usage).to_be_focused()
    expect(usage).to_have_attribute("aria-expanded", "false")


def test_the_menu_follows_a_reply_that_ends_while_it_is_open(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    box = page.get_by_role("textbox", name="Message")
    box.fill("hello there")
    page.get_by_role("button", name="Usage").click()
    panel = page.get_by_role("region", name="Your usage")
    expect(panel).to_contain_text("No model calls this month yet.")
    box.focus()  # not a click: the panel stays open
    page.keyboard.press("Enter")
    wait_until_idle(page)
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("offline-demo 2 calls")  # the reply and the chat's title


def test_a_replys_usage_on_hover_says_what_it_cost(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello there")
    wait_until_idle(page)
    answer = turns(page).all()[-1]
    answer.hover()
    # The offline model is free; a priced model's replies say what they cost.
    expect(answer.locator(".message-usage")).to_have_attribute("title", re.compile(r"; output \d+ tokens; cost \$0\.00$"))


def test_a_message_over_quota_is_refused_with_when_it_resets_and_kept_in_the_box(browser_page, owner):
    UsageLimit.objects.create(user=owner, tokens_per_day=100)
    UsageRecord.objects.create(
        key=f"seed:{uuid.uuid4()}", user=owner, kind="reply", model="claude-sonnet-4-5", input_tokens=100,
        created_at=timezone.now(),
    )
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "one more please")

    notice = page.get_by_role("alert")
    expect(notice).to_contain_text("You have reached your usage limit. It resets at")
    expect(page.get_by_role("textbox", name="Message")).to_have_value("one more please")
    browser_page.shoot("quota-exceeded", widths=(375,))
