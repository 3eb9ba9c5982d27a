// The websocket protocol (v1, chat/consumers.py) from the browser's side: every logged event
// exactly once and in order, across reconnects, with flow-control acknowledgements.
//
// - Logged frames carry an increasing `id`. The last id processed is remembered; a frame at
//   or below it is a duplicate and dropped; one beyond the next id is a gap, answered by
//   `resume` after the last id (the server replays the rest, then continues live).
// - The first `ready` of a page (or one whose last_event_id is below ours, or whose
//   log_epoch changed: the server's log started numbering again) loads the conversation
//   from the API while frames wait in a buffer. A chat
//   that is running is then rebuilt from its run's events (`resume` after run_events_after);
//   otherwise the buffered frames newer than ready.last_event_id are applied.
// - Any later `ready` (a reconnect) sends `resume` after the last id seen.
// - `resync` (events gone from the log): reload from the API, continue after its id.
// - `ack` right after `ready` (it opts this socket in to flow control before anything
//   streams), then every ACK_EVERY events and within ACK_DELAY_MS of any unacknowledged one.
// - A lost connection reconnects with exponential backoff (with jitter); 4401 and 4404 are final.

const ACK_EVERY = 50;
const ACK_DELAY_MS = 250;
const RESUME_RETRY_MS = 3000;
const BACKOFF_BASE_MS = 400;
const BACKOFF_MAX_MS = 8000;

export const CLOSE = { UNAUTHENTICATED: 4401, NOT_FOUND: 4404, TOO_SLOW: 4408, CLIENT_DROP: 4000 };

export class ChatConnection {
  /**
   * @param {string} url  the socket URL (ws[s]://host/ws/chat/<id>/)
   * @param {object} on   callbacks:
   *   status(state)                  "connecting" | "connected" | "disconnected" | "closed"
   *   ready(frame, {fresh})          every ready frame; fresh when a full load follows
   *   load({running, resync})        async: (re)load the conversation from the API
   *   event(frame)                   a logged event, in order, once
   *   localError(frame)              an error about a frame this socket sent
   *   acknowledged(frame)            a resent client_id, already stored: its message
   *   resumed()                      caught up after (re)connecting: resend what is unsent
   *   fatal(reason)                  "unauthenticated" | "not_found": no reconnect
   */
  constructor(url, on) {
    this.url = url;
    this.on = on;
    this.ws = null;
    this.lastId = null; // null until the first load: nothing is known yet
    this.buffer = null; // frames that arrive while the conversation loads
    this.unacked = 0;
    this.lastAcked = 0;
    this.ackTimer = null;
    this.resumeSentAt = 0;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.holdUntil = 0;
    this.stopped = false;
    // What happened on this chat's connection (shown to tests and when debugging).
    this.stats = { opened: 0, resumes: 0, loads: 0, gaps: 0, acks: 0 };
    this.onOnline = () => {
      if (!this.ws && !this.stopped) this.open();
    };
    window.addEventListener("online", this.onOnline);
  }

  start() {
    this.open();
  }

  /** Close for good (the page moved to another chat). */
  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.ackTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "leaving the chat");
  }

  /** Send a frame now; false if the socket is not open (the caller keeps it for later). */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.buffer) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  /** Test hook: drop the socket as a network failure would; reconnect no sooner than holdMs. */
  drop(holdMs = 0) {
    this.holdUntil = Date.now() + holdMs;
    if (this.ws) this.ws.close(CLOSE.CLIENT_DROP, "dropped");
  }

  open() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.stopped) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.stats.opened += 1;
    this.buffer = null;
    this.on.status("connecting");
    ws.onmessage = (message) => {
      if (ws === this.ws) this.receive(message.data);
    };
    ws.onclose = (close) => {
      if (ws === this.ws) this.closed(close);
    };
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      console.warn("ignored a frame that is not JSON");
      return;
    }
    if (typeof frame.id !== "number") {
      this.local(frame);
    } else if (this.buffer) {
      this.buffer.push(frame);
    } else {
      this.accept(frame);
    }
  }

  local(frame) {
    if (frame.type === "ready") {
      this.ready(frame);
    } else if (frame.type === "error" && frame.code === "resync") {
      this.resync(frame.last_event_id);
    } else if (frame.type === "error") {
      this.on.localError(frame);
    } else if (frame.type === "message") {
      this.on.acknowledged(frame);
    }
  }

  async ready(frame) {
    const ws = this.ws;
    this.attempt = 0;
    // A different epoch: the log numbered its events again (it expired, or the server's
    // memory log restarted), so the ids this page remembers mean nothing now.
    const renumbered = this.epoch !== undefined && frame.log_epoch && frame.log_epoch !== this.epoch;
    if (frame.log_epoch) this.epoch = frame.log_epoch;
    const fresh = this.lastId === null || frame.last_event_id < this.lastId || renumbered;
    // What came before this socket is covered: by the history a fresh page loads, or by
    // what this page already has (the resume below replays the rest).
    const covered = fresh ? frame.last_event_id : this.lastId;
    if (this.send({ type: "ack", last: covered })) {
      this.stats.acks += 1;
      this.lastAcked = covered;
    }
    this.on.ready(frame, { fresh });
    this.on.status("connected");
    if (!fresh) {
      this.sendResume(this.lastId);
      this.on.resumed();
      return;
    }
    const running = frame.state === "running" && typeof frame.run_events_after === "number";
    if (!(await this.reload(ws, { running, resync: false }))) return;
    if (running) {
      // The reply in progress is rebuilt from its run's events, not from the stored text,
      // which lags behind the stream.
      this.buffer = null;
      this.lastId = frame.run_events_after;
      this.sendResume(this.lastId);
    } else {
      this.lastId = frame.last_event_id;
      this.flush();
    }
    this.on.resumed();
  }

  async resync(lastEventId) {
    const ws = this.ws;
    if (!(await this.reload(ws, { running: false, resync: true }))) return;
    this.lastId = lastEventId;
    this.flush();
  }

  /** Load the conversation with frames held back; false if this socket is gone meanwhile. */
  async reload(ws, options) {
    this.buffer = [];
    this.stats.loads += 1;
    try {
      await this.on.load(options);
    } catch (error) {
      console.error("loading the conversation failed", error);
      if (ws === this.ws) ws.close(CLOSE.CLIENT_DROP, "load failed"); // try again after a backoff
      return false;
    }
    return ws === this.ws && !this.stopped;
  }

  flush() {
    const frames = this.buffer || [];
    this.buffer = null;
    for (const frame of frames) this.accept(frame);
  }

  accept(frame) {
    if (this.lastId === null || frame.id <= this.lastId) return; // before our view, or a duplicate
    if (frame.id !== this.lastId + 1) {
      // A gap: ask for the rest. Frames already on their way are dropped until it arrives.
      this.stats.gaps += 1;
      if (Date.now() - this.resumeSentAt > RESUME_RETRY_MS) this.sendResume(this.lastId);
      return;
    }
    this.lastId = frame.id;
    this.resumeSentAt = 0;
    try {
      this.on.event(frame);
    } catch (error) {
      console.error("an event could not be shown", frame, error);
    }
    this.noteProcessed();
  }

  sendResume(after) {
    this.stats.resumes += 1;
    this.resumeSentAt = Date.now();
    // The server counts acknowledgements from `after` again (relay.resume), and so do we.
    this.lastAcked = Math.min(this.lastAcked, after);
    this.send({ type: "resume", after });
  }

  noteProcessed() {
    this.unacked += 1;
    if (this.unacked >= ACK_EVERY) {
      this.sendAck();
    } else if (!this.ackTimer) {
      this.ackTimer = setTimeout(() => this.sendAck(), ACK_DELAY_MS);
    }
  }

  sendAck() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.lastId === null || this.lastId <= this.lastAcked) return;
    if (this.send({ type: "ack", last: this.lastId })) {
      this.stats.acks += 1;
      this.lastAcked = this.lastId;
      this.unacked = 0;
    }
  }

  closed(close) {
    this.ws = null;
    this.buffer = null;
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.unacked = 0;
    this.lastAcked = 0; // a new socket starts without acknowledgements
    if (this.stopped) return;
    if (close.code === CLOSE.UNAUTHENTICATED) {
      this.on.status("closed");
      this.on.fatal("unauthenticated");
      return;
    }
    if (close.code === CLOSE.NOT_FOUND) {
      this.on.status("closed");
      this.on.fatal("not_found");
      return;
    }
    this.on.status("disconnected");
    // Too slow (4408): we fell behind; reconnect at once and resume.
    const delay = close.code === CLOSE.TOO_SLOW ? 0 : this.backoff();
    this.reconnectTimer = setTimeout(() => this.open(), Math.max(delay, this.holdUntil - Date.now()));
  }

  backoff() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    return base * (0.8 + Math.random() * 0.4);
  }
}
