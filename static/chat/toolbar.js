// The chat's header: its title, the artifacts button and the chat options menu (export,
// keyboard shortcuts); and the model answering, shown under the composer. The menu is a
// disclosure: a button that shows a short list of ordinary links and buttons, closed by
// Esc, a click elsewhere, or picking an item.

export class Toolbar {
  /**
   * @param {object} parts  title, model, artifacts, artifactsCount, menuRoot, menuButton, menu,
   *   exportMarkdown, exportJson (elements)
   * @param {object} options  exportUrl(chatId, format)
   */
  constructor(parts, { exportUrl }) {
    Object.assign(this, parts);
    this.exportUrl = exportUrl;
    this.menuButton.addEventListener("click", () => this.setMenu(this.menu.hidden));
    this.menu.addEventListener("click", (event) => {
      if (event.target.closest(".menu-item")) this.setMenu(false);
    });
    this.menuRoot.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.menu.hidden) {
        event.preventDefault(); // Esc closes the menu, nothing else (shortcuts.js)
        this.setMenu(false);
        this.menuButton.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!this.menu.hidden && !this.menuRoot.contains(event.target)) this.setMenu(false);
    });
    this.menuRoot.addEventListener("focusout", (event) => {
      if (!this.menu.hidden && !this.menuRoot.contains(event.relatedTarget)) this.setMenu(false);
    });
  }

  setMenu(open) {
    this.menu.hidden = !open;
    this.menuButton.setAttribute("aria-expanded", String(open));
    if (open) this.menu.querySelector(".menu-item:not([hidden])").focus();
  }

  setTitle(title) {
    this.title.textContent = title || "New chat";
    this.title.title = title || "";
    document.title = `${title || "New chat"} · agentsite`;
  }

  setModel(name) {
    this.model.textContent = name;
  }

  setArtifactCount(count) {
    this.artifacts.hidden = count === 0;
    this.artifacts.setAttribute("aria-label", `Artifacts (${count})`);
    this.artifactsCount.textContent = String(count);
  }

  /** The chat on screen, or null while it is new: nothing to export yet. */
  setChat(id) {
    for (const [link, format, extension] of [[this.exportMarkdown, "markdown", "md"], [this.exportJson, "json", "json"]]) {
      link.hidden = !id;
      if (id) {
        link.href = this.exportUrl(id, format);
        link.setAttribute("download", `chat.${extension}`); // the server's file name wins
      }
    }
  }
}
