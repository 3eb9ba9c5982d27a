"""The conversation as a reader sees it: turns, questions answered by typing, stopped
replies, the artifact panel's selector, and the conveniences on every message (copy,
time, token usage, jump to latest). Headless Chromium against daphne and the offline
model (docs/offline-model.md); screenshots in screenshots/.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from tests.factories import seed_history, seed_messages
from tests.ui.conftest import NARROW, WIDE
from tests.ui.pages import box, chat_id_of, expect, last_reply, question_card, send, turns, wait_until_idle

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


def test_every_message_and_every_code_block_has_a_copy_button(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    reply = "Here it is:\n\n```python\nprint('hi')\n```\n\nRun it with Python 3."
    chat = seed_messages(owner, [{"role": "user", "content": "show me python"}, {"role": "assistant", "content": reply}])
    browser_page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=browser_page.server.url)
    page.goto(f"/c/{chat.pk}/")
    clipboard = lambda: page.evaluate("() => navigator.clipboard.readText()")  # noqa: E731
    expect(turns(page)).to_have_count(2)
    question, answer = turns(page).all()

    question.get_by_role("button", name="Copy message").click()
    expect(question.get_by_role("button", name="Copied")).to_be_visible()
    assert clipboard() == "show me python"

    answer.get_by_role("button", name="Copy code").click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    assert clipboard().strip() == "print('hi')"

    answer.get_by_role("button", name="Copy reply").click()
    expect(answer.get_by_role("button", name="Copied")).to_have_count(2)
    assert clipboard() == reply
    browser_page.shoot("copied")


def test_hovering_a_turn_shows_its_time_and_a_reply_its_token_usage(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello there")
    wait_until_idle(page)

    for state in ("live", "reloaded"):
        stored = browser_page.api(f"chats/{chat_id_of(page)}/messages/")["results"]
        used = [m["usage"] for m in stored if m["role"] == "assistant"]
        expect(turns(page)).to_have_count(2)
        question, answer = turns(page).all()
        page.mouse.move(0, 0)
        for turn in (question, answer):
            expect(turn.locator(".message-actions")).to_have_css("opacity", "0")
        question.hover()
        time = question.locator("time")
        expect(question.locator(".message-actions")).to_have_css("opacity", "1")
        expect(time).to_have_text(re.compile(r"^\d{1,2}:\d{2}"))
        # The time it was stored (live, until the stored time is read: when it arrived).
        shown_at = datetime.fromisoformat(time.get_attribute("datetime"))
        assert abs(shown_at - datetime.fromisoformat(stored[0]["created_at"])) < timedelta(seconds=5)
        answer.hover()
        expect(answer.locator(".message-actions")).to_have_css("opacity", "1")
        tokens_in = sum(u["input_tokens"] for u in used)
        tokens_out = sum(u["output_tokens"] for u in used)
        expect(answer.locator(".message-usage")).to_have_text(f"{tokens_in:,} tokens in · {tokens_out:,} out")
        if state == "live":
            page.reload()


def test_jump_to_latest_appears_when_scrolled_up_and_takes_the_reader_down(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    chat = seed_history(owner, 30, content=lambda i: f"message {i}: " + "lorem ipsum " * 40)
    page.goto(f"/c/{chat.pk}/")
    conversation = page.locator("#conversation")
    jump = page.get_by_role("button", name="Jump to latest")
    expect(page.locator("#messages")).to_contain_text("message 30")
    expect(jump).to_be_hidden()
    at_bottom = "(el) => el.scrollHeight - el.scrollTop - el.clientHeight < 2"

    send(page, " ".join(f"word{n}" for n in range(60)))
    expect(last_reply(page)).to_contain_text("word2")
    conversation.evaluate("(el) => el.scrollTo(0, 0)")  # reading back while the reply is written
    expect(jump).to_be_visible()
    browser_page.shoot("jump-to-latest")
    wait_until_idle(page)
    assert conversation.evaluate("(el) => el.scrollTop") == 0  # the reply did not pull the reader down

    jump.click()
    expect(jump).to_be_hidden()
    assert conversation.evaluate(at_bottom)
    expect(last_reply(page)).to_be_in_viewport()


def test_chart_labels_keep_their_size_on_a_phone(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Show me a chart")
    chart = page.locator("figure.chart-card svg")
    expect(chart.locator("rect.bar")).to_have_count(4)
    # 12 px text is at least 12 px tall on screen, however wide the chart is drawn. (Looked
    # up afresh each time: the chart is drawn again when its width changes.)
    readable = """() => {
        const label = [...document.querySelectorAll('figure.chart-card svg text.tick')].find((t) => t.textContent === 'January');
        return Boolean(label) && label.getBoundingClientRect().height >= 12;
    }"""
    for width in (NARROW, WIDE):
        page.set_viewport_size({"width": width, "height": 800})
        page.wait_for_function(readable, polling="raf")
        assert box(chart)["width"] <= width
    wait_until_idle(page)
    browser_page.shoot("chart-phone", widths=(NARROW,))
