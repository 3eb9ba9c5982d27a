// The sidebar: the user's chats (newest activity first, a page at a time), the open one
// marked, rename and delete in place. Confirmations are in the page, not browser dialogs.

import { h, icon } from "./dom.js";

export class Sidebar {
  constructor({ list, empty, more, api, chatUrl, onOpen, onRenamed, onDeleted, notify }) {
    this.list = list;
    this.empty = empty;
    this.more = more;
    this.api = api;
    this.chatUrl = chatUrl;
    this.onOpen = onOpen;
    this.onRenamed = onRenamed;
    this.onDeleted = onDeleted;
    this.notify = notify;
    this.chats = []; // [{id, title}]
    this.next = null;
    this.activeId = null;
    this.editing = null; // the id being renamed or deleted: refreshes leave it alone
    this.more.addEventListener("click", () => this.loadMore());
  }

  async refresh() {
    if (this.editing) return;
    try {
      const page = await this.api.listChats();
      const added = this.chats.filter((chat) => chat.local); // made here, not yet listed by the API
      this.chats = page.results.map(({ id, title }) => ({ id, title }));
      for (const chat of added) if (!this.chats.some((c) => c.id === chat.id)) this.chats.unshift(chat);
      this.next = page.next;
      this.render();
    } catch (error) {
      console.error("the chat list did not load", error);
    }
  }

  async loadMore() {
    if (!this.next) return;
    const page = await this.api.listChats(this.next);
    for (const { id, title } of page.results) if (!this.chats.some((c) => c.id === id)) this.chats.push({ id, title });
    this.next = page.next;
    this.render();
  }

  setActive(id) {
    this.activeId = id;
    for (const link of this.list.querySelectorAll(".chat-link")) {
      if (link.closest("li").dataset.chatId === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** A chat that just came to exist (its first message was stored): list it first. */
  ensure(id) {
    if (!this.chats.some((chat) => chat.id === id)) {
      this.chats.unshift({ id, title: "", local: true });
      this.render();
    }
  }

  setTitle(id, title) {
    const chat = this.chats.find((c) => c.id === id);
    if (chat) chat.title = title;
    else this.chats.unshift({ id, title, local: true });
    if (this.editing !== id) this.render();
  }

  titleOf(id) {
    const chat = this.chats.find((c) => c.id === id);
    return chat ? chat.title : "";
  }

  render() {
    // A refresh must not pull the focus from under someone tabbing through the list.
    const focused = this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusedChat = focused && focused.closest("li").dataset.chatId;
    const focusedClass = focused && [...focused.classList].at(-1); // chat-link, rename or delete
    this.list.replaceChildren(...this.chats.map((chat) => this.item(chat)));
    this.empty.hidden = this.chats.length > 0;
    this.more.hidden = !this.next;
    if (focusedChat) {
      const again = this.list.querySelector(`li[data-chat-id="${CSS.escape(focusedChat)}"] .${CSS.escape(focusedClass)}`);
      if (again) again.focus();
    }
  }

  item(chat) {
    const title = chat.title || "New chat";
    const link = h("a", { class: "chat-link", href: this.chatUrl(chat.id), "aria-current": chat.id === this.activeId ? "page" : null }, title);
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      this.onOpen(chat.id);
    });
    const rename = h("button", { type: "button", class: "icon-button secondary rename", "aria-label": `Rename “${title}”`, title: "Rename" }, icon("pencil"));
    const remove = h("button", { type: "button", class: "icon-button secondary delete", "aria-label": `Delete “${title}”`, title: "Delete" }, icon("trash"));
    rename.addEventListener("click", () => this.startRename(chat, li));
    remove.addEventListener("click", () => this.confirmDelete(chat, li));
    const li = h("li", { class: "chat-item", dataset: { chatId: chat.id } }, link, h("span", { class: "chat-actions" }, rename, remove));
    return li;
  }

  startRename(chat, li) {
    this.editing = chat.id;
    const input = h("input", { type: "text", class: "rename-input", value: chat.title || "", maxlength: "200", "aria-label": "New title", required: true });
    const error = h("p", { class: "error-text", role: "alert" });
    const form = h(
      "form",
      { class: "rename-form" },
      input,
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "secondary cancel" }, "Cancel"),
      error,
    );
    const done = (focusLink = true) => {
      this.editing = null;
      this.render();
      if (focusLink) this.focusItem(chat.id);
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const title = input.value.trim();
      if (!title) {
        error.textContent = "The title cannot be empty.";
        return;
      }
      try {
        const saved = await this.api.renameChat(chat.id, title);
        chat.title = saved.title;
        this.onRenamed(chat.id, saved.title);
        done();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    form.querySelector(".cancel").addEventListener("click", () => done());
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        done();
      }
    });
    li.replaceChildren(form);
    input.focus();
    input.select();
  }

  confirmDelete(chat, li) {
    this.editing = chat.id;
    const title = chat.title || "New chat";
    const yes = h("button", { type: "button", class: "danger confirm-delete" }, "Delete");
    const no = h("button", { type: "button", class: "secondary" }, "Cancel");
    const box = h("div", { class: "delete-confirm", role: "group", "aria-label": `Delete “${title}”?` }, h("p", {}, `Delete “${title}” and its artifacts?`), yes, no);
    no.addEventListener("click", () => {
      this.editing = null;
      this.render();
      this.focusItem(chat.id);
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await this.api.deleteChat(chat.id);
      } catch (failure) {
        if (failure.status !== 404) {
          yes.disabled = false;
          this.notify(`The chat was not deleted: ${failure.message}`);
          return;
        }
      }
      this.editing = null;
      this.chats = this.chats.filter((c) => c.id !== chat.id);
      this.render();
      this.onDeleted(chat.id);
    });
    li.replaceChildren(box);
    no.focus();
  }

  focusItem(id) {
    const link = this.list.querySelector(`li[data-chat-id="${CSS.escape(id)}"] .chat-link`);
    if (link) link.focus();
  }
}
