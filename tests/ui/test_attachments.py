"""Attaching files in the browser: the paperclip, paste, drop, removing a chip, sending, and
the thumbnails and file chips after a reload. Headless Chromium against daphne and the
offline model, which says what it got (docs/offline-model.md)."""

from __future__ import annotations

import base64

import pytest

from tests import files
from tests.live import DaphneServer
from tests.ui.conftest import SERVER_ENV
from tests.ui.pages import chat_id_of, composer, expect, send, wait_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]

PHOTO = files.image(640, 480, color="teal")
REPORT = files.pdf("Quarterly figures rose.", "Costs fell.")


@pytest.fixture(scope="module")
def server(chromium_path, django_db_setup, tmp_path_factory):
    """The site, keeping uploads in a directory of this module's own."""
    with DaphneServer(env={**SERVER_ENV, "ATTACHMENTS_DIR": str(tmp_path_factory.mktemp("uploads"))}) as live:
        yield live


def _files_in_page(page, name, mime, data):
    """A DataTransfer holding one file, made in the page."""
    return page.evaluate_handle(
        """([name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [name, mime, base64.b64encode(data).decode()],
    )


def chips(page):
    return page.locator("#attachment-chips li")


def test_attach_remove_send_and_reload(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files([
        {"name": "photo.png", "mimeType": "image/png", "buffer": PHOTO},
        {"name": "report.pdf", "mimeType": "application/pdf", "buffer": REPORT},
    ])
    expect(chips(page)).to_have_count(2)
    expect(chips(page).filter(has_text="photo.png")).to_have_attribute("data-state", "ready")
    expect(chips(page).filter(has_text="report.pdf")).to_have_attribute("data-state", "ready")
    expect(chips(page).filter(has_text="photo.png").locator("img.chip-preview")).to_be_visible()
    expect(chips(page).filter(has_text="report.pdf")).to_contain_text(f"{len(REPORT)} B")
    browser_page.shoot("attachments-chips")

    page.get_by_role("button", name="Remove report.pdf").click()
    expect(chips(page)).to_have_count(1)

    send(page, "What is in this picture?")
    expect(page.locator("#messages")).to_contain_text("I got photo.png, a 640×480 image.")
    wait_until_idle(page)
    expect(chips(page)).to_have_count(0)
    chat_id = chat_id_of(page)
    # The removed file was deleted; the sent one stays with the chat.
    assert [(a["name"], a["sent"]) for a in browser_page.api(f"chats/{chat_id}/attachments/")] == [("photo.png", True)]
    browser_page.shoot("attachments-sent")

    page.reload()
    thumbnail = page.locator("#messages .sent-files img[alt='photo.png']")
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 640", arg=thumbnail.element_handle())
    expect(page.locator("#messages .user-text")).to_have_text(["What is in this picture?"])


def test_paste_an_image_and_send_it_alone(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    transfer = _files_in_page(page, "image.png", "image/png", files.image(32, 24))
    composer(page).focus()
    page.evaluate(
        "t => document.getElementById('composer-input').dispatchEvent(new ClipboardEvent('paste', {clipboardData: t, bubbles: true, cancelable: true}))",
        transfer,
    )
    expect(chips(page)).to_have_count(1)
    expect(chips(page).first).to_have_attribute("data-state", "ready")

    page.keyboard.press("Enter")  # no text: the file is the message
    expect(page.locator("#messages")).to_contain_text("I got image.png, a 32×24 image.")
    wait_until_idle(page)
    expect(page.locator("#messages .sent-files img[alt='image.png']")).to_be_visible()


def test_drop_a_pdf_on_the_chat(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    transfer = _files_in_page(page, "report.pdf", "application/pdf", REPORT)
    pane = page.locator("#conversation-pane")
    pane.dispatch_event("dragenter", {"dataTransfer": transfer})
    expect(pane).to_have_class("conversation-pane dropping")
    browser_page.shoot("attachments-dropping", widths=(1280,))
    pane.dispatch_event("drop", {"dataTransfer": transfer})
    expect(pane).to_have_class("conversation-pane")
    expect(chips(page).first).to_have_attribute("data-state", "ready")

    send(page, "Summarise this")
    expect(page.locator("#messages")).to_contain_text("I got report.pdf, 2 pages, starting: “Quarterly figures rose. Costs fell.”.")
    wait_until_idle(page)

    page.reload()
    chip = page.locator("#messages .sent-files a.file-chip")
    expect(chip).to_contain_text("report.pdf")
    expect(chip).to_contain_text("2 pages")
    with page.expect_download() as download:
        chip.click()
    assert download.value.suggested_filename == "report.pdf"
    assert open(download.value.path(), "rb").read() == REPORT


def test_a_refused_file_says_why_on_its_chip_and_is_not_sent(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files([{"name": "photo.png", "mimeType": "image/png", "buffer": b"<html><script>alert(1)</script></html>"}])

    chip = chips(page).first
    expect(chip).to_have_attribute("data-state", "failed")
    expect(chip).to_contain_text("photo.png is not a PNG image")
    browser_page.shoot("attachments-refused", widths=(1280,))
    page.get_by_role("button", name="Remove photo.png").click()
    expect(chips(page)).to_have_count(0)
