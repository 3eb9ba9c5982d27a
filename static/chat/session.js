// One open chat: its connection, what its events do to the page, and what the user sends.
//
// Sending: every message gets a fresh client_id and is shown as "Sending…" until the
// server's `message` event for it arrives (the durable acknowledgement). If the socket is
// down it waits; after a reconnect (and resume) it is sent again with the same client_id,
// which the server never stores twice (a resent id is answered by a `message` without id).
// Text typed while a question is open answers it: it is shown on the question's card, and
// the stored tool-results message carrying our client_id is its acknowledgement.
//
// Edits, regenerated replies and switches (versions.js) are answered by a `path` event on
// every socket of the chat: the conversation is dropped from that message on and the new
// path's messages read from the API (those a run goes on to write also come as events).
//
// The context meter (context.js) is read again when what the next prompt holds changes:
// once the chat is loaded, once per run end (a compaction's `summary` is followed by its
// `complete`: read once, then), after a `summary` mid-reply, and after a `path` event.
// A compaction is a run of its own: its `compacting` event (on every page of the chat,
// and replayed to a page opened during it) shows the Compact button as "Compacting…".

import { ChatConnection } from "./connection.js";
import { newId, textOf } from "./dom.js";

const BUSY_RETRIES = 3;
const BUSY_RETRY_MS = 300;

function isTyped(content) {
  return typeof content === "string" || (Array.isArray(content) && !content.some((b) => b && b.type === "tool_result"));
}

export class OpenChat {
  /**
   * @param {object} options
   *   id, isNew, wsUrl, api, view (Conversation), store (ArtifactStore),
   *   ui: { connection(state), model(name), runState(state), title(id, title), created(id),
   *         notify(message, retry?), clearNotices(), announce(text), restoreDraft(text),
   *         fatal(reason), runEnded(), pathChanged(), versionRefused(frame), caughtUp(),
   *         contextChanged(), compacting(on) },
   *   reveal: the sequence of a message to show once the chat is loaded (a search hit), or null
   */
  constructor({ id, isNew, wsUrl, api, view, store, ui, reveal = null }) {
    this.reveal = reveal;
    this.id = id;
    this.exists = !isNew;
    this.api = api;
    this.view = view;
    this.store = store;
    this.ui = ui;
    this.state = "idle";
    this.compacting = false; // a compaction runs (until the run ends)
    this.readyFrame = null;
    this.outgoing = null; // {text, clientId}: sent (or waiting), not yet acknowledged
    this.lastCommand = null; // what a socket-local error is about
    this.connection = new ChatConnection(wsUrl, {
      status: (state) => this.ui.connection(state),
      ready: (frame, info) => this.onReady(frame, info),
      load: (options) => this.load(options),
      event: (frame) => this.onEvent(frame),
      localError: (frame) => this.onLocalError(frame),
      acknowledged: (frame) => this.onAcknowledged(frame),
      resumed: () => {
        this.transmit();
        this.ui.caughtUp();
      },
      fatal: (reason) => this.ui.fatal(reason),
    });
  }

  start() {
    this.connection.start();
  }

  stop() {
    this.connection.stop();
  }

  // --- what the user does ------------------------------------------------------------------

  /** Send a message (or, while a question is open, a typed answer), with the ids of the
   * files uploaded for it; false if one is still on its way. */
  send(text, attachments = []) {
    if (this.outgoing) return false;
    const question = this.state === "awaiting_input" ? this.view.pending : null;
    this.outgoing = { text, attachments, clientId: newId(), state: "waiting", answers: question ? question.tool_use_id : null };
    this.showOutgoing();
    this.ui.runState(this.state, { outgoing: true });
    this.transmit();
    return true;
  }

  /** Where the message on its way is shown: its own bubble, or the card of the question it answers. */
  showOutgoing() {
    const { answers, text, attachments } = this.outgoing;
    const files = attachments.length === 1 ? "1 file" : `${attachments.length} files`;
    if (!answers) this.view.showOutgoing(text || files);
    else if (this.view.pending && this.view.pending.tool_use_id === answers) this.view.lockQuestion(answers, { reply: text });
  }

  transmit() {
    if (!this.outgoing) return;
    const frame = { type: "user_message", text: this.outgoing.text, client_id: this.outgoing.clientId };
    if (this.outgoing.attachments.length) frame.attachments = this.outgoing.attachments;
    this.outgoing.state = this.connection.send(frame) ? "sending" : "waiting";
    if (this.outgoing.state === "sending") this.lastCommand = { kind: "send" };
    this.view.outgoingState(this.outgoing.state);
  }

  cancel() {
    if (this.connection.send({ type: "cancel" })) this.lastCommand = { kind: "cancel" };
  }

  /** Summarise everything before the newest turn now (the Compact button, `/compact`). */
  compact() {
    if (this.state === "running" || this.outgoing) {
      this.ui.notify("The assistant is still answering; compact when it is done.");
      return false;
    }
    if (!this.connection.send({ type: "compact" })) {
      this.ui.notify("Not connected: the chat was not compacted. Try again once the connection is back.");
      return false;
    }
    this.lastCommand = { kind: "compact", state: this.state };
    this.setState("running");
    this.setCompacting(true);
    this.ui.announce("Summarising the earlier messages…");
    return true;
  }

  answer(toolUseId, choice, busyRetries = 0) {
    const frame = { type: "interactive_response", tool_use_id: toolUseId, choice };
    if (!this.connection.send(frame)) {
      this.view.unlockQuestion(toolUseId);
      this.ui.notify("Not connected: your choice was not sent. Pick it again once the connection is back.");
      return;
    }
    this.lastCommand = { kind: "answer", toolUseId, choice, busyRetries };
    this.view.lockQuestion(toolUseId, { choice });
    if (!busyRetries) this.ui.announce(`Sent your choice: ${choice}.`);
  }

  /** A new version of a message you typed; false if the socket is not open. */
  edit(messageId, text) {
    return this.sendVersion({ type: "edit", message_id: messageId, text, client_id: newId() });
  }

  /** A new version of a reply; false if the socket is not open. */
  regenerate(messageId) {
    return this.sendVersion({ type: "regenerate", message_id: messageId });
  }

  /** Show another version of a message; false if the socket is not open. */
  switchTo(messageId) {
    return this.sendVersion({ type: "switch", message_id: messageId });
  }

  sendVersion(frame, busyRetries = 0) {
    if (!this.connection.send(frame)) return false;
    this.lastCommand = { kind: "version", frame, busyRetries };
    return true;
  }

  /** Retry after a failed run: send the last message typed again. */
  retryRun() {
    const last = this.view.lastTyped();
    if (last && last.text) this.send(last.text);
  }

  // --- the connection ----------------------------------------------------------------------

  onReady(frame, { fresh }) {
    this.readyFrame = frame;
    if (frame.model) this.ui.model(frame.model);
    if (!fresh) {
      this.setState(frame.state);
      this.view.setPending(frame.pending);
    }
  }

  async load({ running, resync }) {
    const ready = this.readyFrame;
    const attempt = (this.loads = (this.loads || 0) + 1);
    let messages = [];
    let artifacts = [];
    let state = ready ? ready.state : "idle";
    // A new chat has nothing stored until its first message (unless the server says otherwise).
    const stored = this.exists || resync || (ready && (ready.last_event_id > 0 || ready.state !== "idle"));
    if (stored) {
      try {
        let chat;
        [chat, messages, artifacts] = await Promise.all([
          this.api.getChat(this.id),
          this.api.allMessages(this.id),
          this.api.listArtifacts(this.id),
        ]);
        this.exists = true;
        this.ui.title(this.id, chat.title);
        // Newer than ready's on a resync: the events that would have said so are gone.
        if (resync) state = chat.state;
      } catch (error) {
        if (error.status !== 404) throw error; // not created yet after all
      }
    }
    // Left meanwhile, or a newer load started (a reconnect): this one's data is stale.
    if (this.connection.stopped || attempt !== this.loads) return;
    this.dropped = null;
    if (running) {
      // Rebuilt from the run's events instead (connection.js); the stored text lags. Kept
      // aside in case those events never come (the run's process died with its log).
      const last = messages.at(-1);
      if (last && last.role === "assistant" && !last.finished) {
        this.dropped = last;
        messages = messages.slice(0, -1);
      }
    }
    this.store.setList(artifacts);
    this.view.load(messages, { pending: ready && state === "awaiting_input" ? ready.pending : null });
    if (this.reveal !== null) {
      // The whole conversation shown is loaded above, so the message is on the page.
      this.view.reveal(this.reveal);
      this.reveal = null;
    }
    this.setState(state);
    if (!resync && ready && ready.state === "failed") {
      // The run's own error event, if still in the log, replaces this general notice.
      this.view.runError({ code: "failed", message: "The last reply did not finish." }, () => this.retryRun(), { general: true });
    }
    if (this.outgoing) this.showOutgoing();
    this.ui.contextChanged();
  }

  onEvent(frame) {
    switch (frame.type) {
      case "message":
        if (Array.isArray(frame.omitted) && frame.omitted.includes("content")) this.fetchOmitted(frame);
        else this.onMessage(frame);
        break;
      case "text_delta":
        this.view.delta(frame.sequence, frame.text);
        this.setState("running");
        break;
      case "tool_use":
        this.view.tools.toolUse(frame);
        break;
      case "tool_result":
        this.view.tools.toolResult(frame);
        break;
      case "display":
        this.view.tools.display(frame);
        break;
      case "artifact":
        this.store.update(frame);
        this.view.tools.artifactChanged(frame.tool_use_id);
        if (frame.status === "complete") this.ui.announce(`The artifact “${frame.title}” is ready.`);
        break;
      case "awaiting_user_input":
        this.view.setPending(frame, { announce: true });
        this.setState("awaiting_input");
        this.runEnded();
        break;
      case "path":
        this.onPath(frame);
        break;
      case "compacting":
        this.setState("running");
        this.setCompacting(true);
        break;
      case "title":
        this.ui.title(this.id, frame.title);
        break;
      case "summary":
        this.lastCommand = null;
        this.ui.announce("Earlier messages summarised.");
        // A compaction's `complete` follows at once, and reads the context then.
        if (!this.compacting) this.ui.contextChanged();
        break;
      case "complete":
        this.restoreDropped();
        this.view.stopStreaming();
        if (frame.stop_reason === "cancelled") this.ui.announce("The reply was stopped.");
        if (frame.stop_reason === "nothing_to_compact") this.ui.notify("There is nothing before the newest turn to summarise yet.");
        this.setState("idle");
        this.runEnded();
        break;
      case "error":
        this.restoreDropped();
        this.view.stopStreaming();
        this.view.runError(frame, frame.retryable ? () => this.retryRun() : null);
        this.setState("failed");
        this.runEnded();
        break;
      default:
        break; // a newer server's event this page does not know
    }
  }

  /** A run ended or paused: the sidebar may reorder, and the turn's time and usage are stored now. */
  async runEnded() {
    this.ui.runEnded();
    this.ui.contextChanged();
    const last = this.view.lastTyped();
    if (!last) return;
    try {
      const stored = await this.api.messagesAfter(this.id, last.sequence - 1);
      if (!this.connection.stopped) this.view.setMeta(stored);
    } catch (error) {
      console.warn("the reply's usage could not be read", error);
    }
  }

  /** A message event too big for a frame comes without its content (chat/runs/eventlog.py):
   *  the stored message is read from the API and applied as the event would have been. The
   *  reply it finishes keeps streaming meanwhile, whatever comes first. */
  async fetchOmitted(frame) {
    this.view.hold(frame.sequence);
    try {
      const stored = await this.api.message(this.id, frame.sequence);
      if (stored && !this.connection.stopped) this.onMessage({ ...stored, type: "message" });
    } catch (error) {
      this.ui.notify(`Part of the conversation could not be loaded (${error.message}). Reload the page to see it.`);
    } finally {
      this.view.release(frame.sequence);
    }
  }

  /** The conversation shown changed from frame.sequence on (an edit, a regenerated reply or
   *  a switch, from this page or another): drop it from there and read the new path. */
  async onPath(frame) {
    if (this.lastCommand && this.lastCommand.kind === "version") this.lastCommand = null;
    this.ui.pathChanged();
    const path = (this.paths = (this.paths || 0) + 1);
    this.dropped = null;
    this.view.replaceFrom(frame.sequence);
    try {
      let [chat, messages] = await Promise.all([this.api.getChat(this.id), this.api.allMessages(this.id, frame.sequence - 1)]);
      // Left meanwhile, or the path moved again: the next read has it.
      if (this.connection.stopped || path !== this.paths) return;
      const last = messages.at(-1);
      if (chat.state === "running" && last && last.role === "assistant" && !last.finished && !this.view.has(last.sequence)) {
        // Being written: its events follow (set aside in case they never come, as at load).
        this.dropped = last;
        messages = messages.slice(0, -1);
      }
      for (const message of messages) if (!this.view.has(message.sequence)) this.view.upsert(message, { live: false });
      this.view.setMeta(messages);
      // The next prompt is this path's: the meter (and the summary's divider) follow it.
      this.ui.contextChanged();
    } catch (error) {
      this.ui.notify(`The conversation could not be loaded (${error.message}). Reload the page to see it.`);
    }
  }

  /** The run ended without rebuilding the reply set aside at load: show it as stored. */
  restoreDropped() {
    if (this.dropped && !this.view.has(this.dropped.sequence)) this.view.upsert(this.dropped, { live: false });
    this.dropped = null;
  }

  onMessage(frame) {
    if (this.dropped && frame.sequence === this.dropped.sequence) this.dropped = null;
    const typed = frame.role === "user" && isTyped(frame.content);
    // Ours is the user message with our client_id: a typed message, or the tool results
    // that a typed answer completed. An older server's event carries none: then our text
    // decides, and should the stored text differ, the stored message's client_id (from
    // the API) settles it.
    if (frame.role === "user" && this.outgoing) {
      if (frame.client_id) {
        if (frame.client_id === this.outgoing.clientId) this.acknowledge();
      } else if (typed && textOf(frame.content) === this.outgoing.text) this.acknowledge();
      else if (typed) this.checkOutgoing(frame.sequence, this.outgoing);
    }
    this.view.upsert(frame, { live: true });
    if (frame.role === "user" || !frame.finished) this.setState("running");
    if (typed) {
      this.view.retireRetries();
      if (!this.exists) {
        this.exists = true;
        this.ui.created(this.id);
      }
    }
  }

  async checkOutgoing(sequence, outgoing) {
    try {
      const stored = await this.api.message(this.id, sequence);
      if (stored && stored.client_id === outgoing.clientId && this.outgoing === outgoing) this.acknowledge();
    } catch {
      // Not known yet; a reconnect resends it with its client_id, which settles it too.
    }
  }

  /** A resent client_id that was stored already: the message as stored. */
  onAcknowledged(frame) {
    if (this.outgoing) this.acknowledge();
    this.view.upsert(frame, { live: false });
  }

  acknowledge() {
    this.outgoing = null;
    this.lastCommand = null;
    this.view.removeOutgoing();
    this.ui.runState(this.state, { outgoing: false });
  }

  onLocalError(frame) {
    const command = this.lastCommand;
    this.lastCommand = null;
    if (command && command.kind === "send" && this.outgoing) {
      const outgoing = this.outgoing;
      if (frame.code === "busy" && (outgoing.busyRetries || 0) < BUSY_RETRIES) {
        // The server sends a run's last event (complete, awaiting_user_input) a moment
        // before it releases the chat: try again quietly before saying it is busy.
        outgoing.busyRetries = (outgoing.busyRetries || 0) + 1;
        setTimeout(() => this.outgoing === outgoing && this.transmit(), BUSY_RETRY_MS * outgoing.busyRetries);
        return;
      }
      if (outgoing.answers) {
        // A typed answer that was refused: the question is open again, the text back in the box.
        this.outgoing = null;
        this.view.unlockQuestion(outgoing.answers);
        this.ui.runState(this.state, { outgoing: false });
        this.ui.restoreDraft(outgoing.text);
        this.ui.notify(frame.message);
      } else if (frame.retryable) {
        this.outgoing.state = "failed";
        this.view.outgoingState("failed");
        this.ui.notify(frame.message, () => this.transmit());
      } else {
        const text = this.outgoing.text;
        this.outgoing = null;
        this.view.removeOutgoing();
        this.ui.runState(this.state, { outgoing: false });
        this.ui.restoreDraft(text);
        this.ui.notify(frame.message);
      }
    } else if (command && command.kind === "answer") {
      if (frame.code === "busy" && (command.busyRetries || 0) < BUSY_RETRIES) {
        const retries = (command.busyRetries || 0) + 1;
        setTimeout(() => this.answer(command.toolUseId, command.choice, retries), BUSY_RETRY_MS * retries);
        return;
      }
      this.view.unlockQuestion(command.toolUseId);
      this.ui.notify(frame.message, frame.retryable ? () => this.answer(command.toolUseId, command.choice) : null);
    } else if (command && command.kind === "version") {
      if (frame.code === "busy" && command.busyRetries < BUSY_RETRIES) {
        // As for a message: the run that just ended may not have released the chat yet.
        const retries = command.busyRetries + 1;
        setTimeout(() => {
          if (!this.sendVersion(command.frame, retries)) this.ui.versionRefused({ code: "unavailable", message: "Not connected: try again once the connection is back." });
        }, BUSY_RETRY_MS * retries);
        return;
      }
      this.ui.versionRefused(frame);
    } else if (command && command.kind === "compact") {
      this.setCompacting(false);
      this.setState(command.state); // refused: nothing runs
      this.ui.notify(frame.message, null);
    } else if (command && command.kind === "cancel" && frame.code === "not_running") {
      // It finished on its own meanwhile.
    } else {
      this.ui.notify(frame.message, null);
    }
  }

  setState(state) {
    this.state = state;
    if (state !== "running") this.setCompacting(false); // the run ended (or was never started)
    this.ui.runState(state, { outgoing: Boolean(this.outgoing) });
  }

  setCompacting(on) {
    if (this.compacting === on) return;
    this.compacting = on;
    this.ui.compacting(on);
  }
}
