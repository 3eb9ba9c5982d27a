"""L1: a cache of each session's newest messages, kept warm across writes.

Per session the cache holds the tail of the conversation, the L2 ``revision`` it reflects,
and how far back it reaches (``base``: the cumulative tokens before its first message;
``complete``: it starts at message 1). Four rules keep it correct (DESIGN.md rule 3):

* a writer, after L2 committed revision R, extends the tail only if the entry is at R-1 and
  ends at the sequence before its own; otherwise it leaves a tombstone at R;
* a reader that loaded revision r from L2 may fill the entry only if it holds nothing newer
  than r, so data read before a write can never overwrite that write;
* a read is answered only if the tail covers it (enough messages, or enough tokens for the
  budget, or the whole session), else it is a miss;
* every entry expires, so a lost invalidation cannot leave staleness forever.

Two backends follow the same contract: ``RedisMessageCache`` (``redis_cache.py``: Lua
scripts, one round trip per operation, shared by every process) and ``LocalMessageCache``
(in-process, for the embedded mode, below). The contract tests run against both.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import orjson

from chat.storage.database import Snapshot, StoredMessage, Updated


def encode_member(message: StoredMessage) -> bytes:
    """A message as cached: everything but its cumulative sum, which is the entry's score."""
    return orjson.dumps({k: v for k, v in message.items() if k != "cumulative_tokens"})


def decode_members(scores: Sequence[Any], members: Sequence[bytes]) -> list[StoredMessage]:
    """Decode cached members (and their scores, the cumulative sums) with one JSON parse
    for the whole tail: several times faster than a json.loads per message."""
    decoded = orjson.loads(b"[" + b",".join(members) + b"]")
    for score, message in zip(scores, decoded):
        message["cumulative_tokens"] = int(float(score))  # Redis answers scores as bytes
    return decoded


def cache_window(snapshot: Snapshot, max_messages: int) -> tuple[list[StoredMessage], bool, int, int] | None:
    """What a snapshot puts in the cache: (messages, complete, base, last_sequence)."""
    messages, complete = snapshot.messages, snapshot.complete
    if not messages and not complete:
        return None  # nothing known about where the tail ends
    if len(messages) > max_messages:
        messages, complete = messages[-max_messages:], False
    if not messages:
        return [], True, 0, 0
    first = messages[0]
    return messages, complete, first["cumulative_tokens"] - first["tokens"], messages[-1]["sequence"]


class MessageCache(ABC):
    """The L1 contract. Reads return None on a miss; no method raises for a cache failure."""

    def __init__(self, *, ttl: int, max_messages: int):
        self.ttl = ttl
        self.max_messages = max_messages

    @abstractmethod
    async def read_recent(self, session_id: str, limit: int) -> list[StoredMessage] | None: ...

    @abstractmethod
    async def read_budget(self, session_id: str, token_budget: int) -> list[StoredMessage] | None:
        """The tail covering ``token_budget``: the messages that fit and at most the one
        before them, as L2's budget read (HybridStorage fits it); None if not covered."""

    @abstractmethod
    async def fill(self, session_id: str, snapshot: Snapshot) -> bool:
        """Store what a reader loaded from L2, unless the cache holds something newer."""

    @abstractmethod
    async def append(self, session_id: str, revision: int, messages: list[StoredMessage], *, forked: bool = False) -> None:
        """After L2 committed ``messages`` as ``revision``: extend the tail or leave a tombstone.

        ``forked``: revision - 1 cut the path back to just before ``messages`` (an edit, a
        regenerated reply; ``database.Saved.forked``), so an entry of revision - 2 keeps
        the part of its tail before them and goes on with them.
        """

    @abstractmethod
    async def replace(self, session_id: str, updated: Updated) -> None:
        """After L2 committed an update of one message as ``updated.revision``."""

    @abstractmethod
    async def invalidate(self, session_id: str, revision: int) -> None:
        """L2 committed ``revision``, which changed what the tail is (another path): leave a
        tombstone, unless the entry holds something newer."""

    @abstractmethod
    async def drop(self, session_id: str) -> None: ...

    @abstractmethod
    async def ping(self) -> bool: ...


# --- in-process backend -------------------------------------------------------------------


@dataclass
class _Entry:
    revision: int
    expires_at: float
    filled: bool = False
    complete: bool = False
    base: int = 0
    last_sequence: int = 0
    # (cumulative tokens, member) in sequence order, as the Redis sorted set holds them.
    items: list[tuple[int, bytes]] = field(default_factory=list)


class LocalMessageCache(MessageCache):
    """The contract in one process's memory: a lock, a dict, LRU-bounded, with expiry."""

    def __init__(self, *, ttl: int, max_messages: int, max_sessions: int = 10_000):
        super().__init__(ttl=ttl, max_messages=max_messages)
        self.max_sessions = max_sessions
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, session_id: str) -> _Entry | None:
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if entry.expires_at <= time.monotonic():
            del self._entries[session_id]
            return None
        self._entries.move_to_end(session_id)
        return entry

    def _put(self, session_id: str, entry: _Entry) -> None:
        entry.expires_at = time.monotonic() + self.ttl
        self._entries[session_id] = entry
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.max_sessions:
            self._entries.popitem(last=False)

    def _tombstone(self, session_id: str, revision: int) -> None:
        self._put(session_id, _Entry(revision=revision, expires_at=0))

    async def read_recent(self, session_id: str, limit: int) -> list[StoredMessage] | None:
        with self._lock:
            entry = self._get(session_id)
            if entry is None or not entry.filled:
                return None
            if len(entry.items) < limit and not entry.complete:
                return None
            items = entry.items[-limit:]
        return decode_members([score for score, _ in items], [member for _, member in items])

    async def read_budget(self, session_id: str, token_budget: int) -> list[StoredMessage] | None:
        with self._lock:
            entry = self._get(session_id)
            if entry is None or not entry.filled:
                return None
            if not entry.items:
                return [] if entry.complete else None
            total = entry.items[-1][0]
            if not entry.complete and total - entry.base < token_budget:
                return None
            threshold = total - token_budget
            items = [(score, member) for score, member in entry.items if score > threshold]
        return decode_members([score for score, _ in items], [member for _, member in items])

    async def fill(self, session_id: str, snapshot: Snapshot) -> bool:
        window = cache_window(snapshot, self.max_messages)
        if window is None:
            return False
        messages, complete, base, last_sequence = window
        with self._lock:
            entry = self._get(session_id)
            if entry is not None:
                if entry.revision > snapshot.revision:
                    return False
                if entry.revision == snapshot.revision and entry.filled and entry.base <= base:
                    return False
            self._put(
                session_id,
                _Entry(
                    revision=snapshot.revision,
                    expires_at=0,
                    filled=True,
                    complete=complete,
                    base=base,
                    last_sequence=last_sequence,
                    items=[(m["cumulative_tokens"], encode_member(m)) for m in messages],
                ),
            )
            return True

    async def append(self, session_id: str, revision: int, messages: list[StoredMessage], *, forked: bool = False) -> None:
        with self._lock:
            entry = self._get(session_id)
            if entry is not None and entry.revision >= revision:
                return
            after = messages[0]["sequence"] - 1
            if entry is None or entry.revision != revision - (2 if forked else 1) or not entry.filled:
                self._tombstone(session_id, revision)
                return
            if forked:
                keep = after - (entry.last_sequence - len(entry.items))
                if keep < 0 or after > entry.last_sequence:  # the fork is outside the cached tail
                    self._tombstone(session_id, revision)
                    return
                del entry.items[keep:]
            elif entry.last_sequence != after:
                self._tombstone(session_id, revision)
                return
            entry.items.extend((m["cumulative_tokens"], encode_member(m)) for m in messages)
            if len(entry.items) > self.max_messages:
                cut = len(entry.items) - self.max_messages
                entry.base = entry.items[cut - 1][0]
                entry.complete = False
                del entry.items[:cut]
            entry.revision = revision
            entry.last_sequence = messages[-1]["sequence"]
            self._put(session_id, entry)

    async def replace(self, session_id: str, updated: Updated) -> None:
        message, delta = updated.message, updated.token_delta
        with self._lock:
            entry = self._get(session_id)
            if entry is not None and entry.revision >= updated.revision:
                return
            if entry is None or entry.revision != updated.revision - 1 or not entry.filled:
                self._tombstone(session_id, updated.revision)
                return
            first_sequence = entry.last_sequence - len(entry.items) + 1
            sequence = message["sequence"]
            if sequence > entry.last_sequence:
                self._tombstone(session_id, updated.revision)
                return
            if sequence < first_sequence:
                # Before the cached tail: only the running sums move.
                entry.base += delta
                entry.items = [(score + delta, member) for score, member in entry.items]
            else:
                index = sequence - first_sequence
                score, member = entry.items[index]
                if score != updated.previous_cumulative or orjson.loads(member)["sequence"] != sequence:
                    self._tombstone(session_id, updated.revision)
                    return
                entry.items[index] = (score + delta, encode_member(message))
                entry.items[index + 1 :] = [(s + delta, m) for s, m in entry.items[index + 1 :]]
            entry.revision = updated.revision
            self._put(session_id, entry)

    async def invalidate(self, session_id: str, revision: int) -> None:
        with self._lock:
            entry = self._get(session_id)
            if entry is None or entry.revision < revision:
                self._tombstone(session_id, revision)

    async def drop(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)

    async def ping(self) -> bool:
        return True
