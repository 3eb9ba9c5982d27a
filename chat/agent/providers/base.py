"""The one interface the agent loop talks to a model through.

``Provider.stream`` takes API-clean messages (``chat.history`` made them valid and
stripped our keys) and yields ``TextDelta``s as the reply is written (and, if it knows
them, ``UsageSoFar``s), then exactly one ``ModelReply``. Every failure it cannot recover from is a ``ProviderError`` with a code the
UI can show and whether trying again later may help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncIterator, Union


@dataclass(frozen=True)
class TextDelta:
    text: str
    # Which content block of the reply the text extends.
    index: int = 0


@dataclass(frozen=True)
class ModelReply:
    # API content blocks: text and tool_use (and thinking, if a provider sends it).
    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int]


@dataclass(frozen=True)
class UsageSoFar:
    """The usage of the call as far as the provider knows it mid-stream (its input at the
    start, its output as it grows): what a cancelled call is charged."""

    usage: dict[str, int]


ModelEvent = Union[TextDelta, UsageSoFar, ModelReply]


class TitleReply(str):
    """A title as the model wrote it, with the call's model and usage (for the ledger)."""

    model: str
    usage: dict[str, int]

    def __new__(cls, text: str, model: str, usage: dict[str, int]) -> TitleReply:
        reply = super().__new__(cls, text)
        reply.model, reply.usage = model, usage
        return reply


class ProviderError(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


def usage(
    input_tokens: int = 0, output_tokens: int = 0, cache_read_tokens: int = 0, cache_write_tokens: int = 0
) -> dict[str, int]:
    """Token usage of one model call, in the shape stored on assistant messages."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
    }


def add_usage(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {key: total.get(key, 0) + more.get(key, 0) for key in usage()}


class Provider(ABC):
    # Short machine name ("anthropic", "offline") and what the UI tells the user.
    name: str
    display_name: str
    model: str

    @abstractmethod
    def stream(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        context: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> AsyncIterator[ModelEvent]:
        """Yield ``TextDelta``s, then one ``ModelReply``; raise ``ProviderError`` on failure.

        ``context``: text blocks about this call only (the current time), which go after
        the history, in its last user message: a provider with a prompt cache places its
        breakpoint on the history's last block, before them, so that the next call can
        read what this one cached.
        """

    async def summarize(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> ModelReply:
        """A summary of ``messages`` (API-clean, ending with the request for it) as the
        reply's text; raises ``ProviderError``. By default: one streamed call without tools."""
        final: ModelReply | None = None
        async for item in self.stream(system=system, messages=messages, tools=[]):
            if isinstance(item, ModelReply):
                final = item
        if final is None:
            raise ProviderError("model_error", "The model ended its summary without finishing it.", retryable=True)
        return final

    @abstractmethod
    async def title(self, text: str) -> str:
        """A short title for a chat that begins with ``text``; raises ``ProviderError``.
        A ``TitleReply`` carries the call's usage for the ledger."""

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        return None


def with_context(messages: list[dict[str, Any]], context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the ``context`` blocks added to the last (user) message."""
    if not context or not messages or messages[-1]["role"] != "user":
        return messages
    *rest, last = messages
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return [*rest, {**last, "content": [*content, *context]}]
