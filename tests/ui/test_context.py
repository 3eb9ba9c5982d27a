"""Long chats in the browser: the context meter, the Compact button and `/compact`, and
the divider that opens to the summary (issue 14). Headless Chromium against daphne and
the offline model, with a small context window so that a few long replies fill it."""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from tests.live import DaphneServer
from tests.ui.conftest import SERVER_ENV
from tests.ui.pages import composer, expect, send, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]

WINDOW = 12_000


@pytest.fixture(scope="module")
def server(chromium_path: str, django_db_setup: Any) -> Iterator[DaphneServer]:
    with DaphneServer(env={**SERVER_ENV, "OFFLINE_MODEL_WORD_DELAY": "0", "CHAT_CONTEXT_TOKENS": str(WINDOW)}) as live:
        yield live


def meter_value(page) -> int:
    return int(page.get_by_role("meter", name="Context used").get_attribute("aria-valuenow"))


def test_the_meter_fills_compact_summarises_and_the_divider_opens_to_the_summary(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello there")
    wait_until_idle(page)
    meter = page.get_by_role("meter", name="Context used")
    expect(meter).to_be_visible()
    expect(meter).to_have_attribute("aria-valuemax", str(WINDOW))
    expect(meter).to_have_attribute("aria-valuetext", re.compile(r"of 12,000 tokens; earlier messages are summarised at 9,600"))
    small = meter_value(page)

    send(page, "tell me a long story")
    wait_until_idle(page)
    expect(meter).not_to_have_attribute("aria-valuenow", str(small))
    long = meter_value(page)
    assert long > small + 3_000, (small, long)
    browser_page.shoot("context-meter", widths=(375, 1280))

    send(page, "thanks")
    wait_until_idle(page)
    page.get_by_role("button", name="Compact").click()
    divider = page.get_by_role("group", name="Earlier messages summarised")
    expect(divider).to_be_visible()
    wait_until_idle(page)
    compacted = meter_value(page)
    assert compacted < long, (long, compacted)
    opener = divider.get_by_text("Earlier messages summarised", exact=True)
    expect(opener).to_have_attribute("aria-expanded", "false")
    opener.click()
    expect(opener).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_text("The user wrote: “hello there”")).to_be_visible()
    # It stands before the newest turn, whose messages the model still sees whole.
    after = page.locator("#messages li.summary-divider + li")
    expect(after).to_contain_text("thanks")
    browser_page.shoot("context-summary", widths=(375, 1280))

    # Typed in the composer: compacts again, now through "thanks" too.
    send(page, "one more question")
    wait_until_idle(page)
    composer(page).fill("/compact")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.summary-divider + li")).to_contain_text("one more question")
    expect(composer(page)).to_have_value("")
    wait_until_idle(page)
    # Nothing left before the newest turn: said so, and nothing changes.
    composer(page).fill("/compact")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("nothing before the newest turn")
    assert page.locator("#messages li.summary-divider").count() == 1
