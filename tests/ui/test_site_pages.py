"""The pages around the chat, in headless Chromium: error pages, the favicon, and the
admin pages staff use to inspect chats. Screenshots in screenshots/.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from chat.models import LoopState, Message
from tests.factories import pause_on_question, seed_messages, tool_turn
from tests.ui.conftest import WIDE
from tests.ui.pages import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(username="staff", password="staff-pass-123")


def test_an_unknown_chat_is_a_page_of_the_site_with_a_way_back(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    response = page.goto(f"/c/{uuid.uuid4()}/")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_role("combobox", name="Theme")).to_be_visible()  # the site's own header
    browser_page.shoot("not-found")

    page.get_by_role("link", name="Back to your chats").click()
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_the_favicon_is_served_where_browsers_look_for_it(browser_page):
    page = browser_page.page
    response = page.goto("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file


def test_a_loop_states_question_links_to_its_page(browser_page, owner, staff):
    page = browser_page.page
    browser_page.sign_in(staff)
    paused = pause_on_question(owner)
    loop = LoopState.objects.get(session=paused)
    page.goto(reverse("admin:chat_loopstate_changelist"))

    page.get_by_role("link", name="Which colour?").click()
    expect(page).to_have_url(f"{browser_page.server.url}{reverse('admin:chat_loopstate_change', args=[loop.pk])}")
    empty_links = page.evaluate("() => [...document.querySelectorAll('a[href]')].filter(a => !a.textContent.trim() && !a.querySelector('img, svg') && !a.getAttribute('aria-label')).length")
    assert empty_links == 0


def test_a_sessions_message_table_fits_the_page(browser_page, owner, staff):
    page = browser_page.page
    browser_page.sign_in(staff)
    chat = seed_messages(owner, tool_turn("toolu_1", question="what is " + "1+" * 120 + "1?"))
    Message.objects.filter(session=chat, sequence=4).update(
        usage={"input_tokens": 1234, "output_tokens": 56, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        context={"first_sequence": 1, "last_sequence": 3, "dropped": 0},
    )
    page.set_viewport_size({"width": WIDE, "height": 800})
    page.goto(reverse("admin:chat_chatsession_change", args=[chat.pk]))
    expect(page.get_by_role("navigation", name="Message pages")).to_contain_text("Messages 1–4 of 4")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= WIDE
    page.get_by_role("navigation", name="Message pages").scroll_into_view_if_needed()
    browser_page.shoot("admin-session")
