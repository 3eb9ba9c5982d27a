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


def test_the_meter_follows_the_version_shown_on_every_page_of_the_chat(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello there")
    wait_until_idle(page)
    meter = page.get_by_role("meter", name="Context used")
    expect(meter).to_be_visible()
    small = meter_value(page)
    other = browser_page.new_page()
    other.goto(page.url)
    other_meter = other.get_by_role("meter", name="Context used")
    expect(other_meter).to_have_attribute("aria-valuenow", str(small))

    question = page.locator("#messages > li.turn.user").first
    question.hover()
    question.get_by_role("button", name="Edit").click()
    page.get_by_role("textbox", name="Edited message").fill("tell me a long story")
    page.get_by_role("button", name="Save").click()
    wait_until_idle(page)
    expect(meter).not_to_have_attribute("aria-valuenow", str(small))
    long = meter_value(page)
    assert long > small + 3_000, (small, long)
    expect(other_meter).to_have_attribute("aria-valuenow", str(long))

    # A switch starts no run: the path event alone says the next prompt changed, here and there.
    page.locator("#messages > li.turn.user").first.get_by_role("button", name="Previous version").click()
    for shown in (meter, other_meter):
        expect(shown).to_have_attribute("aria-valuenow", str(small))
    other.locator("#messages > li.turn.user").first.get_by_role("button", name="Next version").click()
    for shown in (meter, other_meter):
        expect(shown).to_have_attribute("aria-valuenow", str(long))


WATCH_COMPACT_BUTTON = """() => {
    const button = document.getElementById("compact-button");
    window.compactStates = [];
    const note = () => window.compactStates.push(`${button.textContent}${button.disabled ? " (disabled)" : ""}`);
    new MutationObserver(note).observe(button, {attributes: true, childList: true, characterData: true, subtree: true});
}"""


def context_reads(page) -> list[str]:
    reads: list[str] = []
    page.on("request", lambda request: "/context/" in request.url and reads.append(request.url))
    return reads


def test_a_compaction_shows_on_every_page_and_each_run_end_reads_the_context_once(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    for text in ("hello there", "tell me a long story", "thanks"):
        send(page, text)
        wait_until_idle(page)
    other = browser_page.new_page()
    other.goto(page.url)
    expect(other.get_by_role("meter", name="Context used")).to_be_visible()
    reads = {"page": context_reads(page), "other": context_reads(other)}
    for shown in (page, other):
        shown.evaluate(WATCH_COMPACT_BUTTON)

    page.get_by_role("button", name="Compact").click()
    for shown in (page, other):
        expect(shown.get_by_role("group", name="Earlier messages summarised")).to_be_visible()
        wait_until_idle(shown)
        expect(shown.get_by_role("button", name="Compact", exact=True)).to_be_enabled()
        # The button said so while it ran (on the other page: from the run's `compacting` event).
        states = shown.evaluate("window.compactStates")
        assert "Compacting… (disabled)" in states, states
        assert states[-1] == "Compact", states
    page.wait_for_timeout(500)  # time for a second read, were there one
    assert (len(reads["page"]), len(reads["other"])) == (1, 1), reads

    # A reply streamed in many deltas: one read, when it ends.
    send(page, "tell me a long story")
    for shown in (page, other):
        wait_until_idle(shown)
    page.wait_for_timeout(500)
    assert (len(reads["page"]), len(reads["other"])) == (2, 2), reads
