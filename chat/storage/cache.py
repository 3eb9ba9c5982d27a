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

Two backends follow the same contract: ``RedisMessageCache`` (Lua scripts, one round trip
per operation, shared by every process) and ``LocalMessageCache`` (in-process, for the
embedded mode). The contract tests run against both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, TypeVar

import orjson
from django.conf import settings

from chat import history
from chat.redis_client import PerLoopRedis
from chat.storage import keys
from chat.storage.database import Snapshot, StoredMessage, Updated

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _member(message: StoredMessage) -> bytes:
    """A message as cached: everything but its cumulative sum, which is the entry's score."""
    return orjson.dumps({k: v for k, v in message.items() if k != "cumulative_tokens"})


def _messages(pairs: Iterable[tuple[Any, bytes]]) -> list[StoredMessage]:
    """Decode (cumulative, member) pairs with one JSON parse for the whole tail.

    A hit is dominated by decoding; one orjson call over the joined members is several
    times faster than a json.loads per message.
    """
    decoded = orjson.loads(b"[" + b",".join(b"[%s,%s]" % (_score(score), member) for score, member in pairs) + b"]")
    for score, message in decoded:
        message["cumulative_tokens"] = int(score)
    return [message for _, message in decoded]


def _score(score: Any) -> bytes:
    return score if isinstance(score, bytes) else str(int(score)).encode()


def _window(snapshot: Snapshot, max_messages: int) -> tuple[list[StoredMessage], bool, int, int] | None:
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
    async def read_budget(self, session_id: str, token_budget: int) -> list[StoredMessage] | None: ...

    @abstractmethod
    async def fill(self, session_id: str, snapshot: Snapshot) -> bool:
        """Store what a reader loaded from L2, unless the cache holds something newer."""

    @abstractmethod
    async def append(self, session_id: str, revision: int, messages: list[StoredMessage]) -> None:
        """After L2 committed ``messages`` as ``revision``: extend the tail or leave a tombstone."""

    @abstractmethod
    async def replace(self, session_id: str, updated: Updated) -> None:
        """After L2 committed an update of one message as ``updated.revision``."""

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
        return _messages(items)

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
        return history.fit_budget(_messages(items), token_budget)

    async def fill(self, session_id: str, snapshot: Snapshot) -> bool:
        window = _window(snapshot, self.max_messages)
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
                    items=[(m["cumulative_tokens"], _member(m)) for m in messages],
                ),
            )
            return True

    async def append(self, session_id: str, revision: int, messages: list[StoredMessage]) -> None:
        with self._lock:
            entry = self._get(session_id)
            if entry is not None and entry.revision >= revision:
                return
            if (
                entry is None
                or entry.revision != revision - 1
                or not entry.filled
                or entry.last_sequence + 1 != messages[0]["sequence"]
            ):
                self._tombstone(session_id, revision)
                return
            entry.items.extend((m["cumulative_tokens"], _member(m)) for m in messages)
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
                entry.items[index] = (score + delta, _member(message))
                entry.items[index + 1 :] = [(s + delta, m) for s, m in entry.items[index + 1 :]]
            entry.revision = updated.revision
            self._put(session_id, entry)

    async def drop(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)

    async def ping(self) -> bool:
        return True


# --- Redis backend ------------------------------------------------------------------------
# Each operation is one Lua script, so checking the revision and changing the entry happen
# atomically in Redis. KEYS[1] is the meta hash (rev, filled, complete, base, last_seq,
# count), KEYS[2] the sorted set of members scored by cumulative tokens.

_LUA_COMMON = """
local function tombstone(rev, ttl)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'rev', rev, 'filled', '0')
  redis.call('EXPIRE', KEYS[1], ttl)
  return 0
end
local function touch(ttl)
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
local function zadd_from(first)
  -- In slices: Lua's unpack() has a small stack limit.
  local i = first
  while i <= #ARGV do
    local last = math.min(i + 199, #ARGV)
    redis.call('ZADD', KEYS[2], unpack(ARGV, i, last))
    i = last + 1
  end
end
local function intact(meta_count)
  -- Eviction could remove one key of the pair; never answer from half an entry.
  return redis.call('ZCARD', KEYS[2]) == tonumber(meta_count)
end
"""

_LUA_READ_RECENT = _LUA_COMMON + """
local m = redis.call('HMGET', KEYS[1], 'filled', 'complete', 'count')
if m[1] ~= '1' or not intact(m[3]) then return false end
local limit = tonumber(ARGV[1])
if tonumber(m[3]) < limit and m[2] ~= '1' then return false end
return redis.call('ZRANGE', KEYS[2], -limit, -1, 'WITHSCORES')
"""

_LUA_READ_BUDGET = _LUA_COMMON + """
local m = redis.call('HMGET', KEYS[1], 'filled', 'complete', 'count', 'base')
if m[1] ~= '1' or not intact(m[3]) then return false end
if tonumber(m[3]) == 0 then
  if m[2] == '1' then return {} end
  return false
end
local budget = tonumber(ARGV[1])
local total = tonumber(redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2])
if m[2] ~= '1' and total - tonumber(m[4]) < budget then return false end
return redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%d', total - budget), '+inf', 'WITHSCORES')
"""

_LUA_FILL = _LUA_COMMON + """
local rev = tonumber(ARGV[1])
local m = redis.call('HMGET', KEYS[1], 'rev', 'filled', 'base')
if m[1] then
  local cur = tonumber(m[1])
  if cur > rev then return 0 end
  if cur == rev and m[2] == '1' and tonumber(m[3]) <= tonumber(ARGV[4]) then return 0 end
end
redis.call('DEL', KEYS[2])
zadd_from(7)
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'filled', '1', 'complete', ARGV[3],
  'base', ARGV[4], 'last_seq', ARGV[5], 'count', ARGV[6])
touch(ARGV[2])
return 1
"""

_LUA_APPEND = _LUA_COMMON + """
local rev, ttl = tonumber(ARGV[1]), ARGV[2]
local m = redis.call('HMGET', KEYS[1], 'rev', 'filled', 'last_seq', 'count')
if not m[1] then return tombstone(rev, ttl) end
if tonumber(m[1]) >= rev then return 1 end
if tonumber(m[1]) ~= rev - 1 or m[2] ~= '1' or tonumber(m[3]) + 1 ~= tonumber(ARGV[4])
   or not intact(m[4]) then
  return tombstone(rev, ttl)
end
zadd_from(7)
local n = tonumber(m[4]) + (#ARGV - 6) / 2
local max = tonumber(ARGV[3])
if n > max then
  local cut = n - max
  local edge = redis.call('ZRANGE', KEYS[2], cut - 1, cut - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, cut - 1)
  redis.call('HSET', KEYS[1], 'base', edge[2], 'complete', '0')
  n = max
end
redis.call('HSET', KEYS[1], 'rev', rev, 'last_seq', ARGV[5], 'count', n)
touch(ttl)
return 1
"""

_LUA_REPLACE = _LUA_COMMON + """
local rev, ttl = tonumber(ARGV[1]), ARGV[2]
local seq, prev, delta = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local m = redis.call('HMGET', KEYS[1], 'rev', 'filled', 'last_seq', 'count', 'base')
if not m[1] then return tombstone(rev, ttl) end
if tonumber(m[1]) >= rev then return 1 end
if tonumber(m[1]) ~= rev - 1 or m[2] ~= '1' or not intact(m[4]) then return tombstone(rev, ttl) end
local last = tonumber(m[3])
local first = last - tonumber(m[4]) + 1
if seq > last then return tombstone(rev, ttl) end
local function shift(members)
  for j = 1, #members do redis.call('ZINCRBY', KEYS[2], delta, members[j]) end
end
if seq < first then
  if delta ~= 0 then
    shift(redis.call('ZRANGE', KEYS[2], 0, -1))
    redis.call('HSET', KEYS[1], 'base', tonumber(m[5]) + delta)
  end
else
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], prev, prev)
  if #old ~= 1 or cjson.decode(old[1])['sequence'] ~= seq then return tombstone(rev, ttl) end
  redis.call('ZREM', KEYS[2], old[1])
  if delta ~= 0 then shift(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[4], '+inf')) end
  redis.call('ZADD', KEYS[2], prev + delta, ARGV[6])
end
redis.call('HSET', KEYS[1], 'rev', rev)
touch(ttl)
return 1
"""

_REDIS_ERRORS: tuple[type[BaseException], ...]
try:  # redis is a dependency, but keep the module importable for tooling without it
    from redis.exceptions import RedisError

    _REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
except ImportError:  # pragma: no cover
    _REDIS_ERRORS = (OSError, asyncio.TimeoutError)


def _pairs(messages: list[StoredMessage]) -> list[Any]:
    out: list[Any] = []
    for m in messages:
        out += [m["cumulative_tokens"], _member(m)]
    return out


def _decode(reply: list[bytes]) -> list[StoredMessage]:
    """A WITHSCORES reply: member, score, member, score, …"""
    return _messages(zip(reply[1::2], reply[0::2]))


class RedisMessageCache(MessageCache):
    """The contract on Redis. Failures are logged once and degrade to misses.

    After a failure the cache is bypassed for ``retry_interval`` seconds. Sessions written
    while it was bypassed are remembered and their entries deleted first thing once Redis
    answers again, so data cached before the outage is not served after it.
    """

    MAX_DIRTY = 100_000

    def __init__(
        self,
        url: str,
        *,
        ttl: int,
        max_messages: int,
        socket_timeout: float,
        connect_timeout: float,
        retry_interval: float,
    ):
        super().__init__(ttl=ttl, max_messages=max_messages)
        self.redis = PerLoopRedis(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        self.retry_interval = retry_interval
        self._scripts: dict[str, Any] = {}
        self._down_until = 0.0
        self._healthy = True
        self._dirty: set[str] = set()

    def _client(self) -> Any:
        return self.redis.get()

    async def _call(self, name: str, source: str, session_id: str, args: list[Any]) -> Any:
        client = self._client()
        script = self._scripts.get(name)
        if script is None:
            # EVALSHA, loading the script on the first NOSCRIPT; the digest is the same on
            # every client.
            script = self._scripts[name] = client.register_script(source)
        keys_ = [keys.session_cache_meta(session_id), keys.session_cache_messages(session_id)]
        return await script(keys=keys_, args=args, client=client)

    async def _guard(self, session_id: str | None, write: bool, op: Callable[[], Awaitable[T]], default: T) -> T:
        if time.monotonic() < self._down_until:
            if write and session_id:
                self._remember_dirty(session_id)
            return default
        try:
            # A backstop in case a socket timeout does not fire (DNS, TLS handshakes).
            async with asyncio.timeout(self.redis.deadline):
                if self._dirty:
                    await self._flush_dirty()
                result = await op()
        except _REDIS_ERRORS as exc:
            if write and session_id:
                self._remember_dirty(session_id)
            self._mark_down(exc)
            return default
        if not self._healthy:
            self._healthy = True
            logger.warning("Redis cache is reachable again; cached conversations are used again.")
        return result

    def _remember_dirty(self, session_id: str) -> None:
        if len(self._dirty) < self.MAX_DIRTY:
            self._dirty.add(session_id)

    async def _flush_dirty(self) -> None:
        dirty = list(self._dirty)
        names = [k for sid in dirty for k in (keys.session_cache_meta(sid), keys.session_cache_messages(sid))]
        for start in range(0, len(names), 1000):
            await self._client().delete(*names[start : start + 1000])
        self._dirty.difference_update(dirty)

    def _mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_interval
        if self._healthy:
            self._healthy = False
            logger.warning(
                "Redis cache unavailable (%s: %s); serving conversations from the database "
                "until it answers again.",
                type(exc).__name__,
                exc,
            )

    async def read_recent(self, session_id: str, limit: int) -> list[StoredMessage] | None:
        async def op() -> list[StoredMessage] | None:
            reply = await self._call("read_recent", _LUA_READ_RECENT, session_id, [limit])
            return None if reply is None else _decode(reply)

        return await self._guard(session_id, False, op, None)

    async def read_budget(self, session_id: str, token_budget: int) -> list[StoredMessage] | None:
        async def op() -> list[StoredMessage] | None:
            reply = await self._call("read_budget", _LUA_READ_BUDGET, session_id, [token_budget])
            return None if reply is None else history.fit_budget(_decode(reply), token_budget)

        return await self._guard(session_id, False, op, None)

    async def fill(self, session_id: str, snapshot: Snapshot) -> bool:
        window = _window(snapshot, self.max_messages)
        if window is None:
            return False
        messages, complete, base, last_sequence = window
        args = [snapshot.revision, self.ttl, int(complete), base, last_sequence, len(messages), *_pairs(messages)]

        async def op() -> bool:
            return bool(await self._call("fill", _LUA_FILL, session_id, args))

        return await self._guard(session_id, False, op, False)

    async def append(self, session_id: str, revision: int, messages: list[StoredMessage]) -> None:
        args = [
            revision,
            self.ttl,
            self.max_messages,
            messages[0]["sequence"],
            messages[-1]["sequence"],
            len(messages),
            *_pairs(messages),
        ]

        async def op() -> None:
            await self._call("append", _LUA_APPEND, session_id, args)

        await self._guard(session_id, True, op, None)

    async def replace(self, session_id: str, updated: Updated) -> None:
        message = updated.message
        args = [
            updated.revision,
            self.ttl,
            message["sequence"],
            updated.previous_cumulative,
            updated.token_delta,
            _member(message),
        ]

        async def op() -> None:
            await self._call("replace", _LUA_REPLACE, session_id, args)

        await self._guard(session_id, True, op, None)

    async def drop(self, session_id: str) -> None:
        async def op() -> None:
            await self._client().delete(keys.session_cache_meta(session_id), keys.session_cache_messages(session_id))

        await self._guard(session_id, True, op, None)

    async def ping(self) -> bool:
        async def op() -> bool:
            return bool(await self._client().ping())

        return await self._guard(None, False, op, False)


_default: MessageCache | None = None
_default_lock = threading.Lock()


def default_cache() -> MessageCache:
    """The process's L1, chosen by settings: Redis when ``REDIS_URL`` is set."""
    global _default
    with _default_lock:
        if _default is None:
            if settings.REDIS_URL:
                _default = RedisMessageCache(
                    settings.REDIS_URL,
                    ttl=settings.CHAT_CACHE_TTL,
                    max_messages=settings.CHAT_CACHE_MAX_MESSAGES,
                    socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
                    retry_interval=settings.REDIS_RETRY_INTERVAL,
                )
            else:
                _default = LocalMessageCache(ttl=settings.CHAT_CACHE_TTL, max_messages=settings.CHAT_CACHE_MAX_MESSAGES)
        return _default


def reset_default_cache() -> None:
    """Forget the process's L1 (tests switch settings between backends)."""
    global _default
    with _default_lock:
        _default = None
