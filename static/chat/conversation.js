// The conversation on screen: messages by sequence, grouped into turns (turns.js), the reply
// being streamed, and the cards of tool calls (toolslots.js).
//
// Messages are keyed by sequence and replaced whole when a newer copy arrives, so applying
// the same stored message twice (history, then a replayed event) changes nothing. A reply
// streams as Markdown text built from text_delta frames; its final `message` replaces it
// with the stored content, and data-stream-check records whether the streamed text was the
// same (a duplicated or missing delta would show as "mismatch").
//
// A tool-results message has no block of its own: its results fill the cards of the calls
// above it, in the same assistant turn.
//
// The conversation shown is one path through the chat's tree of versions: after a `path`
// event (an edit, a regenerated reply, another version chosen) everything from that
// message on is replaced (replaceFrom).

import { addCodeCopyButtons } from "./copy.js";
import { sentFiles } from "./attachments.js";
import { h, textOf } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { ToolSlots } from "./toolslots.js";
import { Turn, turnOf } from "./turns.js";

const ANNOUNCE_LIMIT = 1200;
// A stored reply says only that it did not finish (not why), so live and after a reload it
// reads the same; the run's notice says why when it is known.
export const UNFINISHED_NOTE = "This reply did not finish.";

function isToolResults(content) {
  return Array.isArray(content) && content.some((block) => block && block.type === "tool_result");
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

/** An entry as the API would give its message (to draw it again). */
function storedOf(entry) {
  return {
    id: entry.id,
    sequence: entry.sequence,
    role: entry.role,
    content: entry.content,
    finished: entry.finished,
    created_at: entry.createdAt ? entry.createdAt.toISOString() : null,
    usage: entry.usage,
    versions: entry.versions,
  };
}

/** Where `sequence` goes in the ascending list `order`. */
function insertionIndex(order, sequence) {
  let low = 0;
  let high = order.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (order[middle] < sequence) low = middle + 1;
    else high = middle;
  }
  return low;
}

export class Conversation {
  /**
   * @param {HTMLOListElement} list
   * @param {FollowScroll} follow  the list's scrolling (scrolling.js)
   * @param {object} options  store (artifacts), onAnswer(id, choice), onOpenArtifact(id, opener),
   *   announce(text), onEmptyChange(empty)
   */
  constructor(list, follow, { store, onAnswer, onOpenArtifact, announce, onEmptyChange }) {
    this.list = list;
    this.follow = follow;
    this.announce = announce;
    this.onEmptyChange = onEmptyChange;
    this.tools = new ToolSlots({ store, onAnswer, onOpenArtifact, placeOrphan: (slot) => this.placeOrphan(slot) });
    this.reset();
  }

  reset() {
    this.list.replaceChildren();
    this.messages = new Map(); // sequence -> entry
    this.order = []; // the sequences, ascending
    this.tools.reset();
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
    if (entry && entry.streaming && this.stoppedWhileHeld) this.stopStreaming();
  }

  /** Rebuild from stored messages (the API), with the open question if there is one. */
  load(messages, { pending = null, scroll = true } = {}) {
    this.reset();
    for (const message of messages) this.upsert(message, { live: false });
    this.setPending(pending);
    if (scroll) this.scrollToBottom();
  }

  /**
   * The conversation shown changed from `sequence` on (a `path` event): what came before it
   * stays where it is on screen, the rest goes until the new path's messages arrive. Drawn
   * again from what is kept, since a new version may reuse a tool call's id (the offline
   * model's are made from the conversation) and its card must not show the old result.
   * The question left on the old path goes with it.
   */
  replaceFrom(sequence) {
    const kept = this.order.filter((s) => s < sequence).map((s) => storedOf(this.messages.get(s)));
    const scroller = this.follow.scroller;
    const top = scroller.scrollTop;
    const outgoing = this.outgoing;
    this.load(kept, { scroll: false });
    if (outgoing) {
      this.outgoing = outgoing;
      this.list.append(outgoing);
      this.changed();
    }
    scroller.scrollTop = top;
    this.follow.update();
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
    const entry = this.messages.get(message.sequence) || this.createEntry(message.sequence, message.role, message.content);
    const wasStreaming = entry.streaming;
    entry.content = message.content;
    entry.finished = message.finished !== false;
    this.noteMeta(entry, message);
    if (message.role === "assistant") {
      if (live && !entry.finished) {
        // A reply starting: its text follows as deltas.
        entry.streaming = true;
        entry.streamText = textOf(message.content);
        entry.fromStart = entry.streamText === "";
        if (!wasStreaming) this.announce("The assistant is replying.");
      } else {
        if (wasStreaming && entry.finished) this.finishStream(entry);
        entry.streaming = false;
      }
      this.renderAssistant(entry);
    } else {
      this.renderUser(entry);
    }
    entry.turn.refresh();
    this.changed();
    if (follow) this.scrollToBottom();
  }

  /** A message's id, when it was stored, what its model call used and its versions (the
   *  API says versions: {index, count}, or null; an event does not say). */
  noteMeta(entry, message) {
    if (message.created_at) entry.createdAt = new Date(message.created_at);
    else if (!entry.createdAt) entry.createdAt = new Date();
    if (message.usage !== undefined) entry.usage = message.usage;
    const id = message.message_id || message.id;
    if (id) entry.id = id;
    if (message.versions !== undefined) entry.versions = message.versions;
  }

  /** Stored copies of messages already shown (API): their time, usage and versions. */
  setMeta(messages) {
    const touched = new Set();
    for (const message of messages) {
      const entry = this.messages.get(message.sequence);
      if (!entry) continue;
      this.noteMeta(entry, message);
      touched.add(entry.turn);
    }
    for (const turn of touched) turn.refresh();
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
      entry = this.createEntry(sequence, "assistant", []);
      entry.content = [];
      entry.finished = false;
    }
    if (entry.finished) return;
    if (!entry.streaming) {
      entry.streaming = true;
      entry.streamText = textOf(entry.content);
      entry.fromStart = false;
      entry.turn.refresh();
    }
    entry.streamText += text;
    this.scheduleRender(entry);
  }

  /** The run ended (complete or error): replies still streaming keep what they have. */
  stopStreaming() {
    this.stoppedWhileHeld = this.held.size > 0;
    for (const entry of this.messages.values()) {
      if (!entry.streaming || this.held.has(entry.sequence)) continue;
      entry.streaming = false;
      entry.finished = false;
      entry.content = [{ type: "text", text: entry.streamText }];
      this.renderAssistant(entry);
      entry.turn.refresh();
    }
    this.tools.stopRunning();
  }

  createEntry(sequence, role, content) {
    const kind = role === "assistant" ? "assistant" : isToolResults(content) ? "results" : "typed";
    const el = h("div", { class: `message ${role}`, dataset: { sequence: String(sequence), role } }, h("div", { class: "message-body" }));
    const entry = { sequence, role, kind, el, body: el.lastElementChild, content: "", finished: true, streaming: false, streamText: "", fromStart: false, createdAt: null, usage: null, id: null, versions: null, turn: null };
    this.messages.set(sequence, entry);
    this.place(entry);
    return entry;
  }

  /** Put a new entry in its turn: a typed message starts one; the rest joins its neighbours'. */
  place(entry) {
    const at = insertionIndex(this.order, entry.sequence);
    const prev = at > 0 ? this.messages.get(this.order[at - 1]) : null;
    const next = at < this.order.length ? this.messages.get(this.order[at]) : null;
    this.order.splice(at, 0, entry.sequence);
    const joinable = (other) => other && other.kind !== "typed";
    if (entry.kind !== "typed" && joinable(prev)) return prev.turn.add(entry);
    if (entry.kind !== "typed" && joinable(next)) return next.turn.add(entry);
    const turn = new Turn(entry.kind === "typed" ? "user" : "assistant");
    let before = next ? next.turn.el : this.outgoing;
    if (prev && next && prev.turn === next.turn) {
      // A typed message that arrived late, between two parts of one reply: split the reply.
      const rest = prev.turn.splitAt(next);
      this.list.insertBefore(rest.el, prev.turn.el.nextSibling);
      before = rest.el;
    }
    this.list.insertBefore(turn.el, before);
    turn.add(entry);
  }

  /** A card whose call is not on screen yet: at the end of the newest assistant turn. */
  placeOrphan(slot) {
    const part = h("div", { class: "message assistant orphan" }, h("div", { class: "message-body" }, slot));
    let last = this.outgoing ? this.outgoing.previousElementSibling : this.list.lastElementChild;
    while (last && !last.classList.contains("turn")) last = last.previousElementSibling;
    let turn = last && last.classList.contains("assistant") ? turnOf(last) : null;
    if (!turn) {
      turn = new Turn("assistant");
      this.list.insertBefore(turn.el, this.outgoing);
    }
    turn.addOrphan(part);
  }

  renderUser(entry) {
    const content = entry.content;
    const text = textOf(content, "\n");
    const results = isToolResults(content) ? content.filter((b) => b && b.type === "tool_result") : [];
    entry.el.classList.toggle("tool-results", results.length > 0);
    entry.body.replaceChildren();
    const files = sentFiles(content);
    if (files) entry.body.append(files);
    if (text) entry.body.append(h("p", { class: "user-text" }, text));
    let orphans = 0;
    for (const block of results) {
      const id = block.tool_use_id;
      this.tools.settle(block);
      const slot = this.tools.slots.get(id);
      if (!slot || !slot.isConnected) {
        // Its call is not on screen (history cut short): show the result here.
        entry.body.append(slot || this.tools.newSlot(id));
        orphans += 1;
      }
      this.tools.render(id);
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
        addCodeCopyButtons(markdown);
        body.append(markdown);
      } else if (block.type === "tool_use") {
        this.tools.use(block);
        const slot = kept.get(block.id) || this.tools.slots.get(block.id) || this.tools.newSlot(block.id);
        const standIn = slot.closest(".message.orphan, .message.tool-results");
        this.tools.slots.set(block.id, slot);
        body.append(slot);
        if (standIn && !standIn.querySelector(".tool-slot, .user-text")) {
          // The call it was waiting for is on screen now: its stand-in goes.
          if (standIn.classList.contains("orphan")) this.removeOrphan(standIn);
          else standIn.hidden = true;
        }
        this.tools.render(block.id);
      }
    }
    if (!entry.finished) body.append(h("p", { class: "message-note muted" }, UNFINISHED_NOTE));
  }

  removeOrphan(part) {
    const turn = turnOf(part.parentElement);
    if (turn) turn.removePart(part);
    else part.remove();
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

  // --- tool calls: their cards are this.tools (toolslots.js) --------------------------------

  /** The open question (ready.pending, awaiting_user_input), or null. */
  setPending(pending, { announce = false } = {}) {
    this.tools.setPending(pending);
    if (!pending) return;
    if (announce) this.announce(`Question: ${pending.question} Options: ${pending.options.join(", ")}.`);
    this.scrollToBottom();
  }

  get pending() {
    return this.tools.pending;
  }

  /** An answer to question `id` is on its way: {choice} clicked, or {reply} typed. */
  lockQuestion(id, answer) {
    this.tools.lock(id, answer);
  }

  unlockQuestion(id) {
    this.tools.unlock(id);
  }

  // --- the user's message on its way -------------------------------------------------------

  showOutgoing(text) {
    this.removeOutgoing();
    this.outgoing = h(
      "li",
      { class: "turn user outgoing", dataset: { state: "sending" } },
      h("p", { class: "message-author" }, "You"),
      h("div", { class: "message user" }, h("div", { class: "message-body" }, h("p", { class: "user-text" }, text))),
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

  /** The user's newest typed message: its text (for Retry) and sequence. */
  lastTyped() {
    const entry = this.lastTypedEntry();
    return entry ? { sequence: entry.sequence, text: textOf(entry.content, "\n") } : null;
  }

  /** The entry of the user's newest typed message (↑ edits it), or null. */
  lastTypedEntry() {
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const entry = this.messages.get(this.order[i]);
      if (entry.kind === "typed") return entry;
    }
    return null;
  }

  // --- scrolling ---------------------------------------------------------------------------

  /** Show message `sequence` (a search hit): scrolled into the middle, focused, briefly
   *  highlighted. An answer to a question shows on the question's card. False if it is not here. */
  reveal(sequence) {
    const entry = this.messages.get(sequence);
    if (!entry) return false;
    let target = entry.el;
    if (entry.kind === "results") {
      const asked = (Array.isArray(entry.content) ? entry.content : []).find((b) => b && b.type === "tool_result" && b.interactive_data);
      const card = asked && this.tools.slots.get(asked.tool_use_id);
      target = card && card.isConnected ? card : entry.el;
    }
    if (target.hidden) target = entry.turn.el;
    target.classList.remove("search-hit");
    void target.offsetWidth; // restart the highlight if it is still on
    target.classList.add("search-hit");
    setTimeout(() => target.classList.remove("search-hit"), 2500);
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
    this.follow.update();
    return true;
  }

  nearBottom() {
    return this.follow.nearBottom();
  }

  scrollToBottom() {
    this.follow.toBottom();
  }
}
