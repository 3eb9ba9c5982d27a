// The chat's context (chat/compaction.py): a meter of the next prompt's tokens against the
// context window, with a mark where compaction happens; the Compact button; and, in the
// message list, the divider "Earlier messages summarised" before the first message the
// model still sees whole, which opens to the summary it sees instead.
//
// The figures come from the API (GET chats/<id>/context/), read when the chat opens, when
// a run ends, when a `summary` event says the chat was compacted mid-reply and when a
// `path` event changes the conversation shown (session.js decides). While a compaction
// runs, the button says "Compacting…" and cannot be pressed.

import { h } from "./dom.js";

const count = (n) => Number(n).toLocaleString();
const percent = (part, whole) => (whole ? Math.min(100, Math.round((part / whole) * 100)) : 0);

export class ContextMeter {
  /**
   * @param {object} parts  root, bar, fill, mark, label, button (elements); list: the message list
   * @param {object} on     api, compact(): ask for a compaction
   */
  constructor({ root, bar, fill, mark, label, button, list }, { api, compact }) {
    Object.assign(this, { root, bar, fill, mark, label, button, list, api });
    this.chatId = null;
    this.reads = 0;
    this.divider = null;
    button.addEventListener("click", () => compact());
  }

  /** The chat on screen changed (null: a chat with nothing stored yet). */
  reset(chatId) {
    this.chatId = chatId;
    this.reads += 1;
    this.root.hidden = true;
    this.removeDivider();
    this.compacting(false);
  }

  /** A compaction runs (on: from its start, or the click; off: its run ended). */
  compacting(on) {
    this.button.disabled = on;
    this.button.textContent = on ? "Compacting…" : "Compact";
    this.root.dataset.compacting = String(on);
  }

  async refresh(chatId = this.chatId) {
    if (!chatId) return;
    this.chatId = chatId;
    const read = (this.reads += 1);
    let state;
    try {
      state = await this.api.context(chatId);
    } catch (error) {
      if (error.status !== 404) console.warn("the chat's context could not be read", error);
      return;
    }
    if (read !== this.reads || chatId !== this.chatId) return; // a newer read, or another chat
    this.render(state);
  }

  render({ window, compact_at: compactAt, prompt_tokens: tokens, summary }) {
    this.root.hidden = false;
    const used = percent(tokens, window);
    this.fill.style.width = `${used}%`;
    this.root.dataset.level = compactAt && tokens >= compactAt ? "full" : used >= 60 ? "high" : "low";
    this.mark.hidden = !compactAt;
    if (compactAt) this.mark.style.left = `${percent(compactAt, window)}%`;
    const when = compactAt ? `; earlier messages are summarised at ${count(compactAt)}` : "";
    this.bar.setAttribute("aria-valuemax", String(window));
    this.bar.setAttribute("aria-valuenow", String(Math.min(tokens, window)));
    this.bar.setAttribute("aria-valuetext", `${count(tokens)} of ${count(window)} tokens${when}`);
    this.label.textContent = `${count(tokens)} / ${count(window)} tokens`;
    this.label.title = `The next prompt: ${count(tokens)} of the ${count(window)}-token window${when}.`;
    this.showDivider(summary);
  }

  /** Before the first message after the summary's last one (re-placed at every refresh). */
  showDivider(summary) {
    this.removeDivider();
    if (!summary) return;
    const after = [...this.list.querySelectorAll("[data-sequence]")]
      .filter((el) => Number(el.dataset.sequence) > summary.last_sequence)
      .sort((a, b) => Number(a.dataset.sequence) - Number(b.dataset.sequence))[0];
    const turn = after ? after.closest("li") : null;
    if (!turn) return;
    const body = h("div", { class: "summary-text" });
    for (const line of summary.text.split("\n")) body.append(h("p", {}, line));
    this.divider = h(
      "li",
      { class: "summary-divider", dataset: { summaryId: summary.id } },
      h(
        "details",
        { "aria-label": "Earlier messages summarised" },
        h("summary", { "aria-expanded": "false" }, "Earlier messages summarised"),
        h(
          "p",
          { class: "muted summary-meta" },
          `The model is sent this summary instead of messages ${summary.first_sequence}–${summary.last_sequence} ` +
            `(${count(summary.tokens)} tokens, written by ${summary.model}). They are kept above, as they were.`,
        ),
        body,
      ),
    );
    const details = this.divider.firstElementChild;
    details.addEventListener("toggle", () => details.firstElementChild.setAttribute("aria-expanded", String(details.open)));
    this.list.insertBefore(this.divider, turn);
  }

  removeDivider() {
    if (this.divider) this.divider.remove();
    this.divider = null;
  }
}
