"""The chat page (templates/chat/home.html, static/chat/) in headless Chromium, against a
real daphne process and the offline demo model (docs/offline-model.md).

Each test also leaves screenshots of what it shows in screenshots/ (1280 and 375 px wide).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chat import artifacts, services, ui
from chat.models import ChatSession
from tests.ui.conftest import NARROW
from tests.ui.pages import chat_id_of, expect, last_reply, send, text_of, wait_until_idle, words

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("chromium_path")]


def test_signing_up_then_a_reply_streams_and_the_title_reaches_the_sidebar(browser_page, server):
    page = browser_page.page
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password:", exact=True).fill("a-long-pass-phrase-42")
    page.get_by_label("Password confirmation:").fill("a-long-pass-phrase-42")
    browser_page.shoot("sign-up")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator("#model-value")).to_have_text("Offline demo model (no API key set)")
    # The modules load by their hashed names (the import map), so deployments never mix.
    scripts = page.evaluate(
        "() => performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => /\\.m?js$/.test(p))"
    )
    # (and the site's theme script, a classic one in <head> so the theme applies before paint).
    assert len(scripts) == len(ui.MODULES) + 1 and all(re.search(r"\.[0-9a-f]{12}\.m?js$", path) for path in scripts), scripts
    expect(page.locator("#empty-state")).to_be_visible()
    browser_page.shoot("new-chat")

    send(page, "Hello from the browser test")
    expect(page.locator("#messages .message.user .user-text")).to_have_text("Hello from the browser test")
    reply = last_reply(page)
    # Mid-stream: part of the reply is on screen, the stop button with it.
    expect(reply).to_have_attribute("data-state", "streaming")
    expect(reply).to_contain_text("You said")
    snapshot = reply.evaluate("(li) => ({state: li.dataset.state, text: li.querySelector('.markdown').innerText})")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    browser_page.shoot("streaming")

    expect(reply).to_have_attribute("data-state", "finished")
    final = words(reply.locator(".markdown").inner_text())
    assert final.startswith(words(snapshot["text"]))
    if snapshot["state"] == "streaming":
        assert len(words(snapshot["text"])) < len(final)
    expect(reply).to_have_attribute("data-stream-check", "match")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    # One socket all along, acknowledging as it went (the server would have closed it).
    stats = page.evaluate("() => window.agentsite.chat.connection.stats")
    assert stats["opened"] == 1 and stats["acks"] >= 2, stats

    # The chat has its address now, and its generated title reaches the sidebar and header.
    chat_id = chat_id_of(page)
    expect(page.locator(f'#chat-list li[data-chat-id="{chat_id}"] .chat-link')).to_have_text("Hello from the browser test")
    expect(page.locator("#chat-title")).to_have_text("Hello from the browser test")

    # Shift+Enter is a new line; Enter sends.
    box = page.get_by_label("Message", exact=True)
    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect(page.locator("#messages .message.user .user-text").last).to_have_text("first line\nsecond line")
    expect(box).to_have_value("")
    wait_until_idle(page)
    stored = browser_page.api(f"chats/{chat_id}/messages/")["results"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[2]["content"] == "first line\nsecond line"


def test_choosing_an_option_sends_it_and_the_run_goes_on(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Please choose a topic")

    question = page.get_by_role("group", name="Which topic should we explore next?")
    expect(question).to_be_visible()
    options = question.get_by_role("button")
    expect(options).to_have_text(["Python", "JavaScript", "Rust"])
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "awaiting_input")

    question.get_by_role("button", name="Rust").click()  # at once, as the question arrives
    expect(page.locator("#messages")).to_contain_text("You chose Rust. Good choice!")
    for option in options.all():
        expect(option).to_be_disabled()
    expect(question.get_by_role("button", name="Rust")).to_have_attribute("aria-pressed", "true")
    expect(question).to_contain_text("You chose Rust.")
    wait_until_idle(page)


def test_a_question_survives_a_reload_and_is_answered_after_it(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Give me options")
    expect(page.get_by_role("group", name="Which topic should we explore next?")).to_be_visible()

    page.reload()  # the question comes back from ready.pending and the history
    question = page.get_by_role("group", name="Which topic should we explore next?")
    expect(question.get_by_role("button", name="JavaScript")).to_be_enabled()
    browser_page.shoot("question")
    question.get_by_role("button", name="JavaScript").click()
    expect(page.locator("#messages")).to_contain_text("You chose JavaScript. Good choice!")
    wait_until_idle(page)

    page.reload()  # answered, from the history: locked, with the answer
    question = page.get_by_role("group", name="Which topic should we explore next?")
    expect(question).to_contain_text("You chose JavaScript.")
    for option in question.get_by_role("button").all():
        expect(option).to_be_disabled()
    assert browser_page.api(f"chats/{chat_id_of(page)}/")["state"] == "idle"


def test_a_chart_is_drawn_not_printed(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Show me a chart")

    chart = page.locator("figure.chart-card")
    expect(chart.locator("figcaption")).to_have_text("Visitors per month (sample data)")
    expect(chart.locator("svg[role=img] rect.bar")).to_have_count(4)
    expect(chart.locator("svg")).to_have_attribute("aria-label", re.compile("January: 120, February: 150"))
    wait_until_idle(page)
    conversation = page.locator("#messages").inner_text()
    assert "chart_type" not in conversation and "{" not in conversation
    browser_page.shoot("chart")

    send(page, "Now a pie chart please")
    expect(page.locator("figure.chart-card").last.locator("svg path.slice")).to_have_count(4)
    wait_until_idle(page)

    page.reload()  # drawn again from the stored display data
    expect(page.locator("figure.chart-card")).to_have_count(2)
    expect(page.locator("figure.chart-card").first.locator("rect.bar")).to_have_count(4)


def test_an_artifact_shows_its_progress_opens_in_the_panel_and_downloads(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Write a note about testing")

    card = page.locator(".artifact-card")
    expect(card.locator("progress")).to_be_visible()  # written in chunks: progress while it grows
    expect(card).to_contain_text("Writing…")
    card.get_by_role("button", name="Open Notes on your request").click()
    panel = page.get_by_role("complementary", name="Notes on your request")
    expect(panel).to_be_visible()
    # Opened while it is written: the panel follows its progress live.
    expect(panel).to_have_attribute("data-status", "generating")
    expect(panel.locator("#artifact-status")).to_contain_text("Writing…")
    expect(panel).to_have_attribute("data-status", "complete")
    expect(panel.locator("#artifact-status")).to_have_text("")
    expect(panel.locator("#artifact-view h1")).to_have_text("Notes on your request")
    expect(panel.locator("#artifact-view")).to_contain_text("You asked: Write a note about testing")
    browser_page.shoot("artifact")

    panel.get_by_role("tab", name="Source").click()
    expect(panel.locator("#artifact-view pre")).to_contain_text("# Notes on your request")
    browser_page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=browser_page.server.url)
    panel.get_by_role("button", name="Copy").click()
    expect(panel.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()").startswith("# Notes on your request\n\nYou asked:")

    with page.expect_download() as download_info:
        panel.get_by_role("link", name="Download").click()
    download = download_info.value
    artifact_id = panel.get_attribute("data-artifact-id")
    stored = browser_page.api(f"artifacts/{artifact_id}/")
    assert download.suggested_filename.endswith(".md")
    assert Path(download.path()).read_text() == stored["content"]

    # A revision made meanwhile, and a code file: after a reload the panel offers the
    # earlier version too, and shows code highlighted.
    revised = artifacts.revise(chat_id_of(page), artifact_id, kind="markdown", title="Notes, revised")
    artifacts.finish(revised.pk, "# Notes, revised\n\nShorter now.\n")
    code = artifacts.start(chat_id_of(page), kind="code", title="fib.py")
    artifacts.finish(code.pk, "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n")
    page.reload()
    page.get_by_role("button", name="Artifacts (2)").click()
    panel = page.locator("#artifact-panel")
    panel.get_by_label("Artifact", exact=True).select_option(label="fib.py")
    expect(panel.locator("#artifact-view code.hljs .hljs-keyword").first).to_have_text("def")
    panel.get_by_label("Artifact", exact=True).select_option(label="Notes, revised")
    expect(panel.get_by_role("heading", level=2)).to_have_text("Notes, revised")
    expect(panel.locator("#artifact-view h1")).to_have_text("Notes, revised")
    panel.get_by_label("Version").select_option(label="Version 1")
    expect(panel.locator("#artifact-view h1")).to_have_text("Notes on your request")
    panel.get_by_role("button", name="Close the artifact panel").click()
    expect(panel).to_be_hidden()


def test_a_dropped_connection_mid_reply_resumes_without_duplicated_or_missing_text(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    long_message = " ".join(f"word{n}" for n in range(30))
    send(page, long_message)
    reply = last_reply(page)
    expect(reply).to_contain_text("word5")
    expect(reply).to_have_attribute("data-state", "streaming")

    # Drop the socket while the reply streams; the page stays away for 0.8 s (the run goes
    # on and its events pile up in the server's log), then reconnects and resumes.
    streamed_before = page.evaluate(
        """() => {
            const streaming = document.querySelector('#messages .message.assistant[data-state=streaming]');
            window.agentsite.dropConnection(800);
            return streaming ? streaming.innerText.length : -1;
        }"""
    )
    assert streamed_before > 0, "the reply was not streaming when the socket was dropped"
    banner = page.get_by_role("status").filter(has_text="Disconnected")
    expect(banner).to_be_visible()
    browser_page.shoot("disconnected")
    expect(banner).to_be_hidden()

    expect(reply).to_have_attribute("data-state", "finished")
    # The text built from deltas (before and after the drop) is exactly the stored reply.
    expect(reply).to_have_attribute("data-stream-check", "match")
    stats = page.evaluate("() => window.agentsite.chat.connection.stats")
    assert stats["opened"] == 2 and stats["resumes"] >= 1 and stats["acks"] >= 1, stats
    stored = browser_page.api(f"chats/{chat_id_of(page)}/messages/")["results"]
    assert words(reply.locator(".markdown").inner_text()) == words(text_of(stored[-1]["content"]))
    assert len(reply.locator(".markdown").inner_text()) > streamed_before
    assert page.locator("#messages .message.assistant").count() == 1


class SocketTap:
    """Stands between the page and the server's socket (Playwright's WebSocket routing):
    forwards every frame, except server events it is told to drop, and can inject frames
    or close the page's side with a code of its choosing."""

    def __init__(self, page: Any):
        self.drop_deltas = 0
        self.dropped: list[int] = []
        self.shrink_replies = False  # send finished replies as the server sends oversize events
        self.sent: list[dict[str, Any]] = []  # what the page sent
        self.last_id = 0  # the newest event id the server sent
        self.page_side: Any = None
        page.route_web_socket(re.compile(r"/ws/chat/"), self.route)

    def route(self, ws: Any) -> None:
        self.page_side = ws
        server = ws.connect_to_server()

        def from_page(message: str) -> None:
            self.sent.append(json.loads(message))
            server.send(message)

        def from_server(message: str) -> None:
            frame = json.loads(message)
            if "id" in frame:
                self.last_id = max(self.last_id, frame["id"])
                if self.drop_deltas and frame["type"] == "text_delta":
                    self.drop_deltas -= 1
                    self.dropped.append(frame["id"])
                    return
                if self.shrink_replies and frame["type"] == "message" and frame["role"] == "assistant" and frame["finished"]:
                    # chat/runs/eventlog.py: an event too big for a frame loses its big fields.
                    del frame["content"]
                    message = json.dumps({**frame, "omitted": ["content"]})
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)


def test_gaps_4408_oversize_events_and_resync_lose_nothing(browser_page, owner):
    page = browser_page.page
    tap = SocketTap(page)
    browser_page.sign_in(owner)
    page.goto("/")
    stats = lambda: page.evaluate("() => ({...window.agentsite.chat.connection.stats})")  # noqa: E731

    # Five deltas lost on the way: the next one shows a gap, and `resume` fills it.
    send(page, " ".join(f"gap{n}" for n in range(30)))
    reply = last_reply(page)
    expect(reply).to_contain_text("gap2")
    tap.drop_deltas = 5
    expect(reply).to_have_attribute("data-state", "finished")
    assert len(tap.dropped) == 5
    assert {"type": "resume", "after": tap.dropped[0] - 1} in tap.sent
    expect(reply).to_have_attribute("data-stream-check", "match")
    assert stats()["gaps"] >= 1
    assert any(frame["type"] == "ack" for frame in tap.sent)

    # "Too slow" (4408): reconnect at once, resume, and still lose nothing.
    send(page, " ".join(f"slow{n}" for n in range(30)))
    reply = last_reply(page)
    expect(reply).to_contain_text("slow2")
    tap.page_side.close(code=4408, reason="too slow")
    expect(reply).to_have_attribute("data-state", "finished")
    expect(reply).to_have_attribute("data-stream-check", "match")
    assert stats()["opened"] == 2

    # A reply too big for one frame ends without its content: the page reads it from the API.
    tap.shrink_replies = True
    send(page, " ".join(f"big{n}" for n in range(30)))
    reply = last_reply(page)
    expect(reply).to_contain_text("big2")
    expect(reply).to_have_attribute("data-state", "finished")
    expect(reply).to_have_attribute("data-stream-check", "match")
    expect(reply).to_contain_text("big29")
    tap.shrink_replies = False

    # resync: the events are gone from the log; the page reloads from the API and goes on.
    send(page, " ".join(f"sync{n}" for n in range(30)))
    reply = last_reply(page)
    expect(reply).to_contain_text("sync2")
    loads = stats()["loads"]
    tap.page_side.send(json.dumps({"type": "error", "code": "resync", "message": "gone", "retryable": False, "last_event_id": tap.last_id}))
    expect(reply).to_have_attribute("data-state", "finished")
    assert stats()["loads"] == loads + 1
    wait_until_idle(page)
    stored = browser_page.api(f"chats/{chat_id_of(page)}/messages/")["results"]
    shown = page.locator("#messages .message").all()
    assert [li.get_attribute("data-sequence") for li in shown] == [str(m["sequence"]) for m in stored]
    assert words(last_reply(page).locator(".markdown").inner_text()) == words(text_of(stored[-1]["content"]))


def test_a_page_opened_mid_reply_rebuilds_it_from_the_run_events(browser_page, owner):
    first = browser_page.page
    browser_page.sign_in(owner)
    first.goto("/")
    send(first, " ".join(f"token{n}" for n in range(30)))
    expect(last_reply(first)).to_contain_text("token3")
    chat_url = first.url

    second = browser_page.new_page()
    second.goto(chat_url)
    reply = last_reply(second)
    expect(reply).to_have_attribute("data-state", "streaming")
    expect(reply).to_have_attribute("data-state", "finished")
    expect(reply).to_have_attribute("data-stream-check", "match")
    expect(last_reply(first)).to_have_attribute("data-state", "finished")
    assert words(reply.locator(".markdown").inner_text()) == words(last_reply(first).locator(".markdown").inner_text())
    assert second.locator("#messages .message.user:not(.tool-results)").count() == 1


def test_stop_ends_the_reply_and_keeps_what_was_streamed(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, " ".join(f"item{n}" for n in range(30)))
    reply = last_reply(page)
    expect(reply).to_contain_text("item2")

    page.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-state", "unfinished")
    expect(reply).to_contain_text("This reply did not finish.")
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "idle")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    stored = browser_page.api(f"chats/{chat_id_of(page)}/messages/")["results"][-1]
    assert stored["role"] == "assistant" and stored["finished"] is False
    shown = words(reply.locator(".markdown").inner_text())
    assert "item29" not in shown  # stopped before the end
    assert words(text_of(stored["content"])).startswith(shown)


def test_a_server_crash_mid_reply_is_reported_after_reconnecting_and_retried(browser_page, owner, server):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    send(page, "Tell me about crashes")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "streaming")

    server.kill()  # the run dies with its process; the page retries with backoff
    banner = page.get_by_role("status").filter(has_text="Disconnected")
    expect(banner).to_be_visible()
    server.start()
    expect(banner).to_be_hidden(timeout=20_000)

    # The new process finds the run's heartbeat stale (RUN_STALE_AFTER) and says so.
    notice = page.locator("#messages .notice[data-code=run_interrupted]")
    expect(notice).to_be_visible(timeout=20_000)
    expect(notice).to_contain_text("interrupted")
    expect(reply).to_have_attribute("data-state", "unfinished")
    expect(page.locator("#chat-app")).to_have_attribute("data-run-state", "failed")
    browser_page.shoot("error")

    notice.get_by_role("button", name="Retry").click()  # sends the last message again
    expect(page.locator("#messages .message.assistant[data-state=finished]")).to_have_count(1)
    wait_until_idle(page)
    expect(notice.get_by_role("button", name="Retry")).to_have_count(0)
    stored = browser_page.api(f"chats/{chat_id_of(page)}/messages/")["results"]
    assert [(m["role"], m["finished"]) for m in stored] == [("user", True), ("assistant", False), ("user", True), ("assistant", True)]
    assert stored[2]["content"] == "Tell me about crashes"


def test_markup_in_messages_is_shown_as_text_and_never_runs(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.goto("/")
    attack = "<img src=x onerror=alert(1)> and <script>alert(2)</script> **not bold**"
    send(page, attack)

    expect(page.locator("#messages .message.user .user-text")).to_have_text(attack)
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "finished")
    # The model quotes it back as Markdown: the markup is text there too.
    expect(reply).to_contain_text("<img src=x onerror=alert(1)>")
    expect(reply).to_contain_text("<script>alert(2)</script>")
    expect(page.locator("#messages img, #messages script")).to_have_count(0)

    # Artifacts with script in them: SVG is an image, HTML a frame without scripts. (The
    # CSP also refuses their handlers where the browser parses them: expected here.)
    browser_page.hostile = True
    session = ChatSession.objects.get(pk=chat_id_of(page))
    svg = artifacts.start(session.pk, kind="svg", title="Sneaky picture")
    artifacts.finish(svg.pk, '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(3)"><script>alert(4)</script><circle r="5"/></svg>')
    html = artifacts.start(session.pk, kind="html", title="Sneaky page")
    artifacts.finish(html.pk, "<p>hi</p><script>alert(5)</script><img src=x onerror=alert(6)>")

    page.reload()
    expect(page.locator("#messages .message.user .user-text")).to_have_text(attack)
    page.get_by_role("button", name="Artifacts (2)").click()
    panel = page.locator("#artifact-panel")
    panel.get_by_label("Artifact", exact=True).select_option(label="Sneaky picture")
    expect(panel.locator("#artifact-view img.artifact-image")).to_have_attribute("src", re.compile("^blob:"))
    panel.get_by_label("Artifact", exact=True).select_option(label="Sneaky page")
    frame = panel.locator("#artifact-view iframe")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("#artifact-view iframe").locator("p")).to_have_text("hi")

    page.wait_for_timeout(300)  # time for anything that was going to run
    assert browser_page.dialogs == []
    ours = 'script:not([type=importmap]):not([type=module]):not([type="application/json"]):not([src*="/static/site/theme."])'
    assert page.evaluate(f"() => document.querySelectorAll('{ours}').length") == 0


def test_chats_are_renamed_and_deleted_from_the_sidebar(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    keep = services.create_session(owner, title="Groceries")
    drop = services.create_session(owner, title="Old plans")
    page.goto(f"/c/{keep.pk}/")
    expect(page.locator("#chat-title")).to_have_text("Groceries")
    sidebar = page.get_by_role("navigation", name="Chats")
    expect(sidebar.get_by_role("link", name="Groceries")).to_have_attribute("aria-current", "page")

    sidebar.get_by_role("button", name="Rename “Groceries”").click()
    title = sidebar.get_by_label("New title")
    expect(title).to_be_focused()
    title.fill("Weekly shopping")
    title.press("Enter")
    expect(sidebar.get_by_role("link", name="Weekly shopping")).to_be_visible()
    expect(page.locator("#chat-title")).to_have_text("Weekly shopping")
    assert browser_page.api(f"chats/{keep.pk}/")["title"] == "Weekly shopping"

    sidebar.get_by_role("button", name="Delete “Old plans”").click()
    sidebar.get_by_role("button", name="Delete", exact=True).click()
    expect(sidebar.locator(f'li[data-chat-id="{drop.pk}"]')).to_have_count(0)
    assert not ChatSession.objects.filter(pk=drop.pk).exists()

    # Deleting the open chat leaves for a new one.
    sidebar.get_by_role("button", name="Delete “Weekly shopping”").click()
    sidebar.get_by_role("button", name="Delete", exact=True).click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#chat-title")).to_have_text("New chat")
    assert browser_page.dialogs == []


def test_a_narrow_screen_collapses_the_sidebar_behind_a_button(browser_page, owner):
    page = browser_page.page
    browser_page.sign_in(owner)
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/")
    send(page, "calculate 1 + 1")
    expect(page.locator("#messages")).to_contain_text("The result of 1 + 1 is 2.")
    wait_until_idle(page)

    new_chat = page.get_by_role("link", name="New chat")
    expect(new_chat).to_be_hidden()
    toggle = page.get_by_role("button", name="Show chats")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(new_chat).to_be_visible()
    expect(new_chat).to_be_focused()
    browser_page.shoot("sidebar-open", widths=(NARROW,))
    page.keyboard.press("Escape")
    expect(new_chat).to_be_hidden()
    expect(toggle).to_be_focused()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    # Asked for reduced motion (as this browser is): the sidebar does not slide, even as the
    # screen narrows; it is off the page at once.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("() => getComputedStyle(document.querySelector('.sidebar')).transitionDuration") == "0s"
    assert page.evaluate("() => document.querySelector('.sidebar').getBoundingClientRect().right") <= 0
