"""The chat page's controls around the conversation: the drawer on a phone, the header,
the composer, keyboard shortcuts and their dialog, export, and the theme. Headless
Chromium against daphne and the offline model; screenshots in screenshots/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chat import artifacts, services
from tests.ui.conftest import NARROW, WIDE, Page
from tests.ui.pages import box, chat_id_of, composer, expect, last_reply, send, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]

LONG = " ".join(f"word{n}" for n in range(40))  # a reply long enough to act while it streams


def clipped(locator) -> bool:
    """Whether an element's text is cut off (an ellipsis, or wrapped out of its box)."""
    return locator.evaluate("(el) => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1")


def test_on_a_phone_the_chat_drawer_closes_by_its_button_or_a_tap_beside_it(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.set_viewport_size({"width": NARROW, "height": 800})
    page.goto("/")
    toggle = page.get_by_role("button", name="Show chats")
    new_chat = page.get_by_role("link", name="New chat")

    toggle.click()
    expect(new_chat).to_be_visible()
    browser_page.shoot("drawer-open", widths=(NARROW,))
    page.mouse.click(NARROW - 12, 500)  # the dimmed page beside the drawer
    expect(new_chat).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()

    toggle.click()
    page.get_by_role("button", name="Close chats").click()
    expect(new_chat).to_be_hidden()
    expect(toggle).to_be_focused()


def test_the_header_shows_title_model_and_artifacts_whole_on_a_phone_and_beside_the_panel(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    chat = services.create_session(owner, title="Trip to the Alps")
    for n in range(1, 5):
        made = artifacts.start(chat.pk, kind="markdown", title=f"Packing list {n}")
        artifacts.finish(made.pk, f"# Packing list {n}\n")
    page.goto(f"/c/{chat.pk}/")
    title = page.locator(".chat-toolbar").get_by_role("heading", level=1)
    artifacts_button = page.get_by_role("button", name="Artifacts (4)")
    model = page.locator("#model-name")
    expect(model).to_have_text(re.compile("Offline demo model"))

    for width, panel_open in ((NARROW, False), (WIDE, False), (WIDE, True)):
        page.set_viewport_size({"width": width, "height": 800})
        if panel_open:
            artifacts_button.click()
            expect(page.get_by_role("complementary", name="Packing list 4")).to_be_visible()
        expect(title).to_have_text("Trip to the Alps")
        for part in (title, artifacts_button, model):
            assert not clipped(part), (width, panel_open, part)
        # One line: the button is no taller than the header's other controls.
        assert box(artifacts_button)["height"] <= box(page.get_by_role("button", name="Chat options"))["height"] + 2
    browser_page.shoot("header-panel-open", widths=(WIDE,))


def test_send_sits_on_the_box_line_and_the_hint_is_for_keyboards_only(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    hint = page.get_by_text("Enter sends, Shift+Enter adds a new line.")
    send_button = page.get_by_role("button", name="Send")
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 800})
        send_box, text_box = box(send_button), box(composer(page))
        assert abs((send_box["y"] + send_box["height"]) - (text_box["y"] + text_box["height"])) <= 1, (width, send_box, text_box)
        if width == WIDE:
            expect(hint).to_be_visible()
        else:
            expect(hint).to_be_hidden()
    browser_page.shoot("composer")


def test_on_a_touch_screen_enter_breaks_the_line_and_send_sends(browser, server, owner):
    context = browser.new_context(
        viewport={"width": NARROW, "height": 812}, base_url=server.url, is_mobile=True, has_touch=True, reduced_motion="reduce"
    )
    phone = Page(context, server)
    try:
        phone.sign_in(owner)
        page = phone.page
        page.goto("/")
        expect(page.get_by_text("Enter sends, Shift+Enter adds a new line.")).to_be_hidden()
        message = composer(page)
        message.fill("first line")
        message.press("Enter")
        message.press_sequentially("second line")
        expect(message).to_have_value("first line\nsecond line")
        page.get_by_role("button", name="Send").tap()
        expect(page.locator("#messages .user-text")).to_have_text("first line\nsecond line")
        wait_until_idle(page)
        assert not phone.errors, phone.errors
    finally:
        context.close()


def test_enter_during_a_reply_keeps_the_text_and_waits_quietly(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, LONG)
    expect(last_reply(page)).to_have_attribute("data-state", "streaming")

    send(page, "and another thing")
    expect(page.get_by_role("status").filter(has_text="still replying")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(composer(page)).to_have_value("and another thing")
    browser_page.shoot("waiting-for-the-reply")

    wait_until_idle(page)
    expect(page.get_by_role("status").filter(has_text="still replying")).to_have_count(0)
    composer(page).press("Enter")
    expect(page.locator("#messages .user-text").last).to_have_text("and another thing")
    expect(composer(page)).to_have_value("")
    wait_until_idle(page)


def test_esc_stops_a_reply_and_ctrl_shift_o_starts_a_new_chat(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, LONG)
    reply = last_reply(page)
    expect(reply).to_contain_text("word2")
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-state", "unfinished")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    wait_until_idle(page)

    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("New chat")
    expect(page.locator("#empty-state")).to_be_visible()


def test_the_shortcuts_dialog_lists_what_works_and_opens_from_the_keyboard_or_the_menu(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")

    page.keyboard.press("Control+/")
    expect(dialog).to_be_visible()
    for what in ("Send the message", "Start a new line", "Edit your last message", "Stop the reply being written", "Start a new chat", "Show these shortcuts"):
        expect(dialog).to_contain_text(what)
    expect(dialog).not_to_contain_text("Search")  # search (issue 15) comes later
    browser_page.shoot("shortcuts")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Chat options").click()
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "idle")


def test_a_chat_is_exported_as_markdown_and_json_from_its_menu(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    options = page.get_by_role("button", name="Chat options")
    options.click()
    expect(page.get_by_role("link", name="Export as Markdown")).to_have_count(0)  # nothing to export yet
    page.keyboard.press("Escape")
    expect(options).to_have_attribute("aria-expanded", "false")

    send(page, "calculate 6 * 7")
    expect(page.locator("#messages")).to_contain_text("The result of 6 * 7 is 42.")
    wait_until_idle(page)
    chat_id = chat_id_of(page)
    for name, fmt, extension in (("Export as Markdown", "markdown", ".md"), ("Export as JSON", "json", ".json")):
        options.click()
        with page.expect_download() as download_info:
            page.get_by_role("link", name=name).click()
        download = download_info.value
        assert download.suggested_filename.endswith(extension), download.suggested_filename
        exported = Path(download.path()).read_text()
        assert exported == page.request.get(f"/api/v1/chats/{chat_id}/export/?format={fmt}").text()
        assert "6 * 7" in exported
    assert json.loads(exported)
    options.click()
    expect(page.get_by_role("link", name="Export as JSON")).to_be_visible()
    browser_page.shoot("options-menu")


def test_the_theme_is_chosen_per_browser_and_remembered(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    background = lambda: page.evaluate("() => getComputedStyle(document.body).backgroundColor")  # noqa: E731
    theme = page.get_by_role("combobox", name="Theme")
    expect(theme).to_have_value("system")
    assert background() == "rgb(255, 255, 255)"  # the system's (light) scheme

    theme.select_option(label="Dark")
    assert background() == "rgb(13, 17, 23)"
    page.reload()
    expect(page.get_by_role("combobox", name="Theme")).to_have_value("dark")
    assert background() == "rgb(13, 17, 23)"
    page.get_by_role("combobox", name="Theme").select_option(label="Light")
    page.emulate_media(color_scheme="dark")
    assert background() == "rgb(255, 255, 255)"  # chosen: the system's dark scheme does not apply
    page.get_by_role("combobox", name="Theme").select_option(label="System")
    assert background() == "rgb(13, 17, 23)"
    page.emulate_media(color_scheme="light")
