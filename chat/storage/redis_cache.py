"""The L1 contract (``chat.storage.cache``) on Redis, shared by every process.

Each operation is one Lua script, so checking the revision and changing the entry happen
atomically in Redis, in one round trip. Failures are logged once and degrade to misses.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from chat.redis_client import BREAKER, REDIS_ERRORS, RedisUnavailable, SharedRedis
from chat.storage import keys
from chat.storage.cache import MessageCache, cache_window, decode_members, encode_member
from chat.storage.database import Snapshot, StoredMessage, Updated

T = TypeVar("T")

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
-- ARGV[6] is '1' when the revision before was a fork to just before these messages.
local forked = ARGV[6] == '1'
local m = redis.call('HMGET', KEYS[1], 'rev', 'filled', 'last_seq', 'count')
if not m[1] then return tombstone(rev, ttl) end
if tonumber(m[1]) >= rev then return 1 end
local expected = rev - 1
if forked then expected = rev - 2 end
if tonumber(m[1]) ~= expected or m[2] ~= '1' or not intact(m[4]) then return tombstone(rev, ttl) end
local after, last, count = tonumber(ARGV[4]) - 1, tonumber(m[3]), tonumber(m[4])
if forked then
  -- Keep the tail up to the fork (scores rise along the path, so ranks are sequences).
  local keep = after - (last - count)
  if keep < 0 or after > last then return tombstone(rev, ttl) end
  if keep < count then redis.call('ZREMRANGEBYRANK', KEYS[2], keep, -1) end
  count = keep
elseif last ~= after then
  return tombstone(rev, ttl)
end
zadd_from(7)
local n = count + (#ARGV - 6) / 2
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

_LUA_INVALIDATE = _LUA_COMMON + """
local rev = tonumber(ARGV[1])
local m = redis.call('HGET', KEYS[1], 'rev')
if m and tonumber(m) >= rev then return 1 end
return tombstone(rev, ARGV[2])
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



def _pairs(messages: list[StoredMessage]) -> list[Any]:
    out: list[Any] = []
    for m in messages:
        out += [m["cumulative_tokens"], encode_member(m)]
    return out


def _decode(reply: list[bytes]) -> list[StoredMessage]:
    """A WITHSCORES reply: member, score, member, score, …"""
    return decode_members(reply[1::2], reply[0::2])


class RedisMessageCache(MessageCache):
    """The contract on Redis. Failures degrade to misses.

    A failure opens the process's Redis breaker (``chat.redis_client``): the cache is
    bypassed until it closes. Sessions written while it was bypassed are remembered and
    their entries deleted first thing once Redis answers again, so data cached before the
    outage is not served after it.
    """

    MAX_DIRTY = 100_000

    def __init__(self, redis: SharedRedis, *, ttl: int, max_messages: int):
        super().__init__(ttl=ttl, max_messages=max_messages)
        self.redis = redis
        self._scripts: dict[str, Any] = {}
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
        try:
            # A backstop in case a socket timeout does not fire (DNS, TLS handshakes).
            async with asyncio.timeout(self.redis.deadline):
                if self._dirty:
                    await self._flush_dirty()
                result = await op()
        except REDIS_ERRORS as exc:
            if write and session_id:
                self._remember_dirty(session_id)
            if not isinstance(exc, RedisUnavailable):
                BREAKER.failed(exc)  # a backstop timeout never reached the client's own check
            return default
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

    async def read_recent(self, session_id: str, limit: int) -> list[StoredMessage] | None:
        async def op() -> list[StoredMessage] | None:
            reply = await self._call("read_recent", _LUA_READ_RECENT, session_id, [limit])
            return None if reply is None else _decode(reply)

        return await self._guard(session_id, False, op, None)

    async def read_budget(self, session_id: str, token_budget: int) -> list[StoredMessage] | None:
        async def op() -> list[StoredMessage] | None:
            reply = await self._call("read_budget", _LUA_READ_BUDGET, session_id, [token_budget])
            return None if reply is None else _decode(reply)

        return await self._guard(session_id, False, op, None)

    async def fill(self, session_id: str, snapshot: Snapshot) -> bool:
        window = cache_window(snapshot, self.max_messages)
        if window is None:
            return False
        messages, complete, base, last_sequence = window
        args = [snapshot.revision, self.ttl, int(complete), base, last_sequence, len(messages), *_pairs(messages)]

        async def op() -> bool:
            return bool(await self._call("fill", _LUA_FILL, session_id, args))

        return await self._guard(session_id, False, op, False)

    async def append(self, session_id: str, revision: int, messages: list[StoredMessage], *, forked: bool = False) -> None:
        args = [
            revision,
            self.ttl,
            self.max_messages,
            messages[0]["sequence"],
            messages[-1]["sequence"],
            int(forked),
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
            encode_member(message),
        ]

        async def op() -> None:
            await self._call("replace", _LUA_REPLACE, session_id, args)

        await self._guard(session_id, True, op, None)

    async def invalidate(self, session_id: str, revision: int) -> None:
        async def op() -> None:
            await self._call("invalidate", _LUA_INVALIDATE, session_id, [revision, self.ttl])

        await self._guard(session_id, True, op, None)

    async def drop(self, session_id: str) -> None:
        async def op() -> None:
            await self._client().delete(keys.session_cache_meta(session_id), keys.session_cache_messages(session_id))

        await self._guard(session_id, True, op, None)

    async def ping(self) -> bool:
        async def op() -> bool:
            return bool(await self._client().ping())

        return await self._guard(None, False, op, False)
