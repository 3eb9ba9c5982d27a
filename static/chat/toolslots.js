// The cards of tool calls. Each tool_use block of a reply gets a slot; what fills it (a
// chart, a text analysis, a question, an artifact, or a result line) comes from the stored
// tool-results message or from live events (tool_use, display, tool_result, artifact,
// awaiting_user_input), whichever arrives first.
//
// A question's answer on its way is shown on its card: an option clicked ({choice}) or an
// answer typed in the composer ({reply}); the stored result then shows what was answered.

import { h } from "./dom.js";
import { answerOf, artifactCard, displayCard, questionCard, toolLine } from "./cards.js";

export class ToolSlots {
  /**
   * @param {object} options  store (artifacts), onAnswer(id, choice), onOpenArtifact(id, opener),
   *   placeOrphan(slot): put a slot whose call is not on screen yet somewhere visible
   */
  constructor({ store, onAnswer, onOpenArtifact, placeOrphan }) {
    this.store = store;
    this.onAnswer = onAnswer;
    this.onOpenArtifact = onOpenArtifact;
    this.placeOrphan = placeOrphan;
    this.reset();
  }

  reset() {
    this.slots = new Map(); // tool_use_id -> slot element
    this.uses = new Map(); // tool_use_id -> tool_use block
    this.results = new Map(); // tool_use_id -> tool_result block (with display_data …)
    this.running = new Set(); // announced by tool_use, no result yet
    this.sending = new Map(); // tool_use_id -> {choice} | {reply}: sent, not yet stored
    this.pending = null; // the open question
  }

  newSlot(id) {
    const slot = h("div", { class: "tool-slot", dataset: { toolUseId: id } });
    this.slots.set(id, slot);
    return slot;
  }

  /** The slot of `id`, made (and placed as an orphan) if there is none yet. */
  ensure(id) {
    if (!this.slots.has(id)) this.placeOrphan(this.newSlot(id));
    return this.slots.get(id);
  }

  /** A tool_use block of a stored reply. */
  use(block) {
    this.uses.set(block.id, block);
  }

  /** A stored tool_result: the call is done, and a question it answers is closed. */
  settle(block) {
    const id = block.tool_use_id;
    this.results.set(id, block);
    this.running.delete(id);
    this.sending.delete(id);
    if (this.pending && this.pending.tool_use_id === id) this.pending = null;
  }

  toolUse(event) {
    // An input too big for a frame is omitted from the event; the stored reply has it.
    const known = this.uses.get(event.tool_use_id);
    this.uses.set(event.tool_use_id, { id: event.tool_use_id, name: event.name, input: event.input ?? (known && known.input) });
    if (!this.results.has(event.tool_use_id)) this.running.add(event.tool_use_id);
    this.ensure(event.tool_use_id);
    this.render(event.tool_use_id);
  }

  toolResult(event) {
    const id = event.tool_use_id;
    const result = { ...(this.results.get(id) || {}), type: "tool_result", tool_use_id: id, is_error: event.is_error };
    if (event.content !== undefined) result.content = event.content; // else omitted: too big
    this.results.set(id, result);
    this.running.delete(id);
    this.ensure(id);
    this.render(id);
  }

  display(event) {
    const id = event.tool_use_id;
    if (event.data === undefined) return; // omitted (too big); the stored results message has it
    this.results.set(id, { ...(this.results.get(id) || { type: "tool_result", tool_use_id: id }), display_data: event.data });
    this.ensure(id);
    this.render(id);
  }

  /** An artifact changed (the store holds it): redraw the card of the call that makes it. */
  artifactChanged(toolUseId) {
    if (!toolUseId) return;
    this.ensure(toolUseId);
    this.render(toolUseId);
  }

  /** The open question (ready.pending, awaiting_user_input), or null. */
  setPending(pending) {
    this.pending = pending || null;
    if (!this.pending) return;
    const id = this.pending.tool_use_id;
    this.running.delete(id);
    this.sending.delete(id);
    this.ensure(id);
    this.render(id);
  }

  /** An answer to question `id` is on its way: {choice} clicked or {reply} typed. */
  lock(id, answer) {
    this.sending.set(id, answer);
    this.render(id);
  }

  unlock(id) {
    this.sending.delete(id);
    this.render(id);
  }

  /** The run ended: calls still running never will, and answers not stored were not taken. */
  stopRunning() {
    const stale = [...this.running];
    this.running.clear();
    for (const id of stale) this.render(id);
    if (this.pending === null) for (const id of [...this.sending.keys()]) this.unlock(id);
  }

  render(id) {
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
}
