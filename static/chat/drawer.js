// The chat list as a drawer on small screens: opened by "Show chats", closed by its close
// button, a tap on the dimmed page beside it, Esc, or picking a chat. On wider screens
// the sidebar is always there and none of this applies.

export const SMALL = window.matchMedia("(max-width: 760px)"); // as in chat.css

export class Drawer {
  /** @param {object} parts  app (gets .sidebar-open), toggle, close, backdrop, firstFocus (elements) */
  constructor({ app, toggle, close, backdrop, firstFocus }) {
    Object.assign(this, { app, toggle, firstFocus });
    toggle.addEventListener("click", () => this.set(!this.isOpen));
    close.addEventListener("click", () => this.close());
    backdrop.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented && SMALL.matches && this.isOpen) {
        event.preventDefault(); // Esc closes the drawer, nothing else (shortcuts.js)
        this.close();
      }
    });
  }

  get isOpen() {
    return this.app.classList.contains("sidebar-open");
  }

  set(open) {
    this.app.classList.toggle("sidebar-open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
    if (open) this.firstFocus.focus();
  }

  /** Close, and give the focus back to the button that opened it. */
  close() {
    if (!this.isOpen) return;
    this.set(false);
    if (SMALL.matches) this.toggle.focus();
  }

  /** A chat was picked or started: on a small screen the drawer makes way for it. */
  closeOnSmallScreens() {
    if (SMALL.matches) this.set(false);
  }
}
