// Search across chats: the field at the top of the sidebar (Ctrl/⌘+K focuses it). Results
// come as you type (debounced; an answer to an older query is dropped), in place of the chat
// list; ↑/↓ move through them (the field keeps the focus: a combobox), Enter opens one, Esc
// clears the search. Snippets arrive as fragments (the API never sends HTML): matched words
// become <mark> elements built here, the rest text nodes, so nothing a message says becomes markup.

import { h } from "./dom.js";

const DEBOUNCE_MS = 200;
const DATE = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

export class ChatSearch {
  /**
   * @param {object} parts  input, results (ul), status, more (button), hides (the chat list's element)
   * @param {object} options  api, onChoose(hit)
   */
  constructor({ input, results, status, more, hides }, { api, onChoose }) {
    Object.assign(this, { input, results, status, more, hides, api, onChoose });
    this.hits = [];
    this.active = -1;
    this.next = null;
    this.asked = 0; // the latest request; answers to older ones are dropped
    this.query = "";
    this.timer = null;
    input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(input.value.trim()), DEBOUNCE_MS);
    });
    input.addEventListener("keydown", (event) => this.onKey(event));
    more.addEventListener("click", () => this.loadMore());
  }

  focus() {
    this.input.focus();
    this.input.select();
  }

  clear() {
    clearTimeout(this.timer);
    this.input.value = "";
    this.run("");
  }

  async run(query) {
    if (query === this.query) return;
    this.query = query;
    const asked = ++this.asked;
    if (!query) {
      this.show([], null, "");
      return;
    }
    this.setStatus("Searching…");
    try {
      const page = await this.api.search(query);
      if (asked === this.asked) this.show(page.results, page.next, query);
    } catch (error) {
      if (asked === this.asked) this.fail(error);
    }
  }

  async loadMore() {
    if (!this.next) return;
    const asked = this.asked;
    this.more.disabled = true;
    try {
      const page = await this.api.search(this.query, this.next);
      if (asked !== this.asked) return;
      this.hits.push(...page.results);
      this.next = page.next;
      this.render();
      this.setStatus(this.summary());
    } catch (error) {
      if (asked === this.asked) this.fail(error);
    } finally {
      this.more.disabled = false;
    }
  }

  fail(error) {
    this.setStatus(error.status === 400 ? error.message : `The search did not work: ${error.message}`);
  }

  show(hits, next, query) {
    this.hits = hits;
    this.next = next;
    this.active = -1;
    const searching = Boolean(query);
    this.hides.hidden = searching;
    this.results.hidden = !searching;
    this.input.setAttribute("aria-expanded", String(searching && hits.length > 0));
    this.render();
    this.setStatus(searching ? this.summary() : "");
  }

  summary() {
    if (!this.hits.length) return `Nothing found for “${this.query}”.`;
    const count = `${this.hits.length}${this.next ? "+" : ""}`;
    return `${count} ${this.hits.length === 1 && !this.next ? "result" : "results"}. ↑ and ↓ to choose, Enter to open.`;
  }

  setStatus(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  render() {
    this.results.replaceChildren(...this.hits.map((hit, i) => this.option(hit, i)));
    this.more.hidden = !this.next;
    this.mark();
  }

  option(hit, i) {
    const when = hit.message ? DATE.format(new Date(hit.message.created_at)) : null;
    const who = hit.message ? (hit.message.role === "user" ? "You" : "Assistant") : "Chat title";
    const other = hit.message && !hit.message.on_active_path ? " · another version" : "";
    const li = h(
      "li",
      { class: "search-hit-option", role: "option", id: `search-hit-${i}`, "aria-selected": "false" },
      h("span", { class: "search-hit-title" }, hit.message ? hit.chat.title || "New chat" : snippet(hit.snippet)),
      hit.message ? h("span", { class: "search-hit-snippet" }, snippet(hit.snippet)) : null,
      h("span", { class: "search-hit-meta muted" }, [who, when].filter(Boolean).join(" · ") + other),
    );
    li.addEventListener("mousedown", (event) => event.preventDefault()); // the field keeps the focus
    li.addEventListener("click", () => this.choose(i));
    return li;
  }

  mark() {
    for (const [i, li] of [...this.results.children].entries()) li.setAttribute("aria-selected", String(i === this.active));
    const current = this.results.children[this.active];
    if (current) {
      this.input.setAttribute("aria-activedescendant", current.id);
      current.scrollIntoView({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  onKey(event) {
    if (event.isComposing) return;
    const count = this.hits.length;
    if (event.key === "ArrowDown" && count) {
      event.preventDefault();
      this.active = (this.active + 1) % count;
      this.mark();
    } else if (event.key === "ArrowUp" && count) {
      event.preventDefault();
      this.active = this.active <= 0 ? count - 1 : this.active - 1;
      this.mark();
    } else if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(this.timer);
      const query = this.input.value.trim();
      if (query !== this.query) this.run(query); // typed and Enter at once: search first
      else if (count) this.choose(Math.max(0, this.active));
    } else if (event.key === "Escape" && this.input.value) {
      event.preventDefault(); // Esc clears the search (and stops nothing else)
      this.clear();
    }
  }

  choose(i) {
    const hit = this.hits[i];
    if (!hit) return;
    this.active = i;
    this.mark();
    this.onChoose(hit);
  }
}

/** The snippet's fragments as text and <mark> elements. */
function snippet(fragments) {
  return (fragments || []).map((part) => (part.match ? h("mark", {}, part.text) : part.text));
}
