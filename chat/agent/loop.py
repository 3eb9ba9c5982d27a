"""The agent loop: model call, tools, model call… until the model is done or must wait.

``run_turn`` is an async generator of ``chat.agent.events``. It answers the conversation
as stored: the turn service (``chat.runs.turns``) has just stored what the user sent (a
message, or the answer to the question a turn paused on) and claimed the chat for this
run; the loop only loops. It pauses on an interactive tool, storing the loop state.

A run ends with exactly one ``complete``, ``awaiting_user_input`` or ``error`` event, or
raises ``CancelledError``.

Every message is stored through the MessageManager before the event that announces it.
The reply being streamed is stored unfinished at its first word and rewritten with the
text so far at most every ``flush_interval`` seconds; a reply that is cancelled or fails
keeps what was streamed and stays ``finished=False``. A tool_use whose results never got
stored is answered with an error result when the history is next sent (``chat.history``).

Every model call is charged to the run's ``payer`` (``chat.usage.ledger``). Before each
call after the run's first, ``allowance`` (``chat.usage.quotas``) may stop the run: a run
that crossed its user's quota finishes the reply it was writing (its tools answered) and
stops there.

Consume a run inside ``contextlib.aclosing(...)``: a consumer that stops early then closes
the generator at once, which stores what was streamed, instead of whenever it is
garbage-collected.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from django.conf import settings

from chat.agent import events
from chat.agent.events import Event
from chat.agent.prompts import SYSTEM_PROMPT
from chat.agent.providers.base import ModelReply, Provider, add_usage, usage
from chat.agent.reply import StreamingReply, stream_reply
from chat.compaction import compact_if_needed
from chat.errors import OUTAGES, ContextTooLong
from chat.message_manager import MessageManager
from chat.storage.database import StoredMessage
from chat.usage.ledger import Payer
from tools.executor import error_result, execute_tools
from tools.registry import ToolRegistry

logger = logging.getLogger(__name__)


# Asked before each model call after a run's first: an ``error`` event stops the run.
Allowance = Callable[[], Awaitable["Event | None"]]


@dataclass(frozen=True)
class _Config:
    system: str
    max_steps: int
    token_budget: int
    tool_timeout: float
    flush_interval: float
    payer: Payer | None = None
    allowance: Allowance | None = None


def run_turn(
    message_manager: MessageManager,
    provider: Provider,
    tools: ToolRegistry,
    *,
    step: int = 0,
    reply: StoredMessage | None = None,
    system: str | None = None,
    max_steps: int | None = None,
    token_budget: int | None = None,
    tool_timeout: float | None = None,
    flush_interval: float | None = None,
    payer: Payer | None = None,
    allowance: Allowance | None = None,
) -> AsyncIterator[Event]:
    """Answer the conversation, whose newest message is the user's turn.

    ``step`` is the number of model calls the turn made before it paused on a question
    (the step limit counts the whole turn); ``reply`` is the reply the turn service stored
    for the first model call to write into (empty and unfinished). ``payer``: who the
    calls are charged to (default: the manager's user, unbilled, a run id of its own).
    """
    user_id = getattr(message_manager.user, "pk", None)
    if payer is None and user_id is not None:
        payer = Payer(user_id=user_id, session_id=_uuid_or_none(message_manager.session_id), run_id=uuid.uuid4())
    config = _Config(
        system=system or SYSTEM_PROMPT,
        max_steps=max_steps or settings.AGENT_MAX_STEPS,
        token_budget=token_budget or settings.CHAT_CONTEXT_TOKENS,
        tool_timeout=tool_timeout or settings.AGENT_TOOL_TIMEOUT,
        flush_interval=settings.AGENT_STREAM_FLUSH_INTERVAL if flush_interval is None else flush_interval,
        payer=payer,
        allowance=allowance,
    )
    return _steps(message_manager, provider, tools, config, step=step, reply=reply)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _steps(
    mm: MessageManager, provider: Provider, tools: ToolRegistry, config: _Config, *, step: int, reply: StoredMessage | None
) -> AsyncIterator[Event]:
    """Call the model and run its tools until it is done, asks the user, fails or reaches
    the step limit. ``step`` is the number of model calls this turn made already."""
    total = usage()
    first_step = step
    try:
        while True:
            if step > first_step and config.allowance is not None:
                refused = await config.allowance()
                if refused is not None:
                    yield refused
                    return
            if step >= config.max_steps:
                yield events.error(
                    "step_limit",
                    f"Stopped after {config.max_steps} model calls in one turn, so that a loop cannot "
                    "run on for ever. Send a message to continue.",
                    retryable=False,
                )
                return
            step += 1
            started, reply = reply, None
            before = started["sequence"] if started else None
            try:
                await mm.load(config.token_budget, before=before)
                async with aclosing(compact_if_needed(mm, provider, budget=config.token_budget, before=before, payer=config.payer)) as compacting:
                    async for event in compacting:
                        yield event
            except ContextTooLong as exc:
                if started is not None:
                    await mm.remove_last(started["sequence"])  # the reply that will not be written
                yield events.error(exc.code, exc.message, retryable=False)
                return
            writing = StreamingReply(
                mm,
                {**mm.context_record(), "token_budget": config.token_budget},
                config.flush_interval,
                started=started,
                payer=config.payer,
                step=step,
                model=provider.model,
            )
            streamed = stream_reply(
                writing,
                provider,
                system=config.system,
                messages=mm.to_api_messages(),
                tools=tools.api_schemas(),
                context=mm.call_context(),
            )
            async with aclosing(streamed):
                async for event in streamed:
                    yield event
            final = writing.final
            if final is None:
                return  # the call failed; its error event went out
            total = add_usage(total, final.usage)
            if not any(block.get("type") == "tool_use" for block in final.content):
                yield events.complete(final.stop_reason, total)
                return
            async with aclosing(_answer_tools(mm, tools, final, config, step)) as answered:
                async for event in answered:
                    yield event
                    if event["type"] == "awaiting_user_input":
                        return
    except OUTAGES:
        raise  # the run says the service is away: not a failure of the loop
    except Exception:
        logger.exception("agent loop failed (session %s)", mm.session_id)
        yield events.error(
            "internal_error", "Something went wrong on our side. What was said so far is kept.", retryable=True
        )


async def _answer_tools(
    mm: MessageManager, tools: ToolRegistry, final: ModelReply, config: _Config, step: int
) -> AsyncIterator[Event]:
    """Run the reply's tool calls and store their results in one message; or, if one asks
    the user, store them in the loop state and end with ``awaiting_user_input``."""
    tool_uses = [block for block in final.content if block.get("type") == "tool_use"]
    for block in tool_uses:
        yield events.tool_use(block)
    results: list[dict[str, Any]] = []
    if final.stop_reason == "max_tokens":
        # The last call may have been cut off mid-input: run none of them.
        results = [error_result(b["id"], "The reply was cut off before this call was complete.") for b in tool_uses]
    else:
        async with aclosing(_run_tools(mm, tools, tool_uses, config, results)) as tool_events:
            async for event in tool_events:
                yield event
    paused = await _pause_if_asked(mm, tool_uses, results, step)
    if paused is None:
        yield events.message(await mm.add_tool_results(results))
    for block in results:
        if paused is None or block["tool_use_id"] != paused["tool_use_id"]:
            for event in events.for_result(block):
                yield event
    if paused is not None:
        yield events.awaiting_user_input(paused)


async def _run_tools(
    mm: MessageManager,
    tools: ToolRegistry,
    tool_uses: list[dict[str, Any]],
    config: _Config,
    results: list[dict[str, Any]],
) -> AsyncIterator[Event]:
    """Run the calls, yielding the events the tools emit as they come; fill ``results``."""
    queue: asyncio.Queue[Event] = asyncio.Queue()

    async def emit(event: Event) -> None:
        queue.put_nowait(event)

    task = asyncio.ensure_future(
        execute_tools(tool_uses, tools, session_id=mm.session_id, user=mm.user, emit=emit, timeout=config.tool_timeout)
    )
    try:
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        results.extend(task.result())
    except BaseException:
        # Let the tools finish their own cleanup (an artifact marked failed) before leaving.
        task.cancel()
        await asyncio.wait({task})
        raise


async def _pause_if_asked(
    mm: MessageManager, tool_uses: list[dict[str, Any]], results: list[dict[str, Any]], step: int
) -> dict[str, Any] | None:
    """Store the loop state if a result asks the user; returns it, or None to go on.

    Only one question can be open: any further one in the same turn is answered with an
    error the model can read, as is one without a usable question.
    """
    asked: dict[str, Any] | None = None
    for index, block in enumerate(results):
        if not block.get("requires_user_input"):
            continue
        data = block.get("interactive_data") or {}
        question, options = data.get("question"), data.get("options")
        if asked is not None:
            results[index] = error_result(
                block["tool_use_id"], "Only one question can be asked at a time; ask it again after the answer."
            )
        elif not isinstance(question, str) or not isinstance(options, list) or not options:
            results[index] = error_result(block["tool_use_id"], "The question had no options to choose from.")
        else:
            asked = {"tool_use_id": block["tool_use_id"], "question": question, "options": options}
    if asked is None:
        return None
    names = {use["id"]: use["name"] for use in tool_uses}
    state = {**asked, "tool_name": names[asked["tool_use_id"]], "step": step, "pending_results": results}
    await mm.save_loop_state(state)
    return state
