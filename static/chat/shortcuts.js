// Keyboard shortcuts, and the dialog that lists them. Only what works is listed: search
// (Ctrl/⌘+K) comes with that feature; ↑ is the composer's own (composer.js).
//
// Esc is shared: whatever it closes first (the shortcuts dialog, the options menu, the
// drawer, the artifact panel) takes it with preventDefault; only an Esc nobody took stops
// a running reply. So this listener is installed last.

import { h } from "./dom.js";

const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const MOD = MAC ? "⌘" : "Ctrl";

export const SHORTCUTS = [
  [["Enter"], "Send the message"],
  [["Shift", "Enter"], "Start a new line"],
  [["↑"], "Edit your last message (box empty)"],
  [["Esc"], "Stop the reply being written, or cancel an edit"],
  [[MOD, "Shift", "O"], "Start a new chat"],
  [[MOD, "/"], "Show these shortcuts"],
];

/**
 * @param {object} parts  dialog, list, opener, closer (elements)
 * @param {object} actions  newChat(), stop(), isRunning()
 */
export function installShortcuts({ dialog, list, opener, closer }, { newChat, stop, isRunning }) {
  list.replaceChildren(
    ...SHORTCUTS.map(([keys, what]) =>
      h("div", { class: "shortcut" }, h("dt", {}, keys.flatMap((key, i) => [i ? " + " : null, h("kbd", {}, key)])), h("dd", {}, what)),
    ),
  );
  const show = () => {
    if (!dialog.open) dialog.showModal();
  };
  opener.addEventListener("click", show);
  closer.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const mod = MAC ? event.metaKey : event.ctrlKey;
    if (mod && event.shiftKey && event.key.toLowerCase() === "o") {
      event.preventDefault();
      if (dialog.open) dialog.close();
      newChat();
    } else if (mod && !event.shiftKey && event.key === "/") {
      event.preventDefault();
      show();
    } else if (event.key === "Escape" && !dialog.open && isRunning()) {
      event.preventDefault();
      stop();
    }
  });
}
