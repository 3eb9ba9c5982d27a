// The conversation on screen: messages by sequence, the reply being streamed, and under
// each tool call its card (chart, analysis, question, artifact) or result line.
//
// Messages are keyed by sequence and replaced whole when a newer copy arrives, so applying
// the same stored message twice (history, then a replayed event) changes nothing. A reply
// streams as Markdown text built from text_delta frames; its final `message` replaces it
// with the stored content, and data-stream-check records whether the streamed text was the
// same (a duplicated or missing delta would show as "mismatch").
//
// Tool calls (tool_use blocks of a reply) get a slot each. What fills it comes from the
// tool-results message (history) or from live events (tool_use, artifact, display,
// tool_result, awaiting_user_input), whichever arrives; the results message itself has no
// bubble of its own.

import { h, textOf } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { answerOf, artifactCard, displayCard, questionCard, toolLine } from "./cards.js";

const ANNOUNCE_LIMIT = 1200;
const NEAR_BOTTOM_PX = 120;

function isToolResults(content) {
  return Array.isArray(content) && content.some((block) => block && block.type === "tool_result");
}

/** What the user typed, from a user message's content (string, or text blocks). */
function typedText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((b) => b && b.type === "text" && typeof b.text === "string")
    .map((b) => b.text)
    .join("\n");
}

const CURSOR_HOSTS = new Set(["P", "UL", "OL", "LI", "BLOCKQUOTE", "H1", "H2", "H3", "H4", "H5", "H6", "PRE", "CODE", "EM", "STRONG"]);

/** Where the streaming cursor goes: the end of the last text, not a line of its own. */
function cursorHost(root) {
  let host = root;
  for (;;) {
    let last = host.lastChild;
    while (last && last.nodeType === Node.TEXT_NODE && !last.textContent.trim()) last = last.previousSibling;
    if (!last || last.nodeType !== Node.ELEMENT_NODE || !CURSOR_HOSTS.has(last.tagName)) return host;
    host = last;
  }
}

export class Conversation {
  /**
   * @param {HTMLOListElement} list
   * @param {HTMLElement} scroller
   * @param {object} options  store (artifacts), onAnswer(id, choice), onOpenArtifact(id, opener), announce(text)
   */
  constructor(list, scroller, { store, onAnswer, onOpenArtifact, announce, onEmptyChange }) {
    this.list = list;
    this.scroller = scroller;
    this.store = store;
    this.onAnswer = onAnswer;
    this.onOpenArtifact = onOpenArtifact;
    this.announce = announce;
    this.onEmptyChange = onEmptyChange;
    this.reset();
  }

  reset() {
    this.list.replaceChildren();
    this.messages = new Map(); // sequence -> entry
    this.slots = new Map(); // tool_use_id -> slot element
    this.uses = new Map(); // tool_use_id -> tool_use block
    this.results = new Map(); // tool_use_id -> tool_result block (with display_data …)
    this.running = new Set(); // tool_use_ids announced by tool_use, no result yet
    this.sending = new Map(); // tool_use_id -> the choice sent, not yet confirmed
    this.pending = null; // the open question
    this.outgoing = null; // the user's message not yet stored
    this.renderQueue = new Set();
    this.frame = null;
    this.held = new Set(); // sequences whose final content is being read from the API
    this.changed();
  }

  /** The final content of `sequence` is on its way (from the API): keep it as it is. */
  hold(sequence) {
    this.held.add(sequence);
  }

  release(sequence) {
    this.held.delete(sequence);
    const entry = this.messages.get(sequence);
    if (entry && entry.streaming && this.stoppedWhileHeld) this.stopStreaming(this.stoppedWhileHeld);
  }

  /** Rebuild from stored messages (the API), with the open question if there is one. */
  load(messages, { pending = null } = {}) {
    this.reset();
    for (const message of messages) this.upsert(message, { live: false });
    this.setPending(pending);
    this.scrollToBottom();
  }

  has(sequence) {
    return this.messages.has(sequence);
  }

  get isEmpty() {
    return this.messages.size === 0 && !this.outgoing;
  }

  changed() {
    if (this.onEmptyChange) this.onEmptyChange(this.isEmpty);
  }

  // --- messages ----------------------------------------------------------------------------

  /** A message as stored (API) or announced (`message` event). */
  upsert(message, { live }) {
    const follow = this.nearBottom();
    let entry = this.messages.get(message.sequence);
    if (!entry) entry = this.createEntry(message.sequence, message.role);
    const wasStreaming = entry.streaming;
    entry.content = message.content;
    entry.finished = message.finished !== false;
    if (message.role === "assistant") {
      if (live && !entry.finished) {
        // A reply starting: its text follows as deltas.
        entry.streaming = true;
        entry.streamText = textOf(message.content);
        entry.fromStart = entry.streamText === "";
        entry.note = null;
        if (!wasStreaming) this.announce("The assistant is replying.");
      } else {
        if (wasStreaming && entry.finished) this.finishStream(entry);
        entry.streaming = false;
      }
      this.renderAssistant(entry);
    } else {
      this.renderUser(entry);
    }
    this.changed();
    if (follow) this.scrollToBottom();
  }

  finishStream(entry) {
    const final = textOf(entry.content);
    if (entry.fromStart) {
      const same = final === entry.streamText;
      entry.el.dataset.streamCheck = same ? "match" : "mismatch";
      if (!same) console.warn("streamed text differs from the stored reply", { streamed: entry.streamText, stored: final });
    }
    if (final.trim()) {
      const text = final.length > ANNOUNCE_LIMIT ? `${final.slice(0, ANNOUNCE_LIMIT)}…` : final;
      this.announce(`The assistant replied: ${text}`);
    }
  }

  /** More text of the reply stored as `sequence`. */
  delta(sequence, text) {
    let entry = this.messages.get(sequence);
    if (!entry) {
      // Its start was never seen (a resync mid-reply): show what arrives from here.
      entry = this.createEntry(sequence, "assistant");
      entry.content = [];
      entry.finished = false;
    }
    if (entry.finished) return;
    if (!entry.streaming) {
      entry.streaming = true;
      entry.streamText = textOf(entry.content);
      entry.fromStart = false;
    }
    entry.streamText += text;
    this.scheduleRender(entry);
  }

  /** The run ended (complete or error): replies still streaming keep what they have. */
  stopStreaming(reason) {
    this.stoppedWhileHeld = this.held.size ? reason : null;
    for (const entry of this.messages.values()) {
      if (!entry.streaming || this.held.has(entry.sequence)) continue;
      entry.streaming = false;
      entry.finished = false;
      entry.content = [{ type: "text", text: entry.streamText }];
      entry.note = reason === "cancelled" ? "You stopped this reply." : "This reply was interrupted.";
      this.renderAssistant(entry);
    }
    const stale = [...this.running];
    this.running.clear();
    for (const id of stale) this.renderSlot(id);
    if (this.pending === null) {
      for (const id of [...this.sending.keys()]) this.unlockQuestion(id);
    }
  }

  createEntry(sequence, role) {
    const el = h("li", { class: `message ${role}`, dataset: { sequence: String(sequence), role } });
    el.append(h("p", { class: "message-author" }, role === "user" ? "You" : "Assistant"), h("div", { class: "message-body" }));
    const entry = { sequence, role, el, body: el.lastElementChild, content: "", finished: true, streaming: false, streamText: "", fromStart: false, note: null };
    this.messages.set(sequence, entry);
    this.insert(el, sequence);
    return entry;
  }

  /** Insert in sequence order, before the message still being sent. */
  insert(el, sequence) {
    let before = null;
    for (let node = this.list.lastElementChild; node; node = node.previousElementSibling) {
      const other = node.dataset.sequence === undefined ? NaN : Number(node.dataset.sequence);
      if (node === this.outgoing || other > sequence) {
        before = node;
        continue;
      }
      break;
    }
    this.list.insertBefore(el, before);
  }

  renderUser(entry) {
    const content = entry.content;
    const text = typedText(content);
    const results = isToolResults(content) ? content.filter((b) => b && b.type === "tool_result") : [];
    entry.el.classList.toggle("tool-results", results.length > 0);
    entry.body.replaceChildren();
    if (text) entry.body.append(h("p", { class: "user-text" }, text));
    let orphans = 0;
    for (const block of results) {
      const id = block.tool_use_id;
      this.results.set(id, block);
      this.running.delete(id);
      this.sending.delete(id);
      if (this.pending && this.pending.tool_use_id === id) this.pending = null;
      const slot = this.slots.get(id);
      if (!slot || !slot.isConnected) {
        // Its call is not on screen (history cut short): show the result here.
        const own = slot || h("div", { class: "tool-slot", dataset: { toolUseId: id } });
        this.slots.set(id, own);
        entry.body.append(own);
        orphans += 1;
      }
      this.renderSlot(id);
    }
    entry.el.hidden = results.length > 0 && !text && orphans === 0;
  }

  renderAssistant(entry) {
    const body = entry.body;
    entry.el.toggleAttribute("aria-busy", entry.streaming);
    entry.el.dataset.state = entry.streaming ? "streaming" : entry.finished ? "finished" : "unfinished";
    if (entry.streaming) {
      const markdown = h("div", { class: "markdown" });
      renderMarkdown(markdown, entry.streamText, { highlight: false });
      cursorHost(markdown).append(h("span", { class: "cursor", "aria-hidden": "true" }));
      body.replaceChildren(markdown);
      return;
    }
    const kept = new Map([...body.querySelectorAll(":scope > .tool-slot")].map((slot) => [slot.dataset.toolUseId, slot]));
    body.replaceChildren();
    const blocks = Array.isArray(entry.content) ? entry.content : [{ type: "text", text: String(entry.content || "") }];
    for (const block of blocks) {
      if (!block) continue;
      if (block.type === "text" && block.text) {
        const markdown = h("div", { class: "markdown" });
        renderMarkdown(markdown, block.text);
        body.append(markdown);
      } else if (block.type === "tool_use") {
        this.uses.set(block.id, block);
        const slot = kept.get(block.id) || this.slots.get(block.id) || h("div", { class: "tool-slot", dataset: { toolUseId: block.id } });
        const orphanHolder = slot.closest("li.orphan, li.tool-results");
        this.slots.set(block.id, slot);
        body.append(slot);
        if (orphanHolder && !orphanHolder.querySelector(".tool-slot, .user-text")) {
          // The call it was waiting for is on screen now: its stand-in goes.
          if (orphanHolder.classList.contains("orphan")) orphanHolder.remove();
          else orphanHolder.hidden = true;
        }
        this.renderSlot(block.id);
      }
    }
    if (!entry.finished) body.append(h("p", { class: "message-note muted" }, entry.note || "This reply was interrupted."));
  }

  scheduleRender(entry) {
    this.renderQueue.add(entry);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      const follow = this.nearBottom();
      for (const queued of this.renderQueue) if (queued.streaming) this.renderAssistant(queued);
      this.renderQueue.clear();
      if (follow) this.scrollToBottom();
    });
  }

  // --- tool calls --------------------------------------------------------------------------

  toolUse(event) {
    // An input too big for a frame is omitted from the event; the stored reply has it.
    const known = this.uses.get(event.tool_use_id);
    this.uses.set(event.tool_use_id, { id: event.tool_use_id, name: event.name, input: event.input ?? (known && known.input) });
    if (!this.results.has(event.tool_use_id)) this.running.add(event.tool_use_id);
    this.ensureSlot(event.tool_use_id);
    this.renderSlot(event.tool_use_id);
  }

  toolResult(event) {
    const id = event.tool_use_id;
    const result = { ...(this.results.get(id) || {}), type: "tool_result", tool_use_id: id, is_error: event.is_error };
    if (event.content !== undefined) result.content = event.content; // else omitted: too big
    this.results.set(id, result);
    this.running.delete(id);
    this.ensureSlot(id);
    this.renderSlot(id);
  }

  display(event) {
    const id = event.tool_use_id;
    if (event.data === undefined) return; // omitted (too big); the stored results message has it
    this.results.set(id, { ...(this.results.get(id) || { type: "tool_result", tool_use_id: id }), display_data: event.data });
    this.ensureSlot(id);
    this.renderSlot(id);
  }

  /** An artifact changed (the store holds it): redraw the card of the call that makes it. */
  artifactChanged(toolUseId) {
    if (!toolUseId) return;
    this.ensureSlot(toolUseId);
    this.renderSlot(toolUseId);
  }

  /** The open question (ready.pending, awaiting_user_input), or null. */
  setPending(pending, { announce = false } = {}) {
    this.pending = pending || null;
    if (!this.pending) return;
    const id = this.pending.tool_use_id;
    this.running.delete(id);
    this.sending.delete(id);
    this.ensureSlot(id);
    this.renderSlot(id);
    if (announce) {
      this.announce(`Question: ${this.pending.question} Options: ${this.pending.options.join(", ")}.`);
    }
    this.scrollToBottom();
  }

  lockQuestion(id, choice) {
    this.sending.set(id, choice);
    this.renderSlot(id);
  }

  unlockQuestion(id) {
    this.sending.delete(id);
    this.renderSlot(id);
  }

  ensureSlot(id) {
    if (this.slots.has(id)) return;
    const slot = h("div", { class: "tool-slot", dataset: { toolUseId: id } });
    this.slots.set(id, slot);
    const holder = h("li", { class: "message assistant orphan" }, h("div", { class: "message-body" }, slot));
    this.list.insertBefore(holder, this.outgoing);
  }

  renderSlot(id) {
    const slot = this.slots.get(id);
    if (!slot) return;
    const use = this.uses.get(id);
    const result = this.results.get(id);
    const pending = this.pending && this.pending.tool_use_id === id ? this.pending : null;
    let card = null;
    if (result && result.display_data) card = displayCard(result.display_data);
    if (!card && (pending || (result && result.interactive_data))) {
      const data = pending || result.interactive_data;
      card = questionCard(
        id,
        {
          question: data.question,
          options: Array.isArray(data.options) ? data.options : [],
          answer: pending || !result ? null : answerOf(result.content),
          sending: this.sending.get(id) || null,
          isError: Boolean(result && result.is_error),
        },
        (choice) => this.onAnswer(id, choice),
      );
    }
    if (!card) {
      const artifact = this.store.byToolUse(id) || (result && result.artifact_data && this.store.fromData(result.artifact_data));
      if (artifact) card = artifactCard(artifact, this.onOpenArtifact);
    }
    if (!card) card = toolLine(use, result, this.running.has(id));
    slot.replaceChildren(card);
  }

  // --- the user's message on its way -------------------------------------------------------

  showOutgoing(text) {
    this.removeOutgoing();
    this.outgoing = h(
      "li",
      { class: "message user outgoing", dataset: { state: "sending" } },
      h("p", { class: "message-author" }, "You"),
      h("div", { class: "message-body" }, h("p", { class: "user-text" }, text)),
      h("p", { class: "message-note muted outgoing-state" }, "Sending…"),
    );
    this.list.append(this.outgoing);
    this.changed();
    this.scrollToBottom();
  }

  outgoingState(state) {
    if (!this.outgoing) return;
    this.outgoing.dataset.state = state;
    const notes = { sending: "Sending…", waiting: "Waiting for the connection…", failed: "Not sent." };
    this.outgoing.querySelector(".outgoing-state").textContent = notes[state] || "";
  }

  removeOutgoing() {
    if (this.outgoing) this.outgoing.remove();
    this.outgoing = null;
    this.changed();
  }

  // --- notices -----------------------------------------------------------------------------

  /** A run error, in the conversation where it happened, with Retry if it can help. */
  runError(frame, retry, { general = false } = {}) {
    for (const old of this.list.querySelectorAll(".notice[data-general]")) old.remove();
    const notice = h(
      "li",
      { class: "notice error", role: "alert", dataset: { code: frame.code || "error", general: general ? "true" : null } },
      h("p", {}, frame.message || "Something went wrong."),
    );
    if (retry) {
      notice.append(
        h("button", {
          type: "button",
          class: "secondary retry",
          onclick: (event) => {
            event.currentTarget.disabled = true;
            retry();
          },
        }, "Retry"),
      );
    }
    this.list.insertBefore(notice, this.outgoing);
    this.scrollToBottom();
  }

  /** A new turn began: earlier Retry buttons no longer apply. */
  retireRetries() {
    for (const button of this.list.querySelectorAll(".notice .retry")) button.remove();
  }

  /** The text of the user's newest typed message (for Retry). */
  lastTypedText() {
    const sequences = [...this.messages.keys()].sort((a, b) => b - a);
    for (const sequence of sequences) {
      const entry = this.messages.get(sequence);
      if (entry.role === "user" && !isToolResults(entry.content)) return typedText(entry.content);
    }
    return "";
  }

  // --- scrolling ---------------------------------------------------------------------------

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
