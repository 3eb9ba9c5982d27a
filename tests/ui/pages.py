"""What the browser tests do and read on the chat page, shared by the test modules."""

from __future__ import annotations

import re
from typing import Any

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium_path fixture skips the browser tests (in CI: fails) with the reason
    expect = None


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if block.get("type") == "text")


def words(text: str) -> str:
    return " ".join(text.split())


def chat_id_of(page: Any) -> str:
    match = re.search(r"/c/([0-9a-f-]{36})/$", page.url)
    assert match, f"not a chat URL: {page.url}"
    return match.group(1)


def composer(page: Any) -> Any:
    return page.get_by_label("Message", exact=True)


def send(page: Any, text: str) -> None:
    composer(page).fill(text)
    page.keyboard.press("Enter")


def turns(page: Any) -> Any:
    """The blocks of the conversation as a reader sees them: one per turn."""
    return page.locator("#messages > li:visible")


def last_reply(page: Any) -> Any:
    """The newest reply message (one model call's text and tool calls)."""
    return page.locator("#messages .message.assistant:not(.orphan)").last


def question_card(page: Any) -> Any:
    return page.get_by_role("group", name="Which topic should we explore next?")


def wait_until_idle(page: Any) -> None:
    """The message sent last was stored and its run ended (or asks a question)."""
    expect(page.locator("#messages li.outgoing")).to_have_count(0)
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", re.compile("idle|awaiting_input"))
    expect(page.locator("#messages .message.assistant[data-state=streaming]")).to_have_count(0)


def box(locator: Any) -> dict[str, float]:
    """Where an element is on the page (CSS px)."""
    found = locator.bounding_box()
    assert found, "the element is not rendered"
    return found
