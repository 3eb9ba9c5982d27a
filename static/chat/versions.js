// Versions of a message: Edit on a message you typed (an inline editor with Save and
// Cancel), Regenerate on a reply, and "Previous version" / "Next version" around "2 / 3"
// under a message that has other versions.
//
// Nothing here changes the conversation on screen. The buttons send the websocket's edit,
// regenerate and switch frames (session.js); the server answers every socket of the chat
// with a `path` event, and that redraws the conversation from the message on
// (Conversation.replaceFrom). So another tab's edit shows up the same way as ours.
//
// One instance for the page (`versions`): turns (turns.js) ask it for their buttons, and
// app.js tells it the chat's run state and how to reach the open chat. While a reply is
// written, or a frame of ours waits for its answer, the buttons are disabled (the server
// would refuse with `busy`); while a question waits for its answer only switching is
// (the server says `awaiting_input`; editing or regenerating goes ahead without it).

import { h, icon, textOf } from "./dom.js";

const TOUCH = window.matchMedia("(pointer: coarse)");
const PAGER = new Set(["previous", "next"]);
// Refusals that only mean "not now": said in the composer's status line, not as an error.
const QUIET = new Set(["busy", "awaiting_input"]);

class Versions {
  constructor() {
    this.state = "idle";
    this.outgoing = false;
    this.waiting = false; // a frame of ours is on its way: its path event (or refusal) comes next
    this.chat = null; // see connect()
    this.editor = null; // the open editor: {entry, form, input, save, cancel, note, original}
    this.refocus = null; // {sequence, action}: the pager button to focus once it is drawn again
  }

  /**
   * @param {object} chat  edit(id, text), regenerate(id), switchTo(id): false when not sent;
   *   versionsOf(id): the message's versions (API); quiet(text): the composer's status line;
   *   notify(text): an error notice; focusHome(): where the focus goes once a button went away
   */
  connect(chat) {
    this.chat = chat;
  }

  /** The open chat's run state, and whether a message of the user's is on its way. */
  setState(state, { outgoing }) {
    // Told on every streamed word: the buttons are touched only when something changed.
    if (state === this.state && outgoing === this.outgoing) return;
    this.state = state;
    this.outgoing = outgoing;
    this.sync();
  }

  get busy() {
    return this.state === "running" || this.outgoing || this.waiting;
  }

  // --- the buttons of a turn (turns.js) ------------------------------------------------------

  /** The turn's version buttons: for its typed message, or its first reply. */
  controls(turn) {
    const head = turn.entries.find((e) => e.kind === (turn.role === "user" ? "typed" : "assistant"));
    if (!head || !head.id) return [];
    const parts = [];
    if (head.versions && head.versions.count > 1) parts.push(this.pager(head));
    if (turn.role === "user") parts.push(this.button("edit", "Edit", icon("pencil"), () => this.openEditor(head)));
    else parts.push(this.button("regenerate", "Regenerate", icon("refresh"), () => this.regenerate(head)));
    return parts;
  }

  /** Pagers for the turn's other messages with versions (a later reply of a turn that used
   *  tools, regenerated through the API; an answer to a question): [entry, pager] each, shown
   *  under the message itself, since the turn's buttons are about its first message. */
  laterPagers(turn) {
    const head = turn.entries.find((e) => e.kind === (turn.role === "user" ? "typed" : "assistant"));
    return turn.entries.filter((e) => e !== head && e.id && e.versions && e.versions.count > 1).map((e) => [e, this.pager(e)]);
  }

  button(action, label, ...content) {
    const onclick = content.pop();
    const button = h("button", { type: "button", class: "ghost version-action", dataset: { action }, onclick }, ...content);
    if (PAGER.has(action)) button.setAttribute("aria-label", label);
    else button.append(h("span", {}, label));
    this.enable(button);
    return button;
  }

  pager(entry) {
    const { index, count } = entry.versions;
    const previous = this.button("previous", "Previous version", icon("chevron-left"), () => this.step(entry, -1, "previous"));
    const next = this.button("next", "Next version", icon("chevron-right"), () => this.step(entry, 1, "next"));
    previous.dataset.end = String(index <= 1);
    next.dataset.end = String(index >= count);
    for (const button of [previous, next]) this.enable(button);
    const pager = h(
      "div",
      { class: "version-pager", role: "group", "aria-label": `Version ${index} of ${count}`, dataset: { sequence: String(entry.sequence) } },
      previous,
      h("span", { class: "version-count" }, `${index} / ${count}`),
      next,
    );
    if (this.refocus && this.refocus.sequence === entry.sequence) {
      const { sequence, action } = this.refocus;
      this.refocus = null;
      // Drawn, not yet in the page (and perhaps drawn again before it is): the one there then.
      queueMicrotask(() => {
        const shown = document.querySelector(`.version-pager[data-sequence="${sequence}"]`);
        if (!shown) return;
        const wanted = shown.querySelector(`[data-action=${action}]`);
        const target = wanted.disabled ? shown.querySelector(`[data-action=${action === "next" ? "previous" : "next"}]`) : wanted;
        if (!target.disabled) target.focus({ preventScroll: true });
      });
    }
    return pager;
  }

  enable(button) {
    const pager = PAGER.has(button.dataset.action);
    const question = pager && this.state === "awaiting_input";
    button.disabled = this.busy || question || (pager && button.dataset.end === "true");
    button.title = this.busy ? "Wait for the reply to finish" : question ? "Answer the question first" : button.dataset.tip || "";
  }

  /** Every button as the chat's state allows. */
  sync() {
    for (const button of document.querySelectorAll(".version-action")) this.enable(button);
    if (this.editor && !this.editor.saving) this.editor.save.disabled = this.cannotSave();
  }

  // --- edit ---------------------------------------------------------------------------------

  /** Open the editor on a typed message (Edit, or ↑ in the empty composer); false if it cannot be now. */
  openEditor(entry) {
    if (this.busy || !entry || entry.kind !== "typed" || !entry.id) return false;
    this.closeEditor();
    const original = textOf(entry.content, "\n");
    const input = h("textarea", { class: "editor-input", "aria-label": "Edited message", rows: "2", spellcheck: "true" });
    input.value = original;
    const save = h("button", { type: "submit" }, "Save");
    const cancel = h("button", { type: "button", class: "secondary", onclick: () => this.closeEditor({ focus: true }) }, "Cancel");
    const note = h("p", { class: "editor-note muted", role: "status" });
    const form = h("form", { class: "message-editor", "aria-label": "Edit your message" }, input, h("div", { class: "editor-footer" }, note, cancel, save));
    this.editor = { entry, form, input, save, cancel, note, original, saving: false };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveEdit();
    });
    input.addEventListener("input", () => {
      this.autosize(input);
      save.disabled = this.cannotSave();
    });
    input.addEventListener("keydown", (event) => {
      if (event.isComposing) return;
      if (event.key === "Escape") {
        // Taken here, so that Esc does not also stop a reply or close the drawer.
        event.preventDefault();
        event.stopPropagation();
        this.closeEditor({ focus: true });
      } else if (event.key === "Enter" && !event.shiftKey && !TOUCH.matches) {
        event.preventDefault();
        this.saveEdit();
      }
    });
    entry.body.hidden = true;
    entry.el.classList.add("editing");
    entry.el.append(form);
    save.disabled = this.cannotSave();
    this.autosize(input);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    form.scrollIntoView({ block: "nearest" });
    return true;
  }

  cannotSave() {
    const editor = this.editor;
    return !editor || this.busy || !editor.input.value.trim() || editor.input.value === editor.original;
  }

  saveEdit() {
    const editor = this.editor;
    if (!editor || editor.saving || this.cannotSave()) return;
    if (!this.chat.edit(editor.entry.id, editor.input.value)) {
      editor.note.textContent = "Not connected: save again once the connection is back.";
      return;
    }
    editor.saving = true;
    editor.input.focus(); // kept in the editor (not lost with a disabled Save) until it goes
    editor.input.readOnly = true;
    editor.save.disabled = true;
    editor.cancel.disabled = true;
    editor.note.textContent = "Saving…";
    this.wait();
  }

  /** Close the editor, changing nothing; with focus, the focus goes back to the message's Edit. */
  closeEditor({ focus = false } = {}) {
    const editor = this.editor;
    this.editor = null;
    if (!editor || !editor.form.isConnected) return;
    editor.form.remove();
    editor.entry.body.hidden = false;
    editor.entry.el.classList.remove("editing");
    if (focus) {
      const edit = editor.entry.turn && editor.entry.turn.el.querySelector(".version-action[data-action=edit]");
      if (edit && !edit.disabled) edit.focus();
      else this.chat.focusHome();
    }
  }

  autosize(input) {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 320)}px`;
  }

  // --- regenerate and switch ----------------------------------------------------------------

  regenerate(entry) {
    if (this.busy) return;
    if (!this.chat.regenerate(entry.id)) {
      this.chat.notify("Not connected: try again once the connection is back.");
      return;
    }
    this.chat.focusHome(); // the reply (and this button) is about to be replaced
    this.wait();
  }

  /** Show the version `delta` away from the one shown (the API lists them, oldest first). */
  async step(entry, delta, action) {
    if (this.busy) return;
    this.refocus = { sequence: entry.sequence, action };
    this.wait();
    try {
      const list = await this.chat.versionsOf(entry.id);
      const at = list.findIndex((v) => v.id === entry.id);
      const target = at < 0 ? null : list[at + delta];
      if (target && this.chat.switchTo(target.id)) return;
      this.settled();
      if (target) this.chat.notify("Not connected: try again once the connection is back.");
    } catch (error) {
      this.settled();
      this.chat.notify(`The versions could not be read (${error.message}).`);
    }
  }

  // --- answers from the server (session.js through app.js) -----------------------------------

  wait() {
    this.waiting = true;
    this.sync();
  }

  /** A path event came: the conversation is being redrawn, the buttons work again. */
  settled() {
    const editor = this.editor;
    this.waiting = false;
    this.editor = null; // the conversation is drawn again, without it
    if (editor && editor.saving && editor.form.contains(document.activeElement)) this.chat.focusHome();
    this.sync();
  }

  /** An edit, regenerate or switch of ours was refused (an error frame for this socket). */
  refused(frame) {
    this.waiting = false;
    this.refocus = null;
    const editor = this.editor;
    if (editor && editor.saving && editor.form.isConnected) {
      editor.saving = false;
      editor.input.readOnly = false;
      editor.cancel.disabled = false;
      editor.note.textContent = frame.message || "Not saved.";
      editor.note.classList.toggle("error-text", !QUIET.has(frame.code));
      editor.input.focus();
    } else if (QUIET.has(frame.code)) {
      this.chat.quiet(frame.message);
    } else {
      this.chat.notify(frame.message || "That did not work.");
    }
    this.sync();
  }

  /** Reconnected and caught up: a frame of ours that got no answer was lost with the socket. */
  caughtUp() {
    if (this.waiting) this.refused({ code: "unavailable", message: "The connection was lost before the server answered: try again." });
  }
}

export const versions = new Versions();
