from __future__ import annotations

import pytest

from tools.registry import ToolContext


class Recorder:
    """A ToolContext's emit that keeps the events."""

    def __init__(self):
        self.events = []

    async def __call__(self, event):
        self.events.append(event)


@pytest.fixture
def emitted():
    return Recorder()


@pytest.fixture
def context(emitted):
    return ToolContext(session_id="", user=None, tool_use_id="toolu_test", emit=emitted)
