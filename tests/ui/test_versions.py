"""Versions in the browser: Edit on a message you typed, Regenerate on a reply, Previous /
Next version around "2 / 3", ↑ in the empty composer, and path events reaching every page
of a chat. Headless Chromium against daphne and the offline model (docs/offline-model.md),
whose reply quotes what it was asked; screenshots in screenshots/.
"""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Message
from tests.ui.pages import box, chat_id_of, composer, expect, send, turns, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]


def user_turn(page: Any, nth: int = 0) -> Any:
    return page.locator("#messages > li.turn.user").nth(nth)


def reply_turn(page: Any, nth: int = 0) -> Any:
    return page.locator("#messages > li.turn.assistant").nth(nth)


def editor(page: Any) -> Any:
    return page.get_by_role("textbox", name="Edited message")


def edit(page: Any, turn: Any, text: str) -> None:
    turn.hover()
    turn.get_by_role("button", name="Edit").click()
    editor(page).fill(text)
    page.get_by_role("button", name="Save").click()


def shows(page: Any, question: str, answer_word: str) -> None:
    """The conversation shown is `question` and the offline model's reply to it."""
    expect(turns(page)).to_have_count(2)
    expect(user_turn(page).locator(".user-text")).to_have_text(question)
    expect(reply_turn(page)).to_contain_text(answer_word)


def test_an_edit_is_answered_and_previous_and_next_show_each_version_also_after_a_reload(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Tell me about apples")
    wait_until_idle(page)
    shows(page, "Tell me about apples", "apples")
    expect(page.get_by_role("button", name="Previous version")).to_have_count(0)  # one version: no pager

    edit(page, user_turn(page), "Tell me about pears")
    shows(page, "Tell me about pears", "pears")
    wait_until_idle(page)
    question = user_turn(page)
    expect(question).to_contain_text("2 / 2")
    expect(question.get_by_role("button", name="Next version")).to_be_disabled()
    expect(question.get_by_role("button", name="Previous version")).to_be_enabled()
    expect(reply_turn(page)).not_to_contain_text("apples")
    page.mouse.move(0, 0)
    expect(question.locator(".message-actions")).to_have_css("opacity", "1")  # versions are seen without a hover
    expect(composer(page)).to_be_focused()  # the editor went; the focus did not go to the page
    question.hover()
    browser_page.shoot("version-edited")

    question.get_by_role("button", name="Previous version").click()
    shows(page, "Tell me about apples", "apples")
    expect(user_turn(page)).to_contain_text("1 / 2")
    expect(user_turn(page).get_by_role("button", name="Previous version")).to_be_disabled()
    # The focus stays on the pager, which moved to the other version: the next press goes on.
    expect(user_turn(page).get_by_role("button", name="Next version")).to_be_focused()

    page.keyboard.press("Enter")
    shows(page, "Tell me about pears", "pears")
    expect(user_turn(page)).to_contain_text("2 / 2")

    page.reload()  # the server keeps the version shown
    shows(page, "Tell me about pears", "pears")
    expect(user_turn(page)).to_contain_text("2 / 2")
    user_turn(page).get_by_role("button", name="Previous version").click()
    shows(page, "Tell me about apples", "apples")
    page.reload()
    shows(page, "Tell me about apples", "apples")
    expect(user_turn(page)).to_contain_text("1 / 2")

    sid = chat_id_of(page)
    assert Message.objects.filter(session_id=sid).count() == 4  # both versions, each with its reply


def test_a_regenerated_reply_is_a_second_version_of_it(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Tell me about plums")
    wait_until_idle(page)
    answer = reply_turn(page)
    answer.hover()
    answer.get_by_role("button", name="Regenerate").click()
    expect(reply_turn(page)).to_contain_text("2 / 2")
    wait_until_idle(page)
    expect(reply_turn(page)).to_contain_text("plums")
    expect(page.locator("#notices")).to_be_empty()
    # The question is the same message; only the reply has versions.
    expect(user_turn(page).get_by_role("button", name="Previous version")).to_have_count(0)
    reply_turn(page).hover()
    browser_page.shoot("version-regenerated")

    page.reload()
    expect(reply_turn(page)).to_contain_text("2 / 2")
    reply_turn(page).get_by_role("button", name="Previous version").click()
    expect(reply_turn(page)).to_contain_text("1 / 2")
    expect(reply_turn(page)).to_contain_text("plums")
    sid = chat_id_of(page)
    assert Message.objects.filter(session_id=sid, role="assistant").count() == 2


def test_arrow_up_in_the_empty_composer_edits_the_last_message_and_cancel_changes_nothing(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "first words")
    wait_until_idle(page)
    send(page, "second words")
    wait_until_idle(page)
    sid = chat_id_of(page)
    stored = Message.objects.filter(session_id=sid).count()

    box = composer(page)
    box.fill("a draft")
    box.press("ArrowUp")
    expect(editor(page)).to_have_count(0)  # only an empty box gives ↑ to editing

    box.fill("")
    box.press("ArrowUp")
    expect(editor(page)).to_be_focused()
    expect(editor(page)).to_have_value("second words")
    expect(user_turn(page, 1).locator(".message-actions")).to_be_hidden()
    expect(page.get_by_role("button", name="Save")).to_be_disabled()  # nothing changed yet
    editor(page).fill("changed my mind")
    browser_page.shoot("version-editor")
    page.keyboard.press("Escape")
    expect(editor(page)).to_have_count(0)
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "idle")
    expect(user_turn(page, 1).locator(".user-text")).to_have_text("second words")
    expect(user_turn(page, 1).get_by_role("button", name="Edit")).to_be_focused()

    user_turn(page, 0).get_by_role("button", name="Edit").click()
    editor(page).fill("something else")
    page.get_by_role("button", name="Cancel").click()
    expect(editor(page)).to_have_count(0)
    expect(page.locator("#messages .user-text")).to_have_text(["first words", "second words"])
    expect(page.locator(".version-pager")).to_have_count(0)
    assert Message.objects.filter(session_id=sid).count() == stored


def test_while_a_reply_is_written_edit_and_regenerate_wait_quietly(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello")
    wait_until_idle(page)
    send(page, " ".join(f"item{n}" for n in range(60)))
    expect(reply_turn(page, 1)).to_contain_text("item2")
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "running")
    expect(user_turn(page, 0).get_by_role("button", name="Edit")).to_be_disabled()
    expect(reply_turn(page, 0).get_by_role("button", name="Regenerate")).to_be_disabled()
    composer(page).press("ArrowUp")
    expect(editor(page)).to_have_count(0)
    expect(page.locator("#notices")).to_be_empty()  # no error: the buttons just wait

    wait_until_idle(page)
    expect(user_turn(page, 0).get_by_role("button", name="Edit")).to_be_enabled()
    expect(reply_turn(page, 1).get_by_role("button", name="Regenerate")).to_be_enabled()


def test_a_refusal_that_only_means_not_now_is_said_quietly(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "hello")
    wait_until_idle(page)
    send(page, "Please choose a topic")
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "awaiting_input")
    first_reply = browser_page.api(f"chats/{chat_id_of(page)}/messages/")["results"][1]["id"]
    # Sent past the disabled pager (as a page that missed an event could): the server says
    # awaiting_input (busy is said the same way, after a few quiet retries).
    assert page.evaluate("(id) => window.agentsite.chat.switchTo(id)", first_reply)
    expect(page.locator("#composer-status")).to_contain_text("Answer the open question first")
    expect(page.locator("#notices")).to_be_empty()
    expect(page.locator("#messages .user-text")).to_have_text(["hello", "Please choose a topic"])


def test_an_edit_while_a_question_waits_leaves_the_question_behind(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Please choose a topic")
    card = page.get_by_role("group", name="Which topic should we explore next?")
    expect(card.get_by_role("button", name="Rust")).to_be_enabled()
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "awaiting_input")

    edit(page, user_turn(page), "Tell me about cherries")
    shows(page, "Tell me about cherries", "cherries")
    expect(card).to_have_count(0)
    wait_until_idle(page)
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "idle")
    send(page, "and more")  # the chat goes on from the new version
    expect(page.locator("#messages")).to_contain_text("You said: “and more”")
    wait_until_idle(page)
    expect(page.locator("#messages .user-text")).to_have_text(["Tell me about cherries", "and more"])


def test_edit_is_offered_on_messages_you_typed_not_on_the_answer_to_a_question(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Please choose a topic")
    page.get_by_role("group", name="Which topic should we explore next?").get_by_role("button", name="Rust").click()
    expect(page.locator("#messages")).to_contain_text("You chose Rust")
    wait_until_idle(page)
    # The answer is stored as a tool result of the reply's turn: the one Edit is the question's.
    expect(page.get_by_role("button", name="Edit")).to_have_count(1)
    expect(user_turn(page).get_by_role("button", name="Edit")).to_have_count(1)
    expect(page.get_by_role("button", name="Regenerate")).to_have_count(1)
    page.reload()
    expect(page.get_by_role("button", name="Edit")).to_have_count(1)
    expect(page.get_by_role("button", name="Regenerate")).to_have_count(1)


def test_an_edit_in_one_page_shows_in_another_page_of_the_chat(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Tell me about figs")
    wait_until_idle(page)
    other = browser_page.new_page()
    other.goto(page.url)
    shows(other, "Tell me about figs", "figs")

    edit(page, user_turn(page), "Tell me about dates")
    shows(other, "Tell me about dates", "dates")
    expect(user_turn(other)).to_contain_text("2 / 2")
    wait_until_idle(other)
    expect(reply_turn(other)).not_to_contain_text("figs")

    user_turn(other).get_by_role("button", name="Previous version").click()
    shows(page, "Tell me about figs", "figs")
    expect(user_turn(page)).to_contain_text("1 / 2")


def test_on_a_phone_the_version_buttons_are_shown_and_reachable(browser_page, owner):
    page = browser_page.page
    page.set_viewport_size({"width": 375, "height": 812})
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Tell me about kiwis")
    wait_until_idle(page)
    question, answer = user_turn(page), reply_turn(page)
    page.mouse.move(0, 0)
    # No hover on a phone: the actions are there to be seen without it.
    for turn in (question, answer):
        expect(turn.locator(".message-actions")).to_have_css("opacity", "1")
    regenerate = answer.get_by_role("button", name="Regenerate")
    regenerate.focus()
    expect(regenerate).to_be_focused()
    assert regenerate.evaluate("(b) => { const r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth; }")

    edit(page, question, "Tell me about limes")
    expect(user_turn(page)).to_contain_text("2 / 2")
    wait_until_idle(page)
    previous = user_turn(page).get_by_role("button", name="Previous version")
    assert previous.evaluate("(b) => { const r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth; }")
    browser_page.shoot("version-phone", widths=(375,))
    previous.click()
    expect(user_turn(page).locator(".user-text")).to_have_text("Tell me about kiwis")
    expect(user_turn(page)).to_contain_text("1 / 2")


def api_post(page: Any, path: str) -> dict[str, Any]:
    """POST to the API from the page, as the page would (its CSRF token); status and JSON."""
    return page.evaluate(
        """async (path) => {
            const config = JSON.parse(document.getElementById("chat-config").textContent);
            const response = await fetch(config.apiRoot + path, {method: "POST", headers: {"X-CSRFToken": config.csrfToken}});
            return {status: response.status, body: await response.json()};
        }""",
        path,
    )


def test_a_later_reply_of_a_turn_regenerated_through_the_api_shows_its_pager(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "calculate 2+2")
    wait_until_idle(page)
    sid = chat_id_of(page)
    stored = browser_page.api(f"chats/{sid}/messages/")["results"]
    # A tool call, its result, then the reply: one assistant turn of three messages.
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    later = stored[-1]
    answered = api_post(page, f"chats/{sid}/messages/{later['id']}/regenerate/")
    assert answered["status"] == 202, answered
    wait_until_idle(page)
    expect(turns(page)).to_have_count(2)
    after = browser_page.api(f"chats/{sid}/messages/")["results"]
    assert after[-1]["versions"] == {"index": 2, "count": 2} and after[1]["versions"] is None

    page.reload()
    answer = reply_turn(page)
    expect(answer).to_contain_text("4")
    pager = answer.get_by_role("group", name="Version 2 of 2")
    expect(pager).to_have_count(1)
    expect(pager).to_be_visible()  # without a hover
    # Under the reply it belongs to, after the tool call; the turn's own row has no pager.
    expect(answer.locator(".message-actions .version-pager")).to_have_count(0)
    last = answer.locator(":scope > .message.assistant").last
    assert box(pager)["y"] > box(last)["y"]
    assert last.evaluate("(m) => m.nextElementSibling.classList.contains('message-versions')")
    answer.hover()
    browser_page.shoot("version-later-reply")

    pager.get_by_role("button", name="Previous version").click()
    expect(answer.get_by_role("group", name="Version 1 of 2")).to_be_visible()
    expect(answer.get_by_role("button", name="Next version")).to_be_focused()  # the keyboard stays on the pager
    wait_until_idle(page)
    assert browser_page.api(f"chats/{sid}/messages/")["results"][-1]["id"] == later["id"]
    expect(answer).to_contain_text("4")
    expect(turns(page)).to_have_count(2)
