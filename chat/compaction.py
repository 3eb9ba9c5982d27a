"""Compaction: the oldest turns of a long chat replaced, for the model only, by a summary.

The owner of the rule "when and where to compact" (DESIGN.md, the conversation model).
``MessageManager.load`` says when (``needs_compaction``: the prompt would pass
``CHAT_COMPACT_AT`` of the budget); this module chooses the cut, asks the model for the
summary and stores it (``chat.models.Summary``). Two tiers, cheapest first: old tool
results are stubbed on every call (``chat.history.with_stubs``), and only when that is not
enough is a summary written.

The cut is at a turn's start, before the newest turns that fit ``CHAT_COMPACT_KEEP`` of
the budget (the newest turn always stays whole, with its tool pairs and any question it
paused on). The summary folds in the one before it, covers the path from its first
message, and is sent byte for byte the same on every call until the next compaction, so
that the provider's prompt cache keeps hitting in between.

A compaction that fails (the model is away) leaves the chat as it was: the call goes on
with the coarse cut, and the next call tries again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, AsyncIterator

from django.conf import settings

from chat import history
from chat.agent import events
from chat.agent.events import Event
from chat.agent.prompts import SUMMARY_PROMPT, SUMMARY_REQUEST
from chat.agent.providers.base import Provider, ProviderError, usage
from chat.errors import ContextTooLong
from chat.message_manager import MessageManager
from chat.models import UsageRecord
from chat.usage.ledger import Payer

logger = logging.getLogger(__name__)


def summary_budget(budget: int) -> int:
    """The most tokens a summary may take: a fifth of the budget, at most the setting."""
    return max(1, min(settings.CHAT_SUMMARY_MAX_TOKENS, budget // 5))


async def compact(
    mm: MessageManager,
    provider: Provider,
    *,
    budget: int,
    before: int | None = None,
    keep_tokens: int | None = None,
    payer: Payer | None = None,
) -> dict[str, Any] | None:
    """Summarise the active path up to the newest turns that fit ``keep_tokens`` (default
    ``CHAT_COMPACT_KEEP`` of ``budget``; 0: all but the newest turn), not counting message
    ``before`` (the reply being written) or any after it. Returns the stored summary, or
    None if there was nothing before the newest turn to summarise. Raises ProviderError.
    The call is charged to ``payer`` (kind ``summary``), with the summary it wrote.
    """
    keep = int(settings.CHAT_COMPACT_KEEP * budget) if keep_tokens is None else keep_tokens
    previous = await mm.storage.summary_on_path(mm.session_id, before=before)
    covered = previous["last_cumulative"] if previous else 0
    # Everything after the previous summary, but never more than a model call can read.
    reach = max(1, min(mm.path_tokens - covered, 2 * budget)) if mm.path_tokens else 2 * budget
    messages = await mm.storage.load_within_budget(mm.session_id, reach)
    messages = [
        m
        for m in messages
        if (before is None or m["sequence"] < before) and (previous is None or m["sequence"] > previous["last_sequence"])
    ]
    cut = history.compaction_cut(messages, keep)
    if cut is None:
        return None
    folded = history.drop_to_turn_start(messages[:cut])
    if not folded:
        return None
    max_tokens = summary_budget(budget)
    request = [
        *([history.summary_message(previous["text"])] if previous else []),
        *history.with_stubs(folded, history.stub_line(folded, mm.keep_turns, mm.cut_step)),
        {"role": "user", "content": SUMMARY_REQUEST.format(words=max_tokens * 3 // 4)},
    ]
    reply = await provider.summarize(system=SUMMARY_PROMPT, messages=history.to_api_messages(request), max_tokens=max_tokens)
    text = "".join(block.get("text", "") for block in reply.content if block.get("type") == "text").strip()
    if not text:
        raise ProviderError("model_error", "The model wrote an empty summary.", retryable=True)
    last, summary_id = folded[-1], uuid.uuid4()
    charge = None
    if payer is not None:
        charge = payer.call(UsageRecord.Kind.SUMMARY, f"summary:{summary_id}", provider.model, reply.usage)
    summary = await mm.storage.save_summary(
        mm.session_id,
        charge=charge,
        id=summary_id,
        branch=last["branch"],
        first_sequence=1,
        last_sequence=last["sequence"],
        last_cumulative=last["cumulative_tokens"],
        text=text,
        tokens=history.summary_tokens(text),
        model=provider.model,
        usage=reply.usage,
        previous_id=previous["id"] if previous else None,
    )
    mm.use_summary(summary)
    return summary


async def compact_if_needed(
    mm: MessageManager, provider: Provider, *, budget: int, before: int | None, payer: Payer | None = None
) -> AsyncIterator[Event]:
    """Before a model call: compact if the last ``load`` asked for it, then load again.
    Yields the ``summary`` event of a compaction; a failed one is logged and the call goes
    on with what ``load`` chose."""
    if not mm.needs_compaction:
        return
    try:
        summary = await compact(mm, provider, budget=budget, before=before, payer=payer)
    except ProviderError as exc:
        logger.warning("compaction of session %s failed: %s", mm.session_id, exc.message)
        return
    if summary is None:
        return
    yield events.summary(summary)
    await mm.load(budget, before=before)


async def run_compaction(
    mm: MessageManager, provider: Provider, *, budget: int | None = None, payer: Payer | None = None
) -> AsyncIterator[Event]:
    """A compaction the user asked for (the Compact button, ``/compact``): everything
    before the newest turn is summarised. Ends with ``complete`` (stop reason
    ``compacted``, or ``nothing_to_compact``) or an ``error``."""
    budget = budget or settings.CHAT_CONTEXT_TOKENS
    try:
        await mm.load(budget)
        summary = await compact(mm, provider, budget=budget, keep_tokens=0, payer=payer)
    except ContextTooLong as exc:  # no summary makes room for a newest turn of that size
        yield events.error(exc.code, exc.message, retryable=False)
        return
    except ProviderError as exc:
        yield events.error(exc.code, exc.message, retryable=exc.retryable)
        return
    if summary is None:
        yield events.complete("nothing_to_compact", usage())
        return
    yield events.summary(summary)
    yield events.complete("compacted", summary["usage"] or usage())


async def context_state(session_id: Any, user: Any, storage: Any) -> dict[str, Any]:
    """What the context meter shows: the next prompt's tokens (the summary, and the
    messages after it with their stubs, as the next call would send them) against the
    budget and the point where compaction happens; and the summary the chat shows as its
    divider."""
    budget = settings.CHAT_CONTEXT_TOKENS
    mm = MessageManager(session_id, user, storage)
    try:
        await mm.load(budget)
        prompt_tokens = mm.prompt_tokens
    except ContextTooLong as exc:  # the newest turn alone: more than the window
        prompt_tokens = exc.turn_tokens
    summary = mm.known_summary
    return {
        "window": budget,
        "compact_at": int(settings.CHAT_COMPACT_AT * budget) or None,
        "prompt_tokens": prompt_tokens,
        "path_tokens": mm.path_tokens,
        "summary": None if summary is None else {key: summary[key] for key in SUMMARY_FIELDS},
    }


SUMMARY_FIELDS = ("id", "branch", "first_sequence", "last_sequence", "tokens", "model", "text", "created_at")
