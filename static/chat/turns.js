// Turns: how the conversation's messages are grouped on screen.
//
// A message the user typed is a turn of its own. Everything the assistant does until the
// next typed message (its replies, the tool results stored between them, the cards of its
// tool calls) is one assistant turn: one block with one author line, as Claude.ai shows it.
// A turn ends with its actions, shown on hover or focus: its versions and Edit or
// Regenerate (versions.js), copy, "Fork from here" (fork.js), the time and, for a reply, its
// token usage (summed over the model calls of the turn). A later message of the turn with
// versions of its own has its pager right under it.
//
// A turn holds entries (conversation.js): {sequence, kind, el, content, streaming,
// streamText, createdAt, usage, id, versions}; kind is "typed", "results" or "assistant".

import { copyButton } from "./copy.js";
import { h, textOf } from "./dom.js";
import { fork } from "./fork.js";
import { money } from "./usage.js";
import { versions } from "./versions.js";

const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const DAY_AND_CLOCK = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const count = (n) => n.toLocaleString();

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** Tokens of the model calls given (the API's `usage` of each reply), or null if none is known. */
export function totalUsage(usages) {
  const known = usages.filter((u) => u && typeof u === "object");
  if (!known.length) return null;
  const sum = (...keys) => known.reduce((total, u) => total + (Number(keys.map((k) => u[k]).find((v) => v !== undefined)) || 0), 0);
  // Stored replies say cache_read_tokens; the API's own names are accepted too.
  const priced = known.some((u) => u.cost_usd !== undefined);
  return {
    input: sum("input_tokens"),
    output: sum("output_tokens"),
    cacheRead: sum("cache_read_tokens", "cache_read_input_tokens"),
    cacheWrite: sum("cache_write_tokens", "cache_creation_input_tokens"),
    cost: priced ? sum("cost_usd") : null,
  };
}

const TURNS = new WeakMap(); // li -> Turn

/** The Turn whose block is `li`, or null. */
export function turnOf(li) {
  return (li && TURNS.get(li)) || null;
}

export class Turn {
  constructor(role) {
    this.role = role; // "user" | "assistant"
    this.entries = []; // by sequence
    this.actions = h("div", { class: "message-actions", hidden: true });
    this.el = h(
      "li",
      { class: `turn ${role}`, dataset: { role } },
      h("p", { class: "message-author" }, role === "user" ? "You" : "Assistant"),
      this.actions,
    );
    TURNS.set(this.el, this);
  }

  /** Put `entry` in this turn, in sequence order (before cards still waiting for their call). */
  add(entry) {
    entry.turn = this;
    let at = this.entries.findIndex((other) => other.sequence > entry.sequence);
    if (at < 0) at = this.entries.length;
    const before = at < this.entries.length ? this.entries[at].el : this.el.querySelector(":scope > .orphan") || this.actions;
    this.entries.splice(at, 0, entry);
    this.el.insertBefore(entry.el, before);
  }

  /** A card whose tool call is not on screen yet (conversation.js removes it when it is). */
  addOrphan(part) {
    this.el.insertBefore(part, this.actions);
  }

  removePart(part) {
    part.remove();
    if (!this.el.querySelector(":scope > .message")) this.el.remove();
  }

  /** A new turn holding `entry` and everything after it (a typed message arrived between). */
  splitAt(entry) {
    const rest = new Turn(this.role);
    const at = this.entries.indexOf(entry);
    for (const moved of this.entries.splice(at)) rest.add(moved);
    for (const orphan of this.el.querySelectorAll(":scope > .orphan")) rest.addOrphan(orphan);
    this.refresh();
    rest.refresh();
    return rest;
  }

  /** The text a reader would copy: what the user typed, or the reply's text. */
  text() {
    if (this.role === "user") return this.entries.filter((e) => e.kind === "typed").map((e) => textOf(e.content)).join("\n\n");
    return this.entries
      .filter((e) => e.kind === "assistant")
      .map((e) => (e.streaming ? e.streamText : textOf(e.content)).trim())
      .filter(Boolean)
      .join("\n\n");
  }

  /** Redraw the actions: after a message of the turn changed, or its time or usage arrived. */
  refresh() {
    const busy = this.entries.some((e) => e.streaming);
    const pagerFocus = [...this.el.querySelectorAll(":scope > .message-versions")].find((p) => p.contains(document.activeElement));
    const refocus = pagerFocus ? [pagerFocus.dataset.sequence, document.activeElement.dataset.action] : null;
    for (const old of this.el.querySelectorAll(":scope > .message-versions")) old.remove();
    this.actions.hidden = busy || !this.entries.length;
    if (busy) return;
    for (const [entry, pager] of versions.laterPagers(this)) {
      const row = h("div", { class: "message-versions", dataset: { sequence: String(entry.sequence) } }, pager);
      entry.el.after(row);
      if (refocus && refocus[0] === row.dataset.sequence) {
        const again = pager.querySelector(`[data-action=${refocus[1]}]`);
        if (again && !again.disabled) again.focus({ preventScroll: true });
      }
    }
    const own = this.entries.filter((e) => (this.role === "user" ? e.kind === "typed" : e.kind === "assistant"));
    const parts = versions.controls(this);
    if (this.text()) parts.push(copyButton(this.role === "user" ? "Copy message" : "Copy reply", () => this.text()));
    const forkButton = fork.button(this);
    if (forkButton) parts.push(forkButton);
    const times = own.map((e) => e.createdAt).filter(Boolean);
    if (times.length) parts.push(timeOf(this.role === "user" ? times[0] : times.at(-1)));
    const usage = this.role === "assistant" ? totalUsage(own.map((e) => e.usage)) : null;
    if (usage) parts.push(usageOf(usage));
    // A button drawn again keeps the focus it had (a keyboard user is on it).
    const focused = this.actions.contains(document.activeElement) ? buttonKey(document.activeElement) : null;
    this.actions.replaceChildren(...parts);
    if (focused) {
      const again = [...this.actions.querySelectorAll("button")].find((b) => buttonKey(b) === focused);
      if (again && !again.disabled) again.focus({ preventScroll: true });
    }
  }
}

function buttonKey(button) {
  return button.dataset.action || button.getAttribute("aria-label") || button.textContent;
}

function timeOf(date) {
  const text = sameDay(date, new Date()) ? CLOCK.format(date) : DAY_AND_CLOCK.format(date);
  return h("time", { class: "message-time", datetime: date.toISOString(), title: FULL.format(date) }, text);
}

function usageOf(usage) {
  const cached = usage.cacheRead || usage.cacheWrite ? `, ${count(usage.cacheRead)} read from the cache, ${count(usage.cacheWrite)} written to it` : "";
  const cost = usage.cost === null ? "" : `; cost ${money(usage.cost)}`;
  return h(
    "span",
    { class: "message-usage", title: `Input ${count(usage.input)} tokens${cached}; output ${count(usage.output)} tokens${cost}` },
    `${count(usage.input)} tokens in · ${count(usage.output)} out`,
  );
}
