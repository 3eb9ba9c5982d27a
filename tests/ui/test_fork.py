"""Fork in the browser: "Fork from here" on a message starts a new chat holding the
conversation up to it and opens it (static/chat/fork.js). Headless Chromium against daphne
and the offline model (docs/offline-model.md), whose reply quotes what it was asked;
screenshots in screenshots/.
"""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import ChatSession, Message
from tests.ui.pages import chat_id_of, composer, expect, question_card, send, turns, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]

QUESTIONS = ["Tell me about apples", "Tell me about pears", "Tell me about plums"]
FORK_TIP = "Start a new chat from this message"


def reply_turn(page: Any, nth: int = 0) -> Any:
    return page.locator("#messages > li.turn.assistant").nth(nth)


def user_texts(page: Any) -> Any:
    return page.locator("#messages .user-text")


def sidebar_links(page: Any) -> Any:
    return page.get_by_role("navigation", name="Chats").locator(".chat-link")


def stored(sid: str) -> list[tuple[str, Any]]:
    return list(Message.objects.filter(session_id=sid).order_by("sequence").values_list("role", "content"))


def test_fork_from_the_middle_opens_a_new_chat_with_the_path_up_to_there(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    for question in QUESTIONS:
        send(page, question)
        wait_until_idle(page)
    source = chat_id_of(page)
    expect(page.locator("#chat-title")).to_have_text(QUESTIONS[0])  # the generated title
    before = stored(source)
    assert len(before) == 6

    middle = reply_turn(page, 1)  # the answer about pears
    middle.hover()
    fork = middle.get_by_role("button", name="Fork from here")
    expect(fork).to_have_attribute("title", FORK_TIP)
    expect(page.get_by_role("button", name="Fork from here")).to_have_count(6)  # every message has one
    browser_page.shoot("fork-button")
    fork.click()

    expect(page).not_to_have_url(f"{browser_page.server.url}/c/{source}/")
    forked = chat_id_of(page)
    assert forked != source
    expect(page.locator("#chat-title")).to_have_text(f"{QUESTIONS[0]} (fork)")
    expect(sidebar_links(page).first).to_have_text(f"{QUESTIONS[0]} (fork)")
    expect(sidebar_links(page).first).to_have_attribute("aria-current", "page")
    expect(sidebar_links(page)).to_have_count(2)
    # The copied path and nothing after the message.
    expect(turns(page)).to_have_count(4)
    expect(user_texts(page)).to_have_text(QUESTIONS[:2])
    expect(reply_turn(page, 1)).to_contain_text("pears")
    expect(page.locator("#messages")).not_to_contain_text("plums")
    expect(composer(page)).to_be_focused()
    assert stored(forked) == before[:4]
    assert ChatSession.objects.get(pk=forked).owner_id == owner.pk
    assert stored(source) == before  # the original is unchanged
    browser_page.shoot("fork-opened")

    send(page, "Tell me about cherries")
    wait_until_idle(page)
    expect(user_texts(page)).to_have_text([*QUESTIONS[:2], "Tell me about cherries"])
    assert [content for role, content in stored(forked) if role == "user"][-1] == "Tell me about cherries"
    assert stored(source) == before  # the new chat's message is not in the old one

    page.reload()  # the fork is a chat of its own, at its own address
    expect(user_texts(page)).to_have_text([*QUESTIONS[:2], "Tell me about cherries"])
    page.get_by_role("navigation", name="Chats").get_by_role("link", name=QUESTIONS[0], exact=True).click()
    expect(page).to_have_url(f"{browser_page.server.url}/c/{source}/")
    expect(user_texts(page)).to_have_text(QUESTIONS)
    expect(page.locator("#messages")).not_to_contain_text("cherries")


def test_fork_from_a_message_you_typed_and_not_while_a_reply_is_written(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello")
    wait_until_idle(page)
    source = chat_id_of(page)
    send(page, " ".join(f"item{n}" for n in range(60)))
    expect(reply_turn(page, 1)).to_contain_text("item2")
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "running")
    first = page.locator("#messages > li.turn.user").first
    expect(first.get_by_role("button", name="Fork from here")).to_be_disabled()
    expect(reply_turn(page, 0).get_by_role("button", name="Fork from here")).to_be_disabled()
    wait_until_idle(page)
    expect(reply_turn(page, 0).get_by_role("button", name="Fork from here")).to_be_enabled()

    first.hover()
    first.get_by_role("button", name="Fork from here").click()
    expect(page).not_to_have_url(f"{browser_page.server.url}/c/{source}/")
    expect(turns(page)).to_have_count(1)
    expect(user_texts(page)).to_have_text(["hello"])
    assert [role for role, _ in stored(chat_id_of(page))] == ["user"]
    send(page, "and then?")  # the chat goes on from the message typed: the model reads both as one
    wait_until_idle(page)
    expect(reply_turn(page)).to_contain_text("You said: “hello and then?”")
    expect(page.locator("#notices")).to_be_empty()


def test_on_a_phone_fork_is_shown_and_within_the_screen(browser_page, owner):
    page = browser_page.page
    page.set_viewport_size({"width": 375, "height": 812})
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Tell me about kiwis")
    wait_until_idle(page)
    page.mouse.move(0, 0)
    for turn in (page.locator("#messages > li.turn.user").first, reply_turn(page)):
        button = turn.get_by_role("button", name="Fork from here")
        expect(button).to_be_visible()
        expect(turn.locator(".message-actions")).to_have_css("opacity", "1")
        assert button.evaluate("(b) => { const r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth; }")
    browser_page.shoot("fork-phone", widths=(375,))
    reply_turn(page).get_by_role("button", name="Fork from here").click()
    expect(page.locator("#chat-title")).to_have_text("Tell me about kiwis (fork)")
    expect(turns(page)).to_have_count(2)


def test_a_fork_of_the_reply_that_asked_an_open_question_asks_it_too(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Please choose a topic")
    expect(question_card(page).get_by_role("button", name="Rust")).to_be_enabled()
    wait_until_idle(page)
    source = chat_id_of(page)

    asking = reply_turn(page)
    asking.hover()
    asking.get_by_role("button", name="Fork from here").click()
    expect(page).not_to_have_url(f"{browser_page.server.url}/c/{source}/")
    forked = chat_id_of(page)
    # The question waits in the fork too, its options live: answered there, the turn goes on there.
    question = question_card(page)
    expect(question.get_by_role("button", name="Rust")).to_be_enabled()
    browser_page.shoot("fork-question")
    question.get_by_role("button", name="Rust").click()
    expect(page.locator("#messages")).to_contain_text("You chose Rust. Good choice!")
    wait_until_idle(page)
    assert ChatSession.objects.get(pk=forked).state == "idle"
    assert ChatSession.objects.get(pk=source).state == "awaiting_input"  # the original still asks
