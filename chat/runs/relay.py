"""What one socket is sent: live events in id order, exactly once, with flow control.

The relay remembers the last id this socket was sent. Live events at or below it are
duplicates and are dropped; one beyond the next expected id means some were lost on the
way (a Redis subscription that broke), and the gap is read back from the event log before
the event is sent. ``resume`` replays from the log; live events that arrive meanwhile then
continue from where the replay ended. Events of another epoch (the log started numbering
again) make the client reload. Plain class: no Channels, testable on its own.

Flow control (a protocol extension): daphne buffers without limit what a client does not
read. A client that acknowledges (``{"type": "ack", "last": id}``) is sent at most
``window`` events beyond its last acknowledgement; the rest wait in the log and follow when
it catches up. A client that never acknowledges is closed once ``unacked_limit`` events
went unacknowledged; it may reconnect and resume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chat import metrics, protocol
from chat.errors import UserError
from chat.ids import ChatRef
from chat.runs.eventlog import EventLog, Replay, frame

REPLAY_CHUNK = 500


class TooSlow(Exception):
    """The client is not reading: close the socket."""


@dataclass
class Sent:
    frames: list[str]

    def resync(self, last_id: int, epoch: str) -> None:
        """The log could not fill a gap, or its numbering started again: the client reloads
        from the API and continues after ``last_id`` (of the log's epoch ``epoch``)."""
        metrics.RESYNCS.inc()
        error = UserError("resync", "Some events are no longer available; reload the conversation.")
        self.frames.append(json.dumps(protocol.error_frame(error, last_event_id=last_id, log_epoch=epoch)))


class EventRelay:
    def __init__(self, chat: ChatRef, log: EventLog, *, last_sent: int, epoch: str, window: int, unacked_limit: int):
        self.chat = chat
        self.log = log
        self.last_sent = last_sent
        self.epoch = epoch
        self.window = window
        self.unacked_limit = unacked_limit
        self.acked: int | None = None  # None until the client first acknowledges
        self._baseline = last_sent  # what counts as acknowledged for a client that never acks

    @property
    def held_back(self) -> bool:
        return self.acked is not None and self.last_sent - self.acked >= self.window

    async def live(self, events: list[tuple[int, bytes]], epoch: str) -> Sent:
        """Frames for events just published."""
        out = Sent(frames=[])
        if epoch != self.epoch and events:
            # The log numbers its events again (Redis lost it): ids this client holds mean
            # nothing now. It reloads and continues with these.
            self.epoch = epoch
            self._restart_at(events[0][0] - 1)
            out.resync(self.last_sent, epoch)
        for event_id, payload in events:
            if event_id <= self.last_sent or self.held_back:
                continue  # a duplicate, or it waits in the log until the client catches up
            if event_id > self.last_sent + 1:
                metrics.GAPS_FILLED.inc(event_id - 1 - self.last_sent)
                await self._catch_up(out, until=event_id - 1)
                if self.held_back or event_id <= self.last_sent:
                    continue
            out.frames.append(frame(event_id, payload))
            self.last_sent = event_id
        self._check_unacked()
        return out

    async def resume(self, after: int) -> Sent:
        """Replay every stored event after ``after``; live ones continue after the last."""
        # Asking for what follows ``after`` says everything up to it arrived.
        self._restart_at(after)
        out = Sent(frames=[])
        await self._catch_up(out, until=None)
        return out

    async def catch_up(self) -> Sent:
        """Whatever the log holds beyond what was sent. A gap is noticed when a later event
        arrives; this finds the events a run published last when they were lost on the way
        (the hub's subscription broke), with nothing after them to reveal it."""
        out = Sent(frames=[])
        last = (await self.log.position(self.chat)).last_id
        if last > self.last_sent:
            await self._catch_up(out, until=last)
            self._check_unacked()
        return out

    async def ack(self, last: int) -> Sent:
        """Record an acknowledgement; send what was held back if the client caught up."""
        was_held = self.held_back
        self.acked = min(last, self.last_sent)
        out = Sent(frames=[])
        if was_held and not self.held_back:
            await self._catch_up(out, until=None)
        return out

    async def _catch_up(self, out: Sent, until: int | None) -> None:
        """Send stored events after ``last_sent`` (up to ``until``), within the window."""
        while not self.held_back and (until is None or self.last_sent < until):
            room = self.window - (self.last_sent - self.acked) if self.acked is not None else REPLAY_CHUNK
            limit = min(REPLAY_CHUNK, room)
            if until is not None:
                limit = min(limit, until - self.last_sent)
            replay: Replay = await self.log.read_after(self.chat, self.last_sent, limit)
            if replay.gap:
                # The events are gone from the log (trimmed, expired), or the client asked
                # past its end: it reloads from the API and continues live from the newest.
                self._restart_at(replay.last_id if until is None else max(self.last_sent, until))
                out.resync(self.last_sent, self.epoch)
                return
            if not replay.events:
                return
            for event_id, payload in replay.events:
                out.frames.append(frame(event_id, payload))
                self.last_sent = event_id
            if len(replay.events) < limit:
                return

    def _restart_at(self, last_sent: int) -> None:
        self.last_sent = self._baseline = last_sent
        if self.acked is not None:
            self.acked = last_sent

    def _check_unacked(self) -> None:
        if self.acked is None and self.last_sent - self._baseline > self.unacked_limit:
            raise TooSlow(f"{self.last_sent - self._baseline} events sent and none acknowledged")
