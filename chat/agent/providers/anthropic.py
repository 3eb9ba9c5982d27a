"""Claude through the anthropic SDK's async streaming Messages API.

Retries are ours, not the SDK's (it is built with ``max_retries=0``): the SDK retries only
a request that failed before its stream began, while a stream can also fail later (an
``overloaded_error`` event, a dropped connection). One loop covers both: any failure before
the first streamed word is retried with exponential backoff, honouring ``retry-after``;
after a word reached the user, a retry would show a different reply, so the call fails
with a retryable ``stream_interrupted`` error instead.

Prompt caching: the system prompt (and the tools before it) carry one cache breakpoint,
the conversation a second (see ``MessageManager.to_api_messages``), so each call reads
what the previous one wrote.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, AsyncIterator, Awaitable, Callable

import anthropic
import httpx2
from django.conf import settings

from chat.agent.prompts import TITLE_PROMPT
from chat.agent.providers.base import (
    ModelEvent,
    ModelReply,
    Provider,
    ProviderError,
    TextDelta,
    TitleReply,
    UsageSoFar,
    usage,
    with_context,
)
from chat.attachments import blocks

logger = logging.getLogger(__name__)

EPHEMERAL = {"type": "ephemeral"}
TITLE_MAX_TOKENS = 30
_MESSAGES = {
    "rate_limited": "Claude is receiving too many requests from this site right now. Try again in a minute.",
    "model_overloaded": "Claude is overloaded right now. Try again in a little while.",
    "model_unavailable": "Claude's API is failing right now. Try again in a little while.",
    "model_unreachable": "Claude's API could not be reached. Try again in a little while.",
    "stream_interrupted": "The connection to Claude broke off in the middle of the reply. Try again.",
    "model_auth": "The Anthropic API key was refused. The site's administrator must fix ANTHROPIC_API_KEY.",
    "model_rejected": "Claude refused the request",
}


def _usage(u: Any) -> dict[str, int]:
    return usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_read_tokens=getattr(u, "cache_read_input_tokens", None) or 0,
        cache_write_tokens=getattr(u, "cache_creation_input_tokens", None) or 0,
    )


class _StreamCut(Exception):
    """The response ended without ``message_stop``."""


def with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with a cache breakpoint on the last block: the whole history is the prefix
    the next call (one turn later) starts with."""
    if not messages:
        return messages
    *rest, last = messages
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return [*rest, {**last, "content": [*content[:-1], {**content[-1], "cache_control": EPHEMERAL}]}]


def _api_block(block: Any) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input or {}}
    return block.to_dict(mode="json")


def _error_type(exc: anthropic.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("type")
    return None


def classify(exc: BaseException) -> ProviderError:
    """The ProviderError for a failure of the SDK or the connection."""
    if isinstance(exc, _StreamCut):
        code = "stream_interrupted"
    elif isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
        code = "model_unreachable"
    elif isinstance(exc, anthropic.APIStatusError):
        status, error_type = exc.status_code, _error_type(exc)
        if status == 429 or error_type == "rate_limit_error":
            code = "rate_limited"
        elif status == 529 or error_type == "overloaded_error":
            code = "model_overloaded"
        elif status >= 500 or error_type == "api_error":
            code = "model_unavailable"
        elif status in (401, 403):
            return ProviderError("model_auth", _MESSAGES["model_auth"], retryable=False)
        else:
            return ProviderError("model_rejected", f"{_MESSAGES['model_rejected']}: {exc.message}", retryable=False)
    else:
        return ProviderError("model_error", f"The call to Claude failed: {exc}", retryable=False)
    return ProviderError(code, _MESSAGES[code], retryable=True)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, TypeError, ValueError):
            continue
    return None


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        max_tokens: int,
        base_url: str | None = None,
        title_model: str | None = None,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.model = model
        self.title_model = title_model or model
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.display_name = f"Claude ({model})"
        # Injected so tests can see the waits without waiting.
        self._sleep = sleep
        self.client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

    @classmethod
    def from_settings(cls) -> AnthropicProvider:
        return cls(
            api_key=settings.ANTHROPIC_API_KEY,
            model=settings.ANTHROPIC_MODEL,
            max_tokens=settings.ANTHROPIC_MAX_TOKENS,
            base_url=settings.ANTHROPIC_BASE_URL,
            title_model=settings.ANTHROPIC_TITLE_MODEL,
            max_retries=settings.ANTHROPIC_MAX_RETRIES,
            retry_base_delay=settings.ANTHROPIC_RETRY_BASE_DELAY,
            retry_max_delay=settings.ANTHROPIC_RETRY_MAX_DELAY,
            timeout=settings.ANTHROPIC_TIMEOUT,
        )

    def request(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        context: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """The Messages API request body (less ``stream``)."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            # The breakpoint on the system prompt also caches the tools, which come before it.
            "system": [{"type": "text", "text": system, "cache_control": EPHEMERAL}],
            # The call's context goes after the history's breakpoint: it differs on every
            # call (the time), and a breakpoint after it would cache a prefix no later call
            # could read.
            "messages": with_context(with_cache_breakpoint(messages), list(context)),
        }
        if tools:
            body["tools"] = tools
        return body

    def retry_delay(self, attempt: int, exc: BaseException) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        delay = _retry_after(exc)
        if delay is None:
            # Jitter spreads out the retries of many runs that failed at the same moment.
            delay = self.retry_base_delay * 2**attempt * random.uniform(0.75, 1.0)
        return min(delay, self.retry_max_delay)

    async def stream(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        context: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> AsyncIterator[ModelEvent]:
        if any(blocks.attachments_in(m["content"]) for m in messages):
            # The files, read from the storage off the event loop: base64 images and PDFs
            # and text documents where they were sent, inside the cached prefix (the
            # history's breakpoint is on its last block, after them), the same bytes on
            # every call so that the prefix stays byte-identical.
            messages = await asyncio.to_thread(blocks.for_api, messages)
        request = self.request(system=system, messages=messages, tools=tools, context=context)
        attempt = 0
        while True:
            streamed = False
            try:
                async with self.client.messages.stream(**request) as stream:
                    stopped = False
                    async for event in stream:
                        if event.type == "content_block_delta" and event.delta.type == "text_delta":
                            streamed = True
                            yield TextDelta(event.delta.text, event.index)
                        elif event.type in ("message_start", "message_delta"):
                            yield UsageSoFar(_usage(stream.current_message_snapshot.usage))
                        elif event.type == "message_stop":
                            stopped = True
                    if not stopped:
                        raise _StreamCut()
                    message = stream.current_message_snapshot
            except (anthropic.APIError, httpx2.TransportError, _StreamCut) as exc:
                error = classify(exc)
                if streamed and error.retryable:
                    raise ProviderError("stream_interrupted", _MESSAGES["stream_interrupted"], retryable=True) from exc
                if not error.retryable or attempt >= self.max_retries:
                    logger.warning("model call failed after %d attempt(s): %s", attempt + 1, exc)
                    raise error from exc
                delay = self.retry_delay(attempt, exc)
                logger.info("model call failed (%s), retry %d in %.1fs", error.code, attempt + 1, delay)
                attempt += 1
                await self._sleep(delay)
                continue
            yield ModelReply(
                content=[_api_block(block) for block in message.content],
                stop_reason=message.stop_reason or "end_turn",
                usage=_usage(message.usage),
            )
            return

    async def summarize(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> ModelReply:
        """One call, not streamed (nobody watches it being written), retried like a turn's."""
        attempt = 0
        while True:
            try:
                message = await self.client.messages.create(
                    model=self.model, max_tokens=max_tokens, system=system, messages=messages
                )
                break
            except (anthropic.APIError, httpx2.TransportError) as exc:
                error = classify(exc)
                if not error.retryable or attempt >= self.max_retries:
                    raise error from exc
                await self._sleep(self.retry_delay(attempt, exc))
                attempt += 1
        u = message.usage
        return ModelReply(
            content=[_api_block(block) for block in message.content],
            stop_reason=message.stop_reason or "end_turn",
            usage=usage(
                input_tokens=u.input_tokens or 0,
                output_tokens=u.output_tokens or 0,
                cache_read_tokens=u.cache_read_input_tokens or 0,
                cache_write_tokens=u.cache_creation_input_tokens or 0,
            ),
        )

    async def title(self, text: str) -> TitleReply:
        try:
            message = await self.client.messages.create(
                model=self.title_model,
                max_tokens=TITLE_MAX_TOKENS,
                system=TITLE_PROMPT,
                messages=[{"role": "user", "content": text[:4000]}],
            )
        except (anthropic.APIError, httpx2.TransportError) as exc:
            raise classify(exc) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        return TitleReply(text, self.title_model, _usage(message.usage))

    async def aclose(self) -> None:
        await self.client.close()
