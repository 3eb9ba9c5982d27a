// The usage menu: what the user's model calls used and cost this month and today, against
// their limits (GET /api/v1/usage/). A disclosure like the chat options menu: a "Usage"
// button that shows a small panel, closed by Esc or a click elsewhere. It is read when it
// opens, and again when a run ends while it is open.

import { h } from "./dom.js";

const count = (n) => Number(n || 0).toLocaleString();
const DAY = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });

/** Dollars as people read them: cents above one cent, more digits below. */
export function money(usd) {
  const value = Number(usd || 0);
  if (value === 0) return "$0.00";
  if (value < 0.01) return `$${value.toFixed(4)}`;
  return `$${value.toFixed(2)}`;
}

function line(label, period, tokenLimit, costLimit) {
  const limits = [];
  if (tokenLimit !== null && tokenLimit !== undefined) limits.push(`${count(tokenLimit)} tokens`);
  if (costLimit !== null && costLimit !== undefined) limits.push(money(costLimit));
  return h(
    "div",
    { class: "usage-period" },
    h("dt", {}, label),
    h(
      "dd",
      {},
      h("span", { class: "usage-amount" }, `${count(period.tokens)} tokens · ${money(period.cost_usd)}`),
      limits.length ? h("span", { class: "usage-limit" }, `limit ${limits.join(" or ")} · resets ${DAY.format(new Date(period.resets_at))}`) : null,
    ),
  );
}

function byModel(days) {
  const models = new Map();
  for (const day of days) {
    const seen = models.get(day.model) || { tokens: 0, cost: 0, calls: 0 };
    seen.tokens += day.tokens;
    seen.cost += day.cost_usd;
    seen.calls += day.calls;
    models.set(day.model, seen);
  }
  return [...models.entries()].sort((a, b) => b[1].cost - a[1].cost || b[1].tokens - a[1].tokens);
}

export class UsageMenu {
  /** @param {object} parts root, button, popup (elements); @param {object} api createApi()'s */
  constructor({ root, button, popup }, api) {
    Object.assign(this, { root, button, popup, api });
    this.button.addEventListener("click", () => this.setOpen(this.popup.hidden));
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.popup.hidden) {
        event.preventDefault(); // Esc closes the panel, nothing else (shortcuts.js)
        this.setOpen(false);
        this.button.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!this.popup.hidden && !this.root.contains(event.target)) this.setOpen(false);
    });
  }

  setOpen(open) {
    this.popup.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) this.refresh();
  }

  /** A run ended: what it used shows the next time the panel is read (now, if it is open). */
  runEnded() {
    if (!this.popup.hidden) this.refresh();
  }

  async refresh() {
    this.popup.setAttribute("aria-busy", "true");
    try {
      this.render(await this.api.usage());
    } catch (error) {
      this.popup.replaceChildren(h("p", { class: "usage-error" }, `Usage could not be read: ${error.message}`));
    } finally {
      this.popup.removeAttribute("aria-busy");
    }
  }

  render(usage) {
    const limits = usage.limits;
    const models = byModel(usage.days);
    this.popup.replaceChildren(
      h("h2", { class: "usage-heading" }, "Your usage"),
      h(
        "dl",
        { class: "usage-periods" },
        line("This month", usage.month, limits.tokens_per_month, limits.cost_per_month_usd),
        line("Today", usage.today, limits.tokens_per_day, limits.cost_per_day_usd),
      ),
      models.length
        ? h(
            "ul",
            { class: "usage-models", "aria-label": "This month by model" },
            models.map(([model, seen]) =>
              h("li", {}, h("span", { class: "usage-model" }, model), ` ${count(seen.calls)} ${seen.calls === 1 ? "call" : "calls"} · ${count(seen.tokens)} tokens · ${money(seen.cost)}`),
            ),
          )
        : h("p", { class: "muted" }, "No model calls this month yet."),
    );
  }
}
