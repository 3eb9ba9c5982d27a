// Fork: "Fork from here" on every message starts a new chat holding a copy of the
// conversation up to and including that message (the API's fork/, docs/api.md), and opens it.
//
// A turn's button forks from its last stored message: the message typed, or the last
// message of a reply (so a reply that used tools is copied with its tool results). The
// button waits like Edit and Regenerate while a reply is written (versions.js disables it
// with them), and while a fork of ours is on its way.

import { h, icon } from "./dom.js";
import { versions } from "./versions.js";

export const FORK_TIP = "Start a new chat from this message";

class Fork {
  constructor() {
    this.chat = null; // see connect()
    this.going = false;
  }

  /** @param {object} chat  fork(messageId): a promise of the new chat ({id, title}) after it
   *   was opened; notify(text): an error notice */
  connect(chat) {
    this.chat = chat;
  }

  /** The turn's "Fork from here" button, or null when it has no stored message yet. */
  button(turn) {
    const last = [...turn.entries].reverse().find((e) => e.id && !e.streaming);
    if (!last) return null;
    const button = h(
      "button",
      { type: "button", class: "ghost version-action fork-button", "aria-label": "Fork from here", dataset: { action: "fork", tip: FORK_TIP } },
      icon("fork"),
      h("span", {}, "Fork"),
    );
    button.addEventListener("click", () => this.fork(last.id));
    versions.enable(button);
    if (this.going) button.disabled = true;
    return button;
  }

  async fork(messageId) {
    if (this.going || versions.busy || !this.chat) return;
    this.going = true;
    this.sync();
    try {
      await this.chat.fork(messageId);
    } catch (error) {
      this.chat.notify(`The new chat was not made (${error.message}).`);
    } finally {
      this.going = false;
      versions.sync();
    }
  }

  sync() {
    for (const button of document.querySelectorAll(".fork-button")) button.disabled = true;
  }
}

export const fork = new Fork();
