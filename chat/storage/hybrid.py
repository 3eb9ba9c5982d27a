"""HybridStorage: the one way the rest of the code reads and writes conversations.

Reads try L1 and fall back to L2; writes go to L2 first and only then to L1 (DESIGN.md
rules 1, 3, 4, 5). An L2 failure raises and leaves L1 untouched; an L1 failure never
raises (the cache backends swallow and log it), it only makes the next read slower.

Message dicts returned here may be shared between concurrent callers: treat them as
read-only.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable, Iterable

from chat import history, metrics
from chat.db import db_async
from chat.errors import NotFound
from chat.storage import database, summaries
from chat.storage.cache import MessageCache
from chat.storage.database import Saved, Snapshot, StoredMessage
from chat.usage.ledger import Charge


def _session_uuid(session_id: Any) -> uuid.UUID:
    if isinstance(session_id, uuid.UUID):
        return session_id
    try:
        return uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound("No such chat.") from None


class HybridStorage:
    def __init__(self, cache: MessageCache):
        self.cache = cache
        # In-flight L2 loads, so that concurrent misses on one session share one query.
        self._loads: dict[tuple[Any, ...], asyncio.Task[Snapshot]] = {}

    async def _load(self, key: tuple[Any, ...], session_id: uuid.UUID, load: Callable[[], Snapshot]) -> Snapshot:
        loop = asyncio.get_running_loop()
        key = (id(loop), *key)
        task = self._loads.get(key)
        if task is None:
            task = loop.create_task(self._load_and_fill(session_id, load))
            self._loads[key] = task
            task.add_done_callback(lambda _: self._loads.pop(key, None))
        # Shielded: one caller giving up must not cancel the load the others wait for.
        return await asyncio.shield(task)

    async def _load_and_fill(self, session_id: uuid.UUID, load: Callable[[], Snapshot]) -> Snapshot:
        snapshot = await db_async(load)()
        await self.cache.fill(str(session_id), snapshot)
        return snapshot

    async def load_recent_messages(self, session_id: Any, limit: int = 100) -> list[StoredMessage]:
        """The newest ``limit`` messages, oldest first."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        sid = _session_uuid(session_id)
        cached = await self.cache.read_recent(str(sid), limit)
        metrics.CACHE_READS.labels("hit" if cached is not None else "miss").inc()
        if cached is not None:
            return cached
        snapshot = await self._load(("recent", sid, limit), sid, lambda: database.load_recent(sid, limit))
        return list(snapshot.messages)

    async def load_within_budget(self, session_id: Any, token_budget: int) -> list[StoredMessage]:
        """The longest run of newest messages whose tokens fit ``token_budget``, exactly.

        Both L1 and L2 answer with that run plus at most the message before it (which
        proves they cover the budget); fitting it is done here, for both.
        """
        if token_budget <= 0:
            raise ValueError("token_budget must be positive")
        sid = _session_uuid(session_id)
        messages = await self.cache.read_budget(str(sid), token_budget)
        metrics.CACHE_READS.labels("hit" if messages is not None else "miss").inc()
        if messages is None:
            snapshot = await self._load(
                ("budget", sid, token_budget), sid, lambda: database.load_within_budget(sid, token_budget)
            )
            messages = snapshot.messages
        return history.fit_budget(messages, token_budget)

    async def save_messages(
        self, session_id: Any, messages: Iterable[dict[str, Any]], *, charge: Charge | None = None
    ) -> list[StoredMessage]:
        """Append messages to an existing session; returns them as stored. ``charge``: the
        model call that wrote them, for the usage ledger, in the same transaction.

        Nothing is acknowledged before L2 committed.
        """
        sid = _session_uuid(session_id)
        saved = await db_async(database.save_messages)(sid, list(messages), charge=charge)
        await self.committed(sid, saved)
        return saved.messages

    async def committed(self, session_id: uuid.UUID, saved: Saved) -> None:
        """L2 committed ``saved`` (here, or in a turn's transaction): bring L1 up to date."""
        if saved.messages[0]["sequence"] == 1:
            # The first messages of a session are all of it: the writer knows the whole
            # state at this revision, so a new chat starts with a warm cache.
            await self.cache.fill(str(session_id), Snapshot(saved.revision, saved.messages, complete=True))
        else:
            await self.cache.append(str(session_id), saved.revision, saved.messages, forked=saved.forked)

    async def path_changed(self, session_id: uuid.UUID, revision: int) -> None:
        """L2 committed ``revision``, which moved the active path (a fork or a switch): the
        cached tail is another path's now. (Messages saved with it go to ``committed``.)"""
        await self.cache.invalidate(str(session_id), revision)

    async def update_message(
        self, session_id: Any, sequence: int, *, known: StoredMessage | None = None, **changes: Any
    ) -> StoredMessage:
        """Change one stored message (content, tokens, finished, usage, context); ``known``
        is the caller's copy of it, if it has one (it saves a read); ``charge``, the model
        call that changed it, goes to the usage ledger in the same transaction."""
        sid = _session_uuid(session_id)
        updated = await db_async(database.update_message)(sid, sequence, known=known, **changes)
        await self.cache.replace(str(sid), updated)
        return updated.message

    async def remove_last(self, session_id: Any, sequence: int) -> None:
        """Delete message ``sequence`` if it is the session's newest (a reply that never
        began); the cached tail is dropped (rare: the next read refills it)."""
        sid = _session_uuid(session_id)
        if await db_async(database.remove_last)(sid, sequence):
            await self.cache.drop(str(sid))

    async def drop_cache(self, session_id: Any) -> None:
        await self.cache.drop(str(_session_uuid(session_id)))

    # Summaries live in L2 only, written once; a turn reads its path's with the chat's lock
    # (``database.lock_session``), anything else with ``summary_of_path``.

    async def summary_of_path(self, session_id: Any) -> dict[str, Any] | None:
        return await self._l2(summaries.of_path, session_id)

    async def summary_on_path(self, session_id: Any, *, before: int | None = None) -> dict[str, Any] | None:
        sid = _session_uuid(session_id)
        return await db_async(summaries.on_path)(sid, before=before)

    async def save_summary(self, session_id: Any, *, charge: Any = None, **fields: Any) -> dict[str, Any]:
        sid = _session_uuid(session_id)
        return await db_async(summaries.save)(sid, charge=charge, **fields)

    async def save_loop_state(self, session_id: Any, state: dict[str, Any]) -> None:
        await self._l2(database.save_loop_state, session_id, state)

    async def load_loop_state(self, session_id: Any) -> dict[str, Any] | None:
        return await self._l2(database.load_loop_state, session_id)

    async def clear_loop_state(self, session_id: Any) -> bool:
        return await self._l2(database.clear_loop_state, session_id)

    async def _l2(self, fn: Callable[..., Any], session_id: Any, *args: Any) -> Any:
        call: Callable[..., Awaitable[Any]] = db_async(fn)
        return await call(_session_uuid(session_id), *args)
