"""The per-chat event log: every event of a chat, numbered 1, 2, 3…, for replay.

A reconnecting client asks for the events after the last id it saw. The log is short
(capped and expiring): it covers reconnects and pages opened mid-run; what is older is in
the durable store and comes from the API. ``Replay.gap`` says when the log no longer
reaches back far enough, and the client must reload instead of replaying.

With ``REDIS_URL`` the log is a Redis Stream per chat whose entry ids are ``0-<n>``: one
Lua script numbers and appends a batch of events atomically, so ids are increasing and,
once any id is returned, every smaller id is already readable. The same script publishes
the batch on the chat's Redis channel, where the processes with sockets on that chat
hear it (``chat.runs.hub``): fan-out to other processes costs no extra round trip.
Without Redis it is in process memory.

The log has an *epoch*, a token that changes whenever its numbering starts again (it
expired, Redis lost it, or a memory log's process restarted), so a client can tell that
ids it remembers belong to an earlier numbering. Every position read creates it, so even
a chat that has no events yet has one.

Events are stored as JSON without their id; ``frame()`` splices the id in, so an event is
serialised once however many sockets receive it.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.ids import ChatRef
from chat.redis_client import SharedRedis
from chat.storage import keys

# daphne refuses to send a websocket message over 1 MiB (and closes the socket); an event
# larger than this goes out without its big fields, marked ``omitted``: the client reads
# the whole of it from the API (the message or artifact is stored in full).
MAX_EVENT_BYTES = 256 * 1024
_SMALL_FIELD_BYTES = 1024


def encode(event: dict[str, Any]) -> bytes:
    """An event (as the agent loop makes it: no ``id``) as JSON. orjson writes NaN and
    Infinity (from tool output) as null, so the browser never receives JSON it cannot parse."""
    if not event.get("type"):
        raise ValueError("an event needs a type")
    payload = orjson.dumps(event)
    if len(payload) > MAX_EVENT_BYTES:
        small = {k: v for k, v in event.items() if len(orjson.dumps(v)) <= _SMALL_FIELD_BYTES}
        payload = orjson.dumps({**small, "omitted": sorted(set(event) - set(small))})
    return payload


def frame(event_id: int, payload: bytes) -> str:
    """The websocket text frame of a stored event: its JSON with ``id`` first."""
    return '{"id":%d,%s' % (event_id, payload[1:].decode())


@dataclass(frozen=True)
class Replay:
    """Stored events after some id, as (id, payload) in order."""

    events: list[tuple[int, bytes]]
    # The newest id the log has handed out.
    last_id: int
    # True when events after the requested id are missing (trimmed or expired): the client
    # cannot be brought up to date from the log and must reload.
    gap: bool


@dataclass(frozen=True)
class Position:
    # The last id handed out (0: none yet).
    last_id: int
    epoch: str
    # The id just before the current (or last) run's first event: a page opened mid-run
    # replays from here to show the reply so far.
    run_start: int = 0


@dataclass(frozen=True)
class Appended:
    # The id of the batch's last event (the first is last - len + 1).
    last_id: int
    epoch: str


class EventLog(ABC):
    def __init__(self, *, max_events: int, ttl: int):
        self.max_events = max_events
        self.ttl = ttl

    @abstractmethod
    async def append(self, chat: ChatRef, payloads: list[bytes], *, floor: int = 0, run_start: bool = False) -> Appended:
        """Store a batch. Its ids follow the last one handed out, or ``floor`` if that is
        higher (ids a process handed out itself while the log was unreachable are never
        given out again). ``run_start``: the batch opens a run."""

    @abstractmethod
    async def read_after(self, chat: ChatRef, after: int, limit: int = 1000) -> Replay: ...

    @abstractmethod
    async def position(self, chat: ChatRef) -> Position: ...

    async def last_id(self, chat: ChatRef) -> int:
        return (await self.position(chat)).last_id


@dataclass
class _MemoryLog:
    events: deque[tuple[int, bytes]]
    last: int = 0
    run_start: int = 0
    expires_at: float = 0.0
    epoch: str = field(default_factory=lambda: secrets.token_hex(6))


class MemoryEventLog(EventLog):
    """One process's log: enough for the embedded mode, where one process serves all."""

    def __init__(self, *, max_events: int, ttl: int, max_sessions: int = 10_000):
        super().__init__(max_events=max_events, ttl=ttl)
        self.max_sessions = max_sessions
        self._logs: OrderedDict[ChatRef, _MemoryLog] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, chat: ChatRef) -> _MemoryLog | None:
        found = self._logs.get(chat)
        if found is None or found.expires_at <= time.monotonic():
            return None
        return found

    def _get_or_start(self, chat: ChatRef) -> _MemoryLog:
        log = self._get(chat) or _MemoryLog(events=deque(maxlen=self.max_events))
        log.expires_at = time.monotonic() + self.ttl
        self._logs[chat] = log
        self._logs.move_to_end(chat)
        while len(self._logs) > self.max_sessions:
            self._logs.popitem(last=False)
        return log

    async def append(self, chat: ChatRef, payloads: list[bytes], *, floor: int = 0, run_start: bool = False) -> Appended:
        with self._lock:
            log = self._get_or_start(chat)
            log.last = max(log.last, floor)
            if run_start:
                log.run_start = log.last
            for payload in payloads:
                log.last += 1
                log.events.append((log.last, payload))
            return Appended(log.last, log.epoch)

    async def read_after(self, chat: ChatRef, after: int, limit: int = 1000) -> Replay:
        with self._lock:
            log = self._get(chat)
            if log is None:
                return _replay([], after, 0)
            found = [(i, p) for i, p in log.events if i > after][:limit]
            return _replay(found, after, log.last)

    async def position(self, chat: ChatRef) -> Position:
        with self._lock:
            log = self._get_or_start(chat)
            return Position(log.last, log.epoch, log.run_start)


# KEYS[1] is a hash: ``n`` the last id, ``epoch`` set when the numbering starts, ``batch``
# the token of the last batch appended (a retried batch that did land is not added twice),
# ``run`` the id before the current run's first event. One key, so they can only expire
# together. KEYS[2] the stream. ARGV: ttl, max events, epoch, batch, floor, run start (0/1),
# channel (empty: publish nothing), origin, payloads. Returns {last id, epoch}.
_LUA_APPEND = """
if redis.call('HGET', KEYS[1], 'batch') == ARGV[4] then
  return redis.call('HMGET', KEYS[1], 'n', 'epoch')
end
local count = #ARGV - 8
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[3])
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local floor = tonumber(ARGV[5])
if n < floor then n = floor end
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'run', n) end
local last = n + count
redis.call('HSET', KEYS[1], 'n', last, 'batch', ARGV[4])
for i = 1, count do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-' .. (n + i), 'e', ARGV[i + 8])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], ARGV[8] .. '\\n' .. epoch .. '\\n' .. (n + 1) .. '\\n' .. table.concat(ARGV, '\\n', 9))
end
return {last, epoch}
"""

# A position read starts the numbering's epoch if there is none yet, so that ``ready``
# always names one. ARGV: ttl, epoch.
_LUA_POSITION = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return redis.call('HMGET', KEYS[1], 'n', 'epoch', 'run')
"""

# Pauses before retrying an append that timed out. A loaded process can miss a short
# socket timeout; an event lost here is lost for every socket, so it is worth a retry.
APPEND_RETRY_PAUSES = (0.05, 0.25)


class RedisEventLog(EventLog):
    """A Redis Stream per chat, shared by every process. ``origin`` names this process in
    what it publishes, so that its own subscription can skip what it delivered itself."""

    def __init__(self, redis: SharedRedis, *, max_events: int, ttl: int, origin: str = ""):
        super().__init__(max_events=max_events, ttl=ttl)
        self.redis = redis
        self.origin = origin
        self._scripts: dict[str, Any] = {}
        # Batch tokens and epochs: unique per process (a random prefix) and per call (a
        # counter), without drawing on the system's entropy for every append.
        self._prefix = secrets.token_hex(6)
        self._tokens = itertools.count()

    def _token(self) -> str:
        return f"{self._prefix}{next(self._tokens):x}"

    def _keys(self, chat: ChatRef) -> list[str]:
        return [keys.session_event_counter(chat), keys.session_event_log(chat)]

    def _script(self, client: Any, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return script

    async def append(self, chat: ChatRef, payloads: list[bytes], *, floor: int = 0, run_start: bool = False) -> Appended:
        client = self.redis.get()
        script = self._script(client, _LUA_APPEND)
        channel = keys.session_channel(chat) if self.origin else ""
        args = [
            self.ttl,
            self.max_events,
            self._token(),
            self._token(),
            floor,
            int(run_start),
            channel,
            self.origin,
            *payloads,
        ]
        pauses = iter(APPEND_RETRY_PAUSES)
        while True:
            try:
                last, epoch = await script(keys=self._keys(chat), args=args, client=client)
                return Appended(int(last), epoch.decode())
            except (RedisTimeoutError, asyncio.TimeoutError):
                # Timed out, not refused: the script may even have run; the batch token
                # makes a retry add nothing twice.
                pause = next(pauses, None)
                if pause is None:
                    raise
                await asyncio.sleep(pause)

    async def read_after(self, chat: ChatRef, after: int, limit: int = 1000) -> Replay:
        client = self.redis.get()
        counter, stream = self._keys(chat)
        async with client.pipeline(transaction=True) as pipe:
            pipe.xrange(stream, min=f"(0-{after}", max="+", count=limit)
            pipe.hget(counter, "n")
            entries, last = await pipe.execute()
        found = [(int(entry_id.split(b"-")[1]), fields[b"e"]) for entry_id, fields in entries]
        return _replay(found, after, int(last or 0))

    async def position(self, chat: ChatRef) -> Position:
        client = self.redis.get()
        script = self._script(client, _LUA_POSITION)
        last, epoch, run = await script(keys=self._keys(chat)[:1], args=[self.ttl, self._token()], client=client)
        return Position(int(last or 0), epoch.decode(), int(run or 0))


def _replay(found: list[tuple[int, bytes]], after: int, last: int) -> Replay:
    if after > last:
        # The client saw ids this log never handed out: the log expired or the process
        # restarted (memory mode) and numbering began again.
        return Replay(events=[], last_id=last, gap=True)
    expected_first = after + 1
    gap = last > after and (not found or found[0][0] != expected_first)
    return Replay(events=found, last_id=last, gap=gap)
