"""The agent loop: model call, tools, model call… until the model is done or must wait.

Both entry points are async generators of ``chat.agent.events``:

- ``run_agent_loop`` answers the conversation (optionally storing a new user message first);
- ``resume_agent_loop`` completes a turn paused on an interactive tool with the user's
  answer, then goes on.

A run ends with exactly one ``complete``, ``awaiting_user_input`` or ``error`` event, or
raises ``CancelledError``. ``UserError`` comes out of the first iteration, before any event,
when the request cannot be done; nothing was changed then.

Every message is stored through the MessageManager before the event that announces it.
The reply being streamed is stored unfinished at its first word and rewritten with the
text so far at most every ``flush_interval`` seconds; a reply that is cancelled or fails
keeps what was streamed and stays ``finished=False``. A tool_use whose results never got
stored is answered with an error result when the history is next sent (``chat.history``).

Consume a run inside ``contextlib.aclosing(...)``: a consumer that stops early then closes
the generator at once, which stores what was streamed, instead of whenever it is
garbage-collected.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator

from django.conf import settings

from chat import services
from chat.agent import events
from chat.agent.events import Event
from chat.agent.prompts import SYSTEM_PROMPT
from chat.agent.providers.base import ModelReply, Provider, add_usage, usage
from chat.agent.reply import StreamingReply, stream_reply
from chat.errors import UserError
from chat.message_manager import MessageManager
from tools.executor import error_result, execute_tools
from tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

MAX_ANSWER_LENGTH = 10_000


@dataclass(frozen=True)
class _Config:
    system: str
    max_steps: int
    token_budget: int
    tool_timeout: float
    flush_interval: float


def _config(
    system: str | None,
    max_steps: int | None,
    token_budget: int | None,
    tool_timeout: float | None,
    flush_interval: float | None,
) -> _Config:
    return _Config(
        system=system or SYSTEM_PROMPT,
        max_steps=max_steps or settings.AGENT_MAX_STEPS,
        token_budget=token_budget or settings.CHAT_CONTEXT_TOKENS,
        tool_timeout=tool_timeout or settings.AGENT_TOOL_TIMEOUT,
        flush_interval=settings.AGENT_STREAM_FLUSH_INTERVAL if flush_interval is None else flush_interval,
    )


async def run_agent_loop(
    message_manager: MessageManager,
    provider: Provider,
    tools: ToolRegistry,
    *,
    user_message: str | list[dict[str, Any]] | None = None,
    client_id: str | None = None,
    system: str | None = None,
    max_steps: int | None = None,
    token_budget: int | None = None,
    tool_timeout: float | None = None,
    flush_interval: float | None = None,
) -> AsyncIterator[Event]:
    """Answer the conversation, after storing ``user_message`` if one is given.

    A ``user_message`` whose ``client_id`` is already stored is acknowledged again and
    answered only if nothing followed it yet (the earlier run died before replying).
    Raises UserError (nothing changed) if the chat is someone else's (NotFound), it is
    waiting for an answer to a question (use ``resume_agent_loop``), the message is empty,
    or there is nothing to answer.
    """
    config = _config(system, max_steps, token_budget, tool_timeout, flush_interval)
    mm = message_manager
    await services.acheck_owner(mm.user, mm.session_id)
    if await mm.load_loop_state() is not None:
        raise UserError("awaiting_input", "Answer the open question first: pick an option or type your answer.")
    if user_message is not None:
        if isinstance(user_message, str) and not user_message.strip():
            raise UserError("empty_message", "The message is empty.")
        stored = await mm.add_user_message(user_message, client_id=client_id)
        yield events.message(stored)
        await mm.load(config.token_budget)
        if mm.messages and mm.messages[-1]["sequence"] > stored["sequence"]:
            yield events.complete("already_answered", usage())
            return
    else:
        await mm.load(config.token_budget)
        if not mm.messages or mm.messages[-1]["role"] != "user":
            raise UserError("nothing_to_answer", "There is no new message to answer.")
    async with aclosing(_steps(mm, provider, tools, config, step=0, loaded=True)) as steps:
        async for event in steps:
            yield event


async def resume_agent_loop(
    message_manager: MessageManager,
    provider: Provider,
    tools: ToolRegistry,
    *,
    tool_use_id: str,
    choice: str | None = None,
    text: str | None = None,
    client_id: str | None = None,
    system: str | None = None,
    max_steps: int | None = None,
    token_budget: int | None = None,
    tool_timeout: float | None = None,
    flush_interval: float | None = None,
) -> AsyncIterator[Event]:
    """Answer the open question with one of its options (``choice``) or with ``text`` the
    user typed instead, store every tool result of that turn in one message, and go on.
    A typed answer's ``client_id`` is stored on that message: its ``message`` event then
    acknowledges the typed text, and a resend of it is not stored twice.

    Raises UserError (nothing changed) if the chat is someone else's (NotFound), nothing
    is pending, ``tool_use_id`` is not the open question, the choice is not among the
    options, or the answer is empty.
    """
    config = _config(system, max_steps, token_budget, tool_timeout, flush_interval)
    mm = message_manager
    await services.acheck_owner(mm.user, mm.session_id)
    state, answer = await _claim(mm, tool_use_id, choice, text)
    results = []
    for block in state["pending_results"]:
        if block["tool_use_id"] == state["tool_use_id"]:
            block = {k: v for k, v in block.items() if k != "requires_user_input"}
            block["content"] = answer
        results.append(block)
    try:
        stored = await mm.add_tool_results(results, client_id=client_id)
    except BaseException:
        # The answer was not stored: put the question back so it can be answered again.
        await asyncio.shield(mm.save_loop_state(state))
        raise
    yield events.message(stored)
    for block in results:
        if block["tool_use_id"] == state["tool_use_id"]:
            yield events.tool_result(block)
    async with aclosing(_steps(mm, provider, tools, config, step=state.get("step") or 0)) as steps:
        async for event in steps:
            yield event


async def pending_question(message_manager: MessageManager) -> Event | None:
    """The open question as an ``awaiting_user_input`` event, or None (for ``ready``)."""
    state = await message_manager.load_loop_state()
    return events.awaiting_user_input(state) if state else None


async def _claim(mm: MessageManager, tool_use_id: str, choice: Any, text: Any) -> tuple[dict[str, Any], str]:
    """Check an answer against the open question and take the question for it."""
    state = await mm.load_loop_state()
    if state is None:
        raise UserError("not_awaiting_input", "This chat is not waiting for an answer.")
    if tool_use_id != state["tool_use_id"]:
        raise UserError("unknown_question", "That question is not the one this chat is waiting on.")
    if (choice is None) == (text is None):
        raise UserError("invalid_answer", "Answer with either one of the options or a text, not both or neither.")
    if choice is not None:
        if not isinstance(choice, str) or choice not in state["options"]:
            raise UserError("invalid_choice", "That choice is not one of the options.")
        answer = f"User selected: {choice}"
    else:
        if not isinstance(text, str) or not text.strip():
            raise UserError("invalid_answer", "The answer is empty.")
        if len(text) > MAX_ANSWER_LENGTH:
            raise UserError("invalid_answer", f"The answer can be at most {MAX_ANSWER_LENGTH} characters.")
        answer = f"User replied: {text.strip()}"
    # Deleting the state is the claim: of two answers sent at once, only one deletes it.
    if not await mm.clear_loop_state():
        raise UserError("not_awaiting_input", "This question was already answered.")
    return state, answer


async def _steps(
    mm: MessageManager, provider: Provider, tools: ToolRegistry, config: _Config, *, step: int, loaded: bool = False
) -> AsyncIterator[Event]:
    """Call the model and run its tools until it is done, asks the user, fails or reaches
    the step limit. ``step`` is the number of model calls this turn made already;
    ``loaded``: the history was loaded just now, with nothing stored since."""
    total = usage()
    try:
        while True:
            if step >= config.max_steps:
                yield events.error(
                    "step_limit",
                    f"Stopped after {config.max_steps} model calls in one turn, so that a loop cannot "
                    "run on for ever. Send a message to continue.",
                    retryable=False,
                )
                return
            step += 1
            if not loaded:
                await mm.load(config.token_budget)
            loaded = False
            if not mm.messages:
                yield events.error(
                    "context_too_small",
                    "The newest message is larger than the context budget; it cannot be sent to the model.",
                    retryable=False,
                )
                return
            reply = StreamingReply(mm, {**mm.context_record(), "token_budget": config.token_budget}, config.flush_interval)
            streamed = stream_reply(
                reply,
                provider,
                system=config.system,
                messages=mm.to_api_messages(cache_breakpoint=True),
                tools=tools.api_schemas(),
            )
            async with aclosing(streamed):
                async for event in streamed:
                    yield event
            final = reply.final
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
