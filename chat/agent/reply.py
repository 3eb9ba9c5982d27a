"""One model call: its reply streamed to the user and stored as it grows.

The reply is stored unfinished at its first word, so its sequence can be announced, and
rewritten with the text so far at most every ``flush_interval`` seconds, so that a page
opened meanwhile, or a process that dies, still has it. The finished reply replaces it
with the provider's final content, usage and the context record. A reply that is cancelled
or fails keeps the text streamed so far and stays ``finished=False``.

Each call is charged to the run's ``Payer`` in the usage ledger, in the transaction that
stores what it produced: the finished reply, or what was kept of a cancelled one with the
usage known so far (its input as the provider reported it at the start, its output at least
what was streamed); a call cancelled before its first word, on its own.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any, AsyncIterator

from chat import history, metrics
from chat.agent import events
from chat.agent.events import Event
from chat.agent.providers.base import ModelReply, Provider, ProviderError, TextDelta, UsageSoFar, usage
from chat.db import db_async
from chat.message_manager import MessageManager
from chat.storage.database import StoredMessage
from chat.usage import ledger, prices
from chat.usage.ledger import Charge, Payer

EMPTY_TEXT = [{"type": "text", "text": ""}]


class StreamingReply:
    def __init__(
        self,
        mm: MessageManager,
        context: dict[str, Any],
        flush_interval: float,
        *,
        started: StoredMessage | None = None,
        payer: Payer | None = None,
        step: int = 1,
        model: str = "",
    ):
        self.mm = mm
        # Who the call is charged to, which call of the turn it is and the model answering.
        self.payer, self.step, self.model = payer, step, model
        # The call's usage as the provider reported it mid-stream (UsageSoFar).
        self.usage_so_far = usage()
        self.context = context
        self.flush_interval = flush_interval
        # The reply as stored so far: ``started`` is one stored already, empty and
        # unfinished (the turn service stores a turn's first reply with the user's message,
        # so its first word goes out without a write).
        self.stored = started
        self.sequence: int | None = started["sequence"] if started else None
        # The provider's whole reply, once it finished; None while streaming or if it failed.
        self.final: ModelReply | None = None
        # The streamed text of each content block, in pieces: appending to one growing
        # string would copy the whole reply on every delta.
        self._texts: dict[int, list[str]] = {}
        self._flushed_at = 0.0
        self.started = False  # the first word came

    def content(self) -> list[dict[str, Any]]:
        """What was streamed so far, as text blocks."""
        texts = {i: "".join(parts) for i, parts in self._texts.items()}
        blocks = [{"type": "text", "text": texts[i]} for i in sorted(texts) if texts[i]]
        return blocks or EMPTY_TEXT

    async def start(self) -> StoredMessage:
        """At the first word: the reply as stored, empty and unfinished (stored now if the
        turn did not store it already)."""
        self.started = True
        self._flushed_at = asyncio.get_running_loop().time()
        if self.stored is None:
            self.stored = await self.mm.add_assistant_message(EMPTY_TEXT, finished=False, context=self.context)
            self.sequence = self.stored["sequence"]
        return self.stored

    async def add(self, delta: TextDelta) -> None:
        assert self.sequence is not None, "start() the reply first"
        self._texts.setdefault(delta.index, []).append(delta.text)
        now = asyncio.get_running_loop().time()
        if now - self._flushed_at >= self.flush_interval:
            await self._update(content=self.content())
            self._flushed_at = now

    def _charge(self, used: dict[str, int], *, tool_calls: int = 0, partial: bool = False) -> Charge | None:
        if self.payer is None:
            return None
        return self.payer.reply(self.step, self.model, used, tool_calls=tool_calls, partial=partial)

    def partial_charge(self) -> Charge | None:
        """The call so far: what the provider reported, and at least the output streamed."""
        streamed = history.estimate_tokens(self.content()) if self._texts else 0
        used = {**self.usage_so_far, "output_tokens": max(self.usage_so_far.get("output_tokens", 0), streamed)}
        if not any(used.values()):
            return None  # the call never got going: nothing was used
        return self._charge(used, partial=True)

    async def keep_partial(self) -> StoredMessage | None:
        """Store what was streamed, unfinished: the reply was cancelled or failed. Before
        its first word nothing is kept: the reply the turn stored for it goes again. Either
        way the usage so far goes to the ledger."""
        charge = self.partial_charge()
        if self.sequence is None or not self.started:
            if self.sequence is not None:
                await self.mm.remove_last(self.sequence)
                self.stored = self.sequence = None
            if charge is not None:
                await db_async(ledger.record)(charge)
            return None
        return await self._update(content=self.content(), finished=False, charge=charge)

    async def finish(self, final: ModelReply) -> StoredMessage:
        content = final.content or EMPTY_TEXT
        tool_calls = sum(1 for block in content if block.get("type") == "tool_use")
        charge = self._charge(final.usage, tool_calls=tool_calls)
        # The reply's own usage, with what it cost (shown on hover).
        cost = charge.cost_micros if charge else prices.cost_micros(self.model, final.usage)
        used = {**final.usage, "cost_usd": prices.dollars(cost)}
        if self.sequence is None:
            stored = await self.mm.add_assistant_message(content, used, finished=True, context=self.context, charge=charge)
        else:
            stored = await self._update(content=content, usage=used, context=self.context, finished=True, charge=charge)
        self.final = final
        return stored

    async def _update(self, **changes: Any) -> StoredMessage:
        assert self.sequence is not None
        self.stored = await self.mm.update_message(self.sequence, known=self.stored, **changes)
        return self.stored


async def stream_reply(
    reply: StreamingReply,
    provider: Provider,
    *,
    system: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    context: list[dict[str, Any]],
) -> AsyncIterator[Event]:
    """Call the model and yield ``message`` (the reply started), ``text_delta``s and
    ``message`` (the reply finished), or an ``error`` if the call failed.

    Afterwards ``reply.final`` holds the model's reply, or None after an error.
    """
    final: ModelReply | None = None
    started_at = time.perf_counter()
    stream = provider.stream(system=system, messages=messages, tools=tools, context=context)
    try:
        # aclosing: leaving early (cancelled, closed) must close the HTTP stream now, not
        # whenever the generator is garbage-collected.
        async with aclosing(stream):
            async for item in stream:
                if isinstance(item, ModelReply):
                    final = item
                    continue
                if isinstance(item, UsageSoFar):
                    reply.usage_so_far = item.usage
                    continue
                if not reply.started:
                    yield events.message(await reply.start())
                await reply.add(item)
                yield events.text_delta(item.text, reply.sequence)  # type: ignore[arg-type]
        if final is None:
            raise ProviderError("model_error", "The model ended its reply without finishing it.", retryable=True)
        metrics.model_call(provider.name, time.perf_counter() - started_at, final.usage)
        stored = await reply.finish(final)
    except ProviderError as exc:
        metrics.MODEL_ERRORS.labels(provider.name, exc.code).inc()
        kept = await reply.keep_partial()
        if kept is not None:
            yield events.message(kept)  # what the user saw stream is what is stored
        yield events.error(exc.code, exc.message, retryable=exc.retryable)
        return
    except BaseException:
        # Cancelled, closed or broken: keep what was streamed. Shielded, so a second
        # cancellation cannot stop the save halfway.
        await asyncio.shield(reply.keep_partial())
        raise
    yield events.message(stored)
