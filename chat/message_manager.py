"""MessageManager: one agent run's view of a conversation.

It loads the history that fits the context budget (HybridStorage fits the budget; here
the prompt is chosen: the path's summary, if it has one, and every message after it, with
old tool results as stubs; or, when that does not fit, the cut moved to a step boundary and
to a turn's start), says when the chat should be compacted (``chat.compaction`` does it),
saves every new message through
``HybridStorage`` as it is added, and turns the history into what the model is sent:
valid (``chat.history.to_api_messages``) and stripped of our extra keys. Injections add
blocks about this call only (the current time): the provider sends them after the
history and its prompt-cache breakpoint, so they never disturb the cached prefix. They
change only what is sent, never what is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Sequence

from django.conf import settings

from chat import history
from chat.errors import ContextTooLong
from chat.storage import HybridStorage
from chat.storage.database import StoredMessage
from chat.usage.ledger import Charge

Blocks = list[dict[str, Any]]
# Blocks about one model call, sent after the history.
Injection = Callable[[], Blocks]


def current_time(*, now: dt.datetime | None = None) -> Blocks:
    """Tell the model the current time."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return [{"type": "text", "text": f"<context>Current time: {stamp}</context>"}]


DEFAULT_INJECTIONS: tuple[Injection, ...] = (current_time,)
# Not read yet (a path's summary may be None: it has none).
UNREAD: Any = object()


def _in_window(summary: dict[str, Any] | None, window: list[StoredMessage]) -> dict[str, Any] | None:
    """``summary`` (the newest of the path) if its last message is in the budget window:
    while a summary is in use the window reaches back to its last message (what follows it
    is kept under the budget); one the window no longer reaches is left for the coarse cut
    (and the next compaction)."""
    if summary is None:
        return None
    end = (summary["branch"], summary["last_sequence"])
    return summary if any((m["branch"], m["sequence"]) == end for m in window) else None


class MessageManager:
    def __init__(
        self,
        session_id: Any,
        user: Any,
        storage: HybridStorage,
        injections: Sequence[Injection] = DEFAULT_INJECTIONS,
        *,
        cut_step: int | None = None,
        compact_at: float | None = None,
        keep_turns: int | None = None,
        path_summary: Any = UNREAD,
    ):
        self.session_id = str(session_id)
        self.user = user
        self.storage = storage
        self.injections = tuple(injections)
        self.cut_step = cut_step or settings.CHAT_CONTEXT_CUT_STEP
        self.compact_at = settings.CHAT_COMPACT_AT if compact_at is None else compact_at
        self.keep_turns = keep_turns or settings.CHAT_TOOL_RESULT_KEEP_TURNS
        self._messages: list[StoredMessage] = []
        # The summary the prompt begins with (``chat.models.Summary``), if any. The newest
        # summary of the active path (``path_summary``: the turn service read it with the
        # chat's lock; else the first ``load`` reads it) is known once per manager (one
        # run), since only this run can compact the chat or move its path while it runs.
        self.summary: dict[str, Any] | None = None
        self._path_summary: Any = path_summary
        self._known_summary: Any = UNREAD
        self._stub_line = 0
        # What the last ``load`` found: the prompt's tokens (the summary, the messages with
        # their stubs), the path's running token sum, and whether the chat should be
        # compacted before the call (the prompt passed ``compact_at`` of the budget, or the
        # history no longer fits whole after the summary).
        self.budget = 0
        self.prompt_tokens = 0
        self.path_tokens = 0
        self.needs_compaction = False

    async def __aenter__(self) -> MessageManager:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        # Every message is saved as it is added; nothing is buffered to flush here.
        return None

    async def load(self, token_budget: int | None = None, *, before: int | None = None) -> list[StoredMessage]:
        """Load the newest history that fits ``token_budget`` (default: the configured one),
        up to (not including) message ``before`` if given: the reply being written.

        The cut moves in steps of ``cut_step`` tokens (see ``history.coarse_cut``), never
        starts on a message that cannot begin a history, and always keeps the newest turn
        whole: a newest turn larger than the budget raises ``ContextTooLong`` (nothing could
        be sent that holds it), so the model is never called with an empty history.
        """
        budget = token_budget or settings.CHAT_CONTEXT_TOKENS
        exact = await self.storage.load_within_budget(self.session_id, budget)
        self.path_tokens = exact[-1]["cumulative_tokens"] if exact else 0
        if before is not None:
            exact = [m for m in exact if m["sequence"] < before]
        if history.newest_turn_start(exact) is None:
            # The newest turn (what the user sent, and the tool calls answering it so far)
            # does not fit on its own: no prompt can hold it. (Or the chat is empty.)
            too_long = await self._newest_turn_tokens(budget, before)
            if too_long is not None:
                raise ContextTooLong(turn_tokens=too_long, window=budget)
        if self._known_summary is UNREAD:
            if self._path_summary is UNREAD:
                self._path_summary = await self.storage.summary_of_path(self.session_id)
            self._known_summary = _in_window(self._path_summary, exact)
        self._fit(exact, budget, self._known_summary)
        return self.messages

    def _fit(self, exact: list[StoredMessage], budget: int, summary: dict[str, Any] | None) -> None:
        """Choose the prompt from the budget window ``exact``: the summary and every message
        after it (old tool results stubbed) while that fits; else the coarse cut."""
        self.budget = budget
        after, covered = exact, not exact or exact[0]["sequence"] == 1
        if summary is not None:
            after = [m for m in exact if m["sequence"] > summary["last_sequence"]]
            covered = bool(exact) and exact[0]["sequence"] <= summary["last_sequence"] + 1
        line = history.stub_line(after, self.keep_turns, self.cut_step)
        tokens = (summary["tokens"] if summary else 0) + sum(m["tokens"] for m in history.with_stubs(after, line))
        if covered and tokens <= budget:
            self.summary, self._messages, self._stub_line, self.prompt_tokens = summary, after, line, tokens
            foldable = history.compaction_cut(after, 0) is not None
            self.needs_compaction = foldable and 0 < self.compact_at and tokens > self.compact_at * budget
            return
        # Too long for the summary and all that follows (compaction is off, failed, or is
        # about to run): the newest history that fits, cut at a step.
        cut = history.drop_to_turn_start(history.coarse_cut(exact, budget, self.cut_step))
        line = history.stub_line(cut, self.keep_turns, self.cut_step)
        self.summary, self._messages, self._stub_line = None, cut, line
        self.prompt_tokens = sum(m["tokens"] for m in history.with_stubs(cut, line))
        self.needs_compaction = 0 < self.compact_at

    @property
    def known_summary(self) -> dict[str, Any] | None:
        """The newest summary of the path that the last ``load`` found, used or not (the
        prompt is the coarse cut without it when what follows it no longer fits)."""
        return None if self._known_summary is UNREAD else self._known_summary

    def use_summary(self, summary: dict[str, Any]) -> None:
        """A compaction wrote ``summary``: the next ``load`` begins the prompt with it."""
        self._known_summary = summary

    async def _newest_turn_tokens(self, budget: int, before: int | None) -> int | None:
        """The tokens of the newest turn, which is larger than ``budget`` (None: the chat
        has no message): read further back until its start (a refusal, so rare that
        doubling reads cost nothing that matters)."""
        if not await self.storage.load_recent_messages(self.session_id, 1):
            return None
        reach = budget
        while True:
            reach *= 2
            messages = await self.storage.load_within_budget(self.session_id, reach)
            if before is not None:
                messages = [m for m in messages if m["sequence"] < before]
            start = history.newest_turn_start(messages)
            if start is not None or (messages and messages[0]["sequence"] == 1):
                first = messages[start or 0]
                return messages[-1]["cumulative_tokens"] - (first["cumulative_tokens"] - first["tokens"])

    @property
    def messages(self) -> list[StoredMessage]:
        return list(self._messages)

    async def _add(self, message: dict[str, Any], charge: Charge | None = None) -> StoredMessage:
        [stored] = await self.storage.save_messages(self.session_id, [message], charge=charge)
        if not any(m["sequence"] == stored["sequence"] for m in self._messages):
            self._messages.append(stored)
        return stored

    async def add_user_message(self, content: Any) -> StoredMessage:
        """Store a user message (what the user sends enters through ``chat.runs.turns``;
        this builds histories for tools, tests and benchmarks)."""
        return await self._add({"role": "user", "content": content})

    async def add_assistant_message(
        self,
        content_blocks: Any,
        usage: dict[str, Any] | None = None,
        *,
        finished: bool = True,
        context: dict[str, Any] | None = None,
        charge: Charge | None = None,
    ) -> StoredMessage:
        """Store a reply. With ``usage``, its output tokens replace the estimate; ``charge``
        is the model call that wrote it, for the usage ledger."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content_blocks,
            "finished": finished,
            "usage": usage,
            "context": context,
        }
        if usage and usage.get("output_tokens"):
            message["tokens"] = usage["output_tokens"]
        return await self._add(message, charge)

    async def add_tool_results(self, results: list[dict[str, Any]]) -> StoredMessage:
        """Store one user message holding the tool_result blocks of a turn, extra keys kept."""
        if not results or any(r.get("type") != "tool_result" for r in results):
            raise ValueError("add_tool_results takes a non-empty list of tool_result blocks")
        return await self._add({"role": "user", "content": list(results)})

    async def update_message(self, sequence: int, *, known: StoredMessage | None = None, **changes: Any) -> StoredMessage:
        """Change a stored message (a streamed reply completing); the local copy follows.
        ``known``: the caller's copy of it, if this manager did not load it."""
        if "usage" in changes and changes["usage"] and changes.get("tokens") is None:
            output_tokens = changes["usage"].get("output_tokens")
            if output_tokens:
                changes["tokens"] = output_tokens
        if known is None:
            known = next((m for m in self._messages if m["sequence"] == sequence), None)
        stored = await self.storage.update_message(self.session_id, sequence, known=known, **changes)
        self._messages = [stored if m["sequence"] == sequence else m for m in self._messages]
        return stored

    async def remove_last(self, sequence: int) -> None:
        """Take back message ``sequence``, the newest (a reply that never began)."""
        await self.storage.remove_last(self.session_id, sequence)
        self._messages = [m for m in self._messages if m["sequence"] != sequence]

    def to_api_messages(self) -> list[dict[str, Any]]:
        """The history as the model must receive it: valid, API keys only; the summary
        first, if one is used, and old tool results as stubs."""
        messages = history.with_stubs(self._messages, self._stub_line)
        if self.summary is not None:
            messages = [history.summary_message(self.summary["text"]), *messages]
        return history.to_api_messages(messages)

    def call_context(self) -> Blocks:
        """The injections' blocks for the next call (sent after the history)."""
        return [block for inject in self.injections for block in inject()]

    def context_record(self) -> dict[str, Any]:
        """Which stored messages the next prompt is built from, for the reply to record: a
        range of the path that leads to branch ``branch`` (``chat.models.Branch``)."""
        if not self._messages:
            return {"first_sequence": None, "last_sequence": None, "dropped": 0}
        first, last = self._messages[0], self._messages[-1]
        record: dict[str, Any] = {
            "first_sequence": first["sequence"],
            "last_sequence": last["sequence"],
            "dropped": first["sequence"] - 1,
        }
        if last.get("branch"):
            record["branch"] = last["branch"]
        if self.summary is not None:
            # The messages before ``first_sequence`` went as this summary, not dropped.
            record["summary"] = self.summary["id"]
            record["summarised"] = self.summary["last_sequence"]
            record["dropped"] = first["sequence"] - 1 - self.summary["last_sequence"]
        if self._stub_line:
            record["stubbed_through_tokens"] = self._stub_line
        return record

    async def save_loop_state(self, state: dict[str, Any]) -> None:
        await self.storage.save_loop_state(self.session_id, state)

    async def load_loop_state(self) -> dict[str, Any] | None:
        return await self.storage.load_loop_state(self.session_id)

    async def clear_loop_state(self) -> bool:
        return await self.storage.clear_loop_state(self.session_id)
