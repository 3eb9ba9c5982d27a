// Files for the next message: the paperclip ("Attach files"), dropping files on the chat,
// pasting an image. Each file is uploaded at once (POST …/chats/<id>/attachments/) and
// shown as a chip (preview or type, name, size, a remove button) until the message is
// sent with the uploads' ids (`user_message.attachments`). Also: how a sent message shows
// its files (thumbnails, file chips that download the file).

import { h } from "./dom.js";

const config = JSON.parse(document.getElementById("chat-config").textContent);

export const ACCEPT = [
  "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
  ".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".log", ".yaml", ".yml", ".toml", ".xml", ".html",
  ".css", ".py", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".go", ".rs", ".c", ".h", ".cpp", ".hpp",
  ".cs", ".swift", ".rb", ".php", ".sql", ".sh", ".r", ".lua", ".dart", ".scala", ".ini", ".cfg",
].join(",");

/** "12 KB", "3.4 MB". */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

const downloadUrl = (id) => `${config.apiRoot}attachments/${id}/download/`;

function badge(kind, name) {
  const extension = (name.includes(".") ? name.split(".").pop() : kind).slice(0, 4).toUpperCase();
  return h("span", { class: "file-badge", "aria-hidden": "true" }, kind === "pdf" ? "PDF" : extension || "TXT");
}

/** A sent message's files, from its content blocks: thumbnails and chips; null if none. */
export function sentFiles(content) {
  if (!Array.isArray(content)) return null;
  const sources = content
    .map((block) => block && block.source)
    .filter((source) => source && source.type === "attachment" && source.attachment_id);
  if (!sources.length) return null;
  const list = h("ul", { class: "sent-files", "aria-label": "Attached files" });
  for (const source of sources) {
    const url = downloadUrl(source.attachment_id);
    const name = String(source.name || "file");
    let item;
    if (source.kind === "image") {
      item = h(
        "a",
        { class: "sent-image", href: url, download: name, title: `${name} (${source.width}×${source.height})` },
        h("img", { src: url, alt: name, loading: "lazy", width: source.width, height: source.height }),
      );
    } else {
      const detail = source.kind === "pdf" ? `${source.pages} page${source.pages === 1 ? "" : "s"}` : formatSize(source.size || 0);
      item = h(
        "a",
        { class: "file-chip", href: url, download: name },
        badge(source.kind, name),
        h("span", { class: "file-name" }, name),
        h("span", { class: "file-size muted" }, detail),
      );
    }
    list.append(h("li", {}, item));
  }
  return list;
}

/** The chips of the next message's files, and their uploads. */
export class AttachmentTray {
  /**
   * @param {object} parts  button, input (type=file), chips (ul), dropZone, pasteTarget
   * @param {object} on     chatId(): the open chat's id; announce(text); changed()
   */
  constructor({ button, input, chips, dropZone, pasteTarget }, on) {
    Object.assign(this, { button, input, chipList: chips, dropZone, on });
    this.items = [];
    input.accept = ACCEPT;
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = "";
    });
    pasteTarget.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData ? event.clipboardData.files : [])];
      if (!files.length) return; // plain text pastes as text
      event.preventDefault();
      this.add(files);
    });
    let depth = 0; // dragenter/dragleave fire for every child crossed
    const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
    dropZone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      dropZone.classList.add("dropping");
    });
    dropZone.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    dropZone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) dropZone.classList.remove("dropping");
    });
    dropZone.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      dropZone.classList.remove("dropping");
      this.add([...event.dataTransfer.files]);
    });
  }

  /** Upload these files for the next message. */
  add(files) {
    for (const file of files) {
      const item = { file, chatId: this.on.chatId(), id: null, state: "uploading", error: "", preview: null, abort: new AbortController() };
      if (file.type.startsWith("image/")) item.preview = URL.createObjectURL(file);
      item.el = this.chip(item);
      this.items.push(item);
      this.chipList.append(item.el);
      this.upload(item);
    }
    this.update();
  }

  async upload(item) {
    const body = new FormData();
    body.append("file", item.file, item.file.name);
    try {
      const response = await fetch(`${config.apiRoot}chats/${item.chatId}/attachments/`, {
        method: "POST",
        body,
        headers: { Accept: "application/json", "X-CSRFToken": config.csrfToken },
        credentials: "same-origin",
        signal: item.abort.signal,
      });
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new Error((data && data.message) || `The upload failed (${response.status}).`);
      item.id = data.id;
      item.state = "ready";
      if (!this.items.includes(item)) this.forget(item); // removed while it uploaded
    } catch (error) {
      if (error.name === "AbortError") return;
      item.state = "failed";
      item.error = error.message;
      this.on.announce(`${item.file.name} was not attached: ${error.message}`);
    }
    if (this.items.includes(item)) {
      const fresh = this.chip(item);
      item.el.replaceWith(fresh);
      item.el = fresh;
      this.update();
    }
  }

  chip(item) {
    const { file } = item;
    const preview = item.preview && item.state !== "failed"
      ? h("img", { class: "chip-preview", src: item.preview, alt: "" })
      : badge(file.type === "application/pdf" ? "pdf" : "text", file.name);
    const status =
      item.state === "uploading" ? "Uploading…" : item.state === "failed" ? item.error : formatSize(file.size);
    const remove = h("button", { type: "button", class: "chip-remove secondary icon-button", "aria-label": `Remove ${file.name}` }, "✕");
    remove.addEventListener("click", () => this.remove(item));
    return h(
      "li",
      { class: `attachment-chip ${item.state}`, dataset: { state: item.state } },
      preview,
      h("span", { class: "chip-text" }, h("span", { class: "file-name" }, file.name), h("span", { class: "file-size muted", role: item.state === "failed" ? "alert" : null }, status)),
      remove,
    );
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    item.el.remove();
    if (item.state === "uploading") item.abort.abort();
    this.forget(item);
    this.update();
    this.on.announce(`Removed ${item.file.name}.`);
  }

  /** An upload that will not be sent: its preview freed, and its file removed from the server. */
  forget(item) {
    if (item.preview) URL.revokeObjectURL(item.preview);
    if (item.id) {
      fetch(`${config.apiRoot}attachments/${item.id}/`, {
        method: "DELETE",
        headers: { "X-CSRFToken": config.csrfToken },
        credentials: "same-origin",
      }).catch(() => {});
    }
  }

  /** True while a file is still on its way up. */
  get busy() {
    return this.items.some((item) => item.state === "uploading");
  }

  /** The ids of the uploaded files, in the order they were added. */
  ids() {
    return this.items.filter((item) => item.state === "ready").map((item) => item.id);
  }

  /** The message went out with them: clear the tray (the files stay, with the message). */
  sent() {
    for (const item of this.items) {
      if (item.preview) URL.revokeObjectURL(item.preview);
      if (item.state !== "ready") this.forget(item);
    }
    this.items = [];
    this.chipList.replaceChildren();
    this.update();
  }

  /** Another chat was opened: what was waiting here is dropped. */
  reset() {
    for (const item of this.items) {
      if (item.state === "uploading") item.abort.abort();
      this.forget(item);
    }
    this.items = [];
    this.chipList.replaceChildren();
    this.update();
  }

  update() {
    this.chipList.hidden = !this.items.length;
    if (this.on.changed) this.on.changed();
  }
}
