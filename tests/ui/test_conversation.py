"""The conversation as a reader sees it: turns, questions answered by typing, stopped
replies, the artifact panel's selector, and the conveniences on every message (copy,
time, token usage, jump to latest). Headless Chromium against daphne and the offline
model (docs/offline-model.md); screenshots in screenshots/.
"""

from __future__ import annotations

import re

import pytest

from tests.ui.pages import expect, last_reply, question_card, send, turns, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]


def test_an_answer_typed_while_a_question_is_open_answers_it_on_its_card_and_the_chat_goes_on(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Please choose a topic")
    question = question_card(page)
    expect(question.get_by_role("button", name="Rust")).to_be_enabled()

    send(page, "Go, actually")
    # The answer is shown on the question it answers, never as a bubble of its own.
    expect(question).to_contain_text("You replied: Go, actually")
    expect(page.locator("#messages")).to_contain_text("Thank you for your answer: Go, actually")
    for name in ("Python", "JavaScript", "Rust"):
        expect(question.get_by_role("button", name=name)).to_be_disabled()
    expect(page.locator("#messages .user-text").filter(has_text="Go, actually")).to_have_count(0)
    wait_until_idle(page)
    browser_page.shoot("typed-answer")

    # The chat goes on: Send works again and the next message is answered.
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    send(page, "calculate 2+2")
    expect(page.locator("#messages")).to_contain_text("The result of 2+2 is 4.")
    wait_until_idle(page)

    page.reload()  # the card shows the answer from the stored history
    expect(question_card(page)).to_contain_text("You replied: Go, actually")
    expect(page.locator("#messages .user-text")).to_have_text(["Please choose a topic", "calculate 2+2"])


def test_one_assistant_turn_is_one_block_with_its_tool_cards_inside(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "calculate 1 + 1")
    expect(page.locator("#messages")).to_contain_text("The result of 1 + 1 is 2.")
    wait_until_idle(page)

    for state in ("live", "reloaded"):
        expect(turns(page)).to_have_count(2), state
        question, answer = turns(page).all()
        expect(question).to_contain_text("calculate 1 + 1")
        # Text before the tool call, the call, and the text after it: one block, one author line.
        expect(answer).to_contain_text(re.compile(r"Let me calculate that\..*calculate.*1 \+ 1.*The result of 1 \+ 1 is 2\.", re.S))
        expect(answer.locator(".message-author")).to_have_text("Assistant")
        if state == "live":
            page.reload()
    browser_page.shoot("tool-turn")


def test_a_stopped_reply_says_the_same_before_and_after_a_reload(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, " ".join(f"item{n}" for n in range(40)))
    reply = last_reply(page)
    expect(reply).to_contain_text("item2")
    page.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-state", "unfinished")
    note = reply.locator(".message-note").inner_text()
    browser_page.shoot("stopped")

    page.reload()
    expect(last_reply(page)).to_have_attribute("data-state", "unfinished")
    expect(last_reply(page).locator(".message-note")).to_have_text(note)


def test_the_artifact_selector_shows_the_artifact_that_was_opened(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "write a note about otters")
    wait_until_idle(page)
    send(page, "write some code")
    wait_until_idle(page)
    cards = page.locator(".artifact-card")
    expect(cards).to_have_count(2)
    first, second = cards.all()
    panel = page.locator("#artifact-panel")
    selector = panel.get_by_label("Artifact", exact=True)

    first.get_by_role("button", name=re.compile("^Open")).click()
    expect(selector).to_have_value(first.get_attribute("data-artifact-id"))
    second.get_by_role("button", name=re.compile("^Open")).click()
    expect(panel.get_by_role("heading", level=2)).to_have_text(second.locator(".artifact-title").inner_text())
    expect(selector).to_have_value(second.get_attribute("data-artifact-id"))
    browser_page.shoot("artifact-selector")
    first.get_by_role("button", name=re.compile("^Open")).click()
    expect(selector).to_have_value(first.get_attribute("data-artifact-id"))
