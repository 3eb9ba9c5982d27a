// Copy buttons, on every message and every code block: "Copy", then "Copied" for a moment.

import { copyText, h, icon } from "./dom.js";

const COPIED_MS = 2000;

/** A button named `label` ("Copy message") that copies text() when pressed. */
export function copyButton(label, text) {
  const caption = h("span", { class: "copy-caption" }, "Copy");
  const button = h("button", { type: "button", class: "ghost copy-button", "aria-label": label }, icon("copy"), caption);
  let reset = null;
  button.addEventListener("click", async () => {
    const ok = await copyText(text());
    // The name changes with the caption, so a screen reader hears the result too.
    button.setAttribute("aria-label", ok ? "Copied" : "Copy failed");
    caption.textContent = ok ? "Copied" : "Copy failed";
    button.dataset.state = ok ? "copied" : "failed";
    clearTimeout(reset);
    reset = setTimeout(() => {
      button.setAttribute("aria-label", label);
      caption.textContent = "Copy";
      delete button.dataset.state;
    }, COPIED_MS);
  });
  return button;
}

/** Give each code block under `root` a bar with its language and a "Copy code" button. */
export function addCodeCopyButtons(root) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code") || pre;
    const language = /language-([\w+#.-]+)/.exec(code.className);
    const block = h("div", { class: "code-block" });
    pre.replaceWith(block);
    block.append(
      h("div", { class: "code-bar" }, h("span", { class: "code-language" }, language ? language[1] : "code"), copyButton("Copy code", () => code.textContent)),
      pre,
    );
  }
}
