"""Which serving processes are alive, and so which runs are.

Each process is a ``Worker`` row that it beats every ``RUN_HEARTBEAT_INTERVAL``; every run
it claims names it (``ChatSession.run_worker``). A run whose worker's beat is older than
``RUN_STALE_AFTER`` died with its process: the next user action on that chat, a socket
opening on it, or any process's periodic sweep fails it (``services.fail_stale_runs``).
One beat per process, not one per run: 1 UPDATE a second per process, whatever it runs.

The beat comes from a thread of its own, so that an event loop busy with hundreds of turn
starts never looks dead; but it beats only while the loop still ticks, so a wedged loop
does. A worker whose row was deleted (another process declared it dead) cancels its runs:
their claims are gone.

A process judges others only after its own beats have succeeded for ``RUN_STALE_AFTER``:
after a database outage every beat is old, and no run is failed for that.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from chat.db import database_failed
from chat.models import Worker

logger = logging.getLogger(__name__)


class Liveness:
    def __init__(self) -> None:
        self.worker_id = uuid.uuid4()
        # Called in the event loop when this worker was declared dead: cancel its runs.
        self.on_declared_dead: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick = time.monotonic()
        self._up_since: float | None = None  # beating without failure since (monotonic)

    def start(self) -> None:
        """Register and start beating (in the running event loop's process)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._ticker = self._loop.create_task(self._tick_forever())
        self._thread = threading.Thread(target=self._beat_forever, name="agentsite-liveness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the row stays: a restart of this process is a new worker)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def stale_cutoff(self) -> dt.datetime | None:
        """Beats older than this are a dead worker's; None while this process may not judge."""
        if self._up_since is None or time.monotonic() - self._up_since < settings.RUN_STALE_AFTER:
            return None
        return timezone.now() - dt.timedelta(seconds=settings.RUN_STALE_AFTER)

    def beat(self) -> bool:
        """One beat; False if this worker had been declared dead (its row was gone)."""
        if Worker.objects.filter(id=self.worker_id).update(beat_at=timezone.now()):
            return True
        Worker.objects.create(id=self.worker_id, host=socket.gethostname()[:255], pid=os.getpid(), beat_at=timezone.now())
        return self._up_since is None  # the first beat registers; a later missing row is a verdict

    async def _tick_forever(self) -> None:
        while True:
            self._tick = time.monotonic()
            await asyncio.sleep(settings.RUN_HEARTBEAT_INTERVAL / 2)

    def _beat_forever(self) -> None:
        try:
            while not self._stop.is_set():
                if time.monotonic() - self._tick < settings.RUN_STALE_AFTER / 2:
                    self._beat_safely()
                self._stop.wait(settings.RUN_HEARTBEAT_INTERVAL)
        finally:
            connection.close()

    def _beat_safely(self) -> None:
        try:
            alive = self.beat()
        except DatabaseError:
            database_failed()
            if self._up_since is not None:
                logger.warning("worker heartbeat failed: the database is unreachable", exc_info=True)
            self._up_since = None
            connection.close()  # a broken connection is not reused
            return
        if self._up_since is None:
            self._up_since = time.monotonic()
        if not alive:
            logger.warning("this worker was declared dead by another process; stopping its runs")
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.on_declared_dead)
