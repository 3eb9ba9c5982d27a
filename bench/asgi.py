"""The project's ASGI application plus what the websocket benchmark needs inside the server.

- ``/ws/bench/bare/<count>/<size>/`` accepts and sends ``count`` text_delta frames shaped
  like the real ones, as fast as it can: the floor any websocket stack on this server has.
- ``GET /bench/counters`` answers, as JSON, the SQL statements and Redis commands this
  process has sent so far, by kind (``sql``: keyword and table; ``redis``: command name),
  and the Redis round trips
  (``redis_round_trips``). The benchmark reads them before and after a series of turns.
  Counting costs a function call per statement or command (about a microsecond), against
  the milliseconds a turn costs; nothing of ``chat/`` is changed for it.

SQL is counted by an execute wrapper on every database connection the process opens
(Django's ``connection_created``), plus one ``COMMIT`` for each commit of a transaction
(psycopg sends ``BEGIN`` itself: it is not counted). Redis commands are counted where
redis-py packs them (a pipeline counts each of its commands, a Lua script counts as its one
``EVALSHA``: the commands the script runs inside Redis are not seen here) and round trips
where it writes them to the socket.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections import Counter
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.db.backends.base.base import BaseDatabaseWrapper  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.urls import re_path  # noqa: E402

from agentsite.asgi import application as site  # noqa: E402

_lock = threading.Lock()  # database threads count too
_sql: Counter[str] = Counter()
_redis: Counter[str] = Counter()
_round_trips = 0


_DATA = ("SELECT", "INSERT", "UPDATE", "DELETE")
_TABLE = re.compile(r'"(\w+)"')
_FROM = re.compile(r'\bFROM\s+"(\w+)"', re.IGNORECASE)


_PARENTHESES = re.compile(r"\([^()]*\)")


@functools.lru_cache(maxsize=1024)
def _kind(sql: str) -> str:
    """``UPDATE chat_chatsession``: the statement's keyword and its table (the name after
    its own FROM, not a subquery's, else its first quoted name, as Django writes its SQL);
    the keyword alone for anything else."""
    keyword = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    outer, inner = sql, None
    while inner != outer:  # subqueries (and every other parenthesis) out, innermost first
        inner, outer = outer, _PARENTHESES.sub("", outer)
    table = (_FROM.search(outer) or _TABLE.search(sql)) if keyword in _DATA else None
    return f"{keyword} {table.group(1)}" if table else keyword


def _count_sql(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    with _lock:
        _sql[_kind(sql)] += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if _count_sql not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_sql)


def _count_commits() -> None:
    commit = BaseDatabaseWrapper._commit

    def counted(self: BaseDatabaseWrapper) -> Any:
        with _lock:
            _sql["COMMIT"] += 1
        return commit(self)

    BaseDatabaseWrapper._commit = counted  # type: ignore[method-assign]


def _command_name(args: tuple[Any, ...]) -> str:
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    return name.split()[0].upper()


def _count_redis() -> None:
    import redis.asyncio.connection
    import redis.connection

    def counting_pack(pack: Any) -> Any:
        def counted(self: Any, *args: Any) -> Any:
            with _lock:
                _redis[_command_name(args)] += 1
            return pack(self, *args)

        return counted

    def counting_pack_many(pack_many: Any) -> Any:
        def counted(self: Any, commands: Any) -> Any:
            commands = list(commands)
            with _lock:
                _redis.update(_command_name(tuple(command)) for command in commands)
            return pack_many(self, commands)

        return counted

    def counting_send(send: Any) -> Any:
        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            global _round_trips
            with _lock:
                _round_trips += 1
            return send(self, *args, **kwargs)

        return counted

    # The async client packs a pipeline command by command (pack_commands calls
    # pack_command); the sync one packs a pipeline without calling pack_command.
    asynchronous = redis.asyncio.connection.AbstractConnection
    asynchronous.pack_command = counting_pack(asynchronous.pack_command)  # type: ignore[method-assign]
    asynchronous.send_packed_command = counting_send(asynchronous.send_packed_command)  # type: ignore[method-assign]
    synchronous = redis.connection.AbstractConnection
    synchronous.pack_command = counting_pack(synchronous.pack_command)  # type: ignore[method-assign]
    synchronous.pack_commands = counting_pack_many(synchronous.pack_commands)  # type: ignore[method-assign]
    synchronous.send_packed_command = counting_send(synchronous.send_packed_command)  # type: ignore[method-assign]


connection_created.connect(_on_connection)
_count_commits()
_count_redis()


def counters() -> dict[str, Any]:
    with _lock:
        return {"sql": dict(_sql), "redis": dict(_redis), "redis_round_trips": _round_trips}


class BareConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        count = int(self.scope["url_route"]["kwargs"]["count"])
        size = int(self.scope["url_route"]["kwargs"]["size"])
        for index in range(1, count + 1):
            text = f"{index:07d} ".ljust(size, "x")[:size]
            await self.send(text_data='{"id":%d,"type":"text_delta","text":"%s","sequence":2}' % (index, text))


bare = URLRouter([re_path(r"^ws/bench/bare/(?P<count>\d+)/(?P<size>\d+)/$", BareConsumer.as_asgi())])


async def _answer_counters(send: Any) -> None:
    body = json.dumps(counters()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"].startswith("/ws/bench/"):
        return await bare(scope, receive, send)
    if scope["type"] == "http" and scope["path"] == "/bench/counters":
        return await _answer_counters(send)
    return await site(scope, receive, send)
