"""Searching chats from the sidebar: Ctrl+K, results as you type, the keyboard, and a hit
opening its chat at the message. Headless Chromium against daphne; screenshots in screenshots/.
"""

from __future__ import annotations

import re

import pytest

from chat.models import ChatSession
from chat.storage import database, tree
from tests.factories import seed_history
from tests.ui.conftest import NARROW
from tests.ui.pages import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]


def long_chat(owner, *, title: str, word_at: int, word: str, count: int = 120) -> ChatSession:
    """A chat of ``count`` messages; message ``word_at`` mentions ``word``, far above the end."""

    def content(seq: int):
        text = f"line {seq} of the log" + (f" where the {word} appeared" if seq == word_at else "")
        return text if seq % 2 else [{"type": "text", "text": text}]

    session = seed_history(owner, count, content=content)
    ChatSession.objects.filter(pk=session.pk).update(title=title)
    return session


def search_field(page):
    return page.get_by_role("combobox", name="Search chats")


def test_ctrl_k_searches_as_you_type_and_a_hit_opens_its_chat_at_the_message(browser_page, owner, stranger):
    page = browser_page.page
    browser_page.sign_in(owner)
    target = long_chat(owner, title="Expedition log", word_at=7, word="narwhal")
    long_chat(owner, title="Narwhal facts", word_at=999, word="unused", count=4)
    long_chat(stranger, title="Not yours", word_at=3, word="narwhal", count=4)
    hostile = ChatSession.objects.create(owner=owner, title="Markup")
    database.save_messages(hostile.pk, [{"role": "user", "content": 'a narwhal <img src=x onerror="alert(1)"> <b>bold</b>'}])
    page.goto("/")

    page.keyboard.press("Control+k")
    field = search_field(page)
    expect(field).to_be_focused()
    page.keyboard.type("narw")
    results = page.get_by_role("listbox", name="Search results")
    options = results.get_by_role("option")
    # The start of a word finds it: results follow what is typed.
    expect(options).to_have_count(3)  # the log's message, the title, the markup message; never the stranger's
    page.keyboard.type("hal")
    expect(options).to_have_count(3)
    expect(page.locator("#chat-list")).to_be_hidden()
    expect(results.locator("mark", has_text=re.compile("^narwhal$", re.I))).to_have_count(3)
    # Message text is text: the markup in it shows as characters, nothing is rendered.
    expect(results.locator("img, b")).to_have_count(0)
    expect(options.filter(has_text="Markup")).to_contain_text("narwhal")
    browser_page.shoot("search-results")
    field.focus()  # the phone-width screenshots hid the sidebar (and took the focus from it)

    log_hit = options.filter(has_text="Expedition log")
    position = [options.nth(i).inner_text() for i in range(3)].index(log_hit.inner_text())
    for _ in range(position + 1):
        page.keyboard.press("ArrowDown")
    expect(log_hit).to_have_attribute("aria-selected", "true")
    expect(field).to_have_attribute("aria-activedescendant", log_hit.get_attribute("id"))
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(f"/c/{target.pk}/$"))
    message = page.locator('#messages .message[data-sequence="7"]')
    expect(message).to_contain_text("the narwhal appeared")
    expect(message).to_be_focused()
    expect(message).to_have_class(re.compile("search-hit"))
    expect(message).to_be_in_viewport()
    expect(page.locator('#messages .message[data-sequence="120"]')).not_to_be_in_viewport()
    browser_page.shoot("search-opened")

    # Esc in the field clears the search and brings the chat list back.
    field.click()
    page.keyboard.press("Escape")
    expect(field).to_have_value("")
    expect(page.locator("#chat-list")).to_be_visible()
    expect(results).to_be_hidden()


def test_a_hit_on_another_version_switches_the_chat_to_it(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    session = ChatSession.objects.create(owner=owner, title="Versions")
    database.save_messages(session.pk, [{"role": "user", "content": "tell me about the okapi"}, {"role": "assistant", "content": [{"type": "text", "text": "The okapi is shy."}]}])
    tree.fork(session.pk, 0)  # the first message edited: the okapi is on the old version now
    database.save_messages(session.pk, [{"role": "user", "content": "tell me about the tapir"}])
    page.goto(f"/c/{session.pk}/")
    expect(page.locator("#messages")).to_contain_text("tapir")

    search_field(page).fill("okapi shy")
    option = page.get_by_role("listbox", name="Search results").get_by_role("option")
    expect(option).to_have_count(1)
    expect(option).to_contain_text("another version")
    option.click()
    reply = page.locator('#messages .message[data-sequence="2"]')
    expect(reply).to_contain_text("The okapi is shy.")
    expect(reply).to_be_focused()
    expect(page.locator("#messages")).not_to_contain_text("tapir")


def test_on_a_phone_ctrl_k_opens_the_drawer_at_the_search(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    long_chat(owner, title="Pocket notes", word_at=2, word="quokka", count=4)
    page.set_viewport_size({"width": NARROW, "height": 800})
    page.goto("/")
    page.keyboard.press("Control+k")
    field = search_field(page)
    expect(field).to_be_visible()
    expect(field).to_be_focused()
    page.keyboard.type("quokka")
    option = page.get_by_role("listbox", name="Search results").get_by_role("option").first
    expect(option).to_contain_text("Pocket notes")
    browser_page.shoot("search-phone", widths=(NARROW,))
    page.keyboard.press("Enter")
    expect(page.locator('#messages .message[data-sequence="2"]')).to_be_focused()
    expect(field).to_be_hidden()  # the drawer made way for the chat
