"""Browser fixtures: headless Chromium (Playwright) against a real daphne process.

Without Chromium at CHROMIUM (or without the playwright package) the browser tests are
skipped with the reason; under AGENTSITE_REQUIRE_SERVICES=1 (CI) they fail instead.

One daphne process serves the whole module (starting one takes a second or two); each test
signs in a user of its own in a fresh browser context. The offline model streams a word
every 20 ms (as in production) and artifacts are written in 0.15 s chunks, so a test can act mid-reply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.live import ROOT, DaphneServer, session_cookie

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "screenshots"
WIDE, NARROW = 1280, 375
HEIGHT = 800
SERVER_ENV = {
    "OFFLINE_MODEL_WORD_DELAY": "0.02",
    "ARTIFACT_CHUNK_DELAY": "0.15",
    # Sign-up is closed by default when DATABASE_URL is set (production); the test opens it.
    "ACCOUNTS_SIGNUP_ENABLED": "true",
    # A run whose process was killed is found dead within seconds, not half a minute (yet
    # with room for a live run on a busy machine to miss a few beats).
    "RUN_HEARTBEAT_INTERVAL": "0.5",
    "RUN_STALE_AFTER": "5",
    # Flow control made small, so that acknowledgements matter: a reply is longer than
    # both, so it streams to the end on one socket only if the page acknowledges as it goes
    # (past the window the server waits for an ack; a page that never acks is closed).
    "WS_ACK_WINDOW": "60",
    "WS_UNACKED_LIMIT": "30",
}


def _browser_problem() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"needs Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (requirements-dev.txt)"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    problem = _browser_problem()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(problem)
        pytest.skip(problem)
    return CHROMIUM


@pytest.fixture(scope="module")
def server(chromium_path: str, django_db_setup: Any) -> Iterator[DaphneServer]:
    with DaphneServer(env=SERVER_ENV) as live:
        yield live


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # the default 5 s is tight for a reply on a busy CI machine

    # Playwright's sync API runs an event loop in this thread, and Django then refuses ORM
    # calls from it as if they came from async code. They do not: the test's own queries
    # are synchronous, and the loop only drives the browser.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Page:
    """A browser page with what the tests check besides the DOM: dialogs and script errors."""

    def __init__(self, context: Any, server: DaphneServer):
        self.context = context
        self.server = server
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.hostile = False  # set by a test that shows the page content meant to attack it
        self.blocked: list[str] = []  # what the CSP refused meanwhile
        self.page = self.new_page()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(15_000)

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_console(message: Any) -> None:
            # A policy violation means the page tried something its CSP forbids: a defect,
            # unless a test fed it hostile content on purpose (then refusing is the point).
            if message.type == "error" and "Content Security Policy" in message.text:
                (self.blocked if self.hostile else self.errors).append(message.text)

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", on_console)
        return page

    def sign_in(self, user: Any) -> None:
        self.context.add_cookies([{"name": "sessionid", "value": session_cookie(user), "url": self.server.url}])

    def api(self, path: str) -> Any:
        """GET an API path as the signed-in user; the JSON."""
        response = self.page.request.get(f"{self.server.url}/api/v1/{path}")
        assert response.ok, f"{path}: {response.status} {response.text()}"
        return response.json()

    def shoot(self, name: str, widths: tuple[int, ...] = (WIDE, NARROW)) -> None:
        """Screenshots of this state at 1280 and 375 px wide, light and dark, in screenshots/
        (``<name>-<width>-<scheme>.png``); the page is left as it was."""
        SCREENSHOTS.mkdir(exist_ok=True)
        size = self.page.viewport_size
        for width in widths:
            self.page.set_viewport_size({"width": width, "height": HEIGHT})
            for scheme in ("light", "dark"):
                self.page.emulate_media(color_scheme=scheme)
                self.page.wait_for_timeout(100)  # one frame for the layout to settle
                self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}-{scheme}.png"))
        self.page.emulate_media(color_scheme="light")
        self.page.set_viewport_size(size)


@pytest.fixture
def browser_page(browser: Any, server: DaphneServer) -> Iterator[Page]:
    # Reduced motion: no sliding sidebar or blinking cursor, so screenshots show settled states.
    context = browser.new_context(
        viewport={"width": WIDE, "height": HEIGHT}, base_url=server.url, accept_downloads=True, reduced_motion="reduce",
        color_scheme="light"
    )
    wrapped = Page(context, server)
    yield wrapped
    context.close()
    assert not wrapped.errors, f"script errors in the page: {wrapped.errors}"
