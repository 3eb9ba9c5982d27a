"""A scripted model for agent-loop tests: each call plays the next ``Turn``.

It records what every call received (``calls``), so tests can assert what the model saw.
A turn may stop at an ``asyncio.Event`` (to cancel a run mid-stream at a known point) or
raise (to fail mid-stream).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from chat.agent.providers.base import ModelEvent, ModelReply, Provider, ProviderError, TextDelta, UsageSoFar, usage

_ids = itertools.count(1)


@dataclass
class Turn:
    # Strings are streamed as deltas; an asyncio.Event is waited on; an exception is raised.
    steps: list[Any]
    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=lambda: usage(input_tokens=100, output_tokens=10))
    # Usage the call reports at its start, before its first word (as Claude's message_start).
    so_far: dict[str, int] | None = None


def say(*words: str) -> Turn:
    return Turn(steps=list(words), content=[{"type": "text", "text": "".join(words)}])


def call(*calls: tuple[str, dict[str, Any]], text: str = "", ids: list[str] | None = None) -> Turn:
    """A reply that calls tools: ``call(("calculate", {"expression": "1+1"}))``."""
    ids = ids or [f"toolu_{next(_ids):04d}" for _ in calls]
    content = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": i, "name": name, "input": tool_input} for i, (name, tool_input) in zip(ids, calls)]
    return Turn(steps=[text] if text else [], content=content, stop_reason="tool_use")


def stall(*words: str, until: asyncio.Event) -> Turn:
    """Stream ``words``, then wait for ``until`` (a test cancels the run meanwhile)."""
    return Turn(steps=[*words, until], content=[{"type": "text", "text": "".join(words)}])


def fail(*words: str, error: Exception | None = None) -> Turn:
    """Stream ``words``, then fail as a broken connection would."""
    error = error or ProviderError("stream_interrupted", "The connection broke off.", retryable=True)
    return Turn(steps=[*words, error], content=[])


class ScriptedProvider(Provider):
    name = "scripted"
    display_name = "Scripted test model"
    model = "scripted"

    def __init__(self, *turns: Turn, titles: list[Any] | None = None):
        self.turns: deque[Turn] = deque(turns)
        self.calls: list[dict[str, Any]] = []
        self.titles: deque[Any] = deque(titles or [])
        self.title_calls: list[str] = []
        # Set when a turn reaches its stall: everything before it has been handled.
        self.stalled = asyncio.Event()

    def add(self, *turns: Turn) -> None:
        self.turns.extend(turns)

    async def stream(
        self, *, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], context: Any = ()
    ) -> AsyncIterator[ModelEvent]:
        self.calls.append(
            {"system": system, "messages": copy.deepcopy(messages), "tools": tools, "context": copy.deepcopy(list(context))}
        )
        if not self.turns:
            raise AssertionError("the model was called more often than the test scripted")
        turn = self.turns.popleft()
        if turn.so_far is not None:
            yield UsageSoFar(turn.so_far)
        for step in turn.steps:
            if isinstance(step, asyncio.Event):
                self.stalled.set()
                await step.wait()
            elif isinstance(step, BaseException):
                raise step
            else:
                await asyncio.sleep(0)
                yield TextDelta(step)
        yield ModelReply(content=turn.content, stop_reason=turn.stop_reason, usage=turn.usage)

    async def title(self, text: str) -> str:
        self.title_calls.append(text)
        outcome = self.titles.popleft() if self.titles else "A title"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
