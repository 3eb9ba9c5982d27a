// Artifacts: what is known of each (ArtifactStore, fed by the API and `artifact` events) and
// the side panel that shows one (ArtifactPanel): live progress, rendered and source views,
// copy, download and earlier versions.
//
// Rendering never puts the model's markup into this page: Markdown is sanitised
// (markdown.js); SVG is sanitised and shown as an <img> (an image cannot run script); HTML
// goes into an iframe sandboxed without scripts; Mermaid is shown as its source.

import { copyText, h } from "./dom.js";
import { highlightElement, languageOfFile, renderMarkdown, sanitizeSvg } from "./markdown.js";

const LIVE_RENDER_MS = 150;
const EXTENSIONS = { markdown: "md", mermaid: "mmd", svg: "svg", html: "html", text: "txt" };

export class ArtifactStore {
  constructor() {
    this.items = new Map();
    this.listeners = new Set();
  }

  clear() {
    this.items.clear();
    this.emit(null);
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  emit(id) {
    for (const listener of this.listeners) listener(id);
  }

  merge(id, fields) {
    const item = { ...(this.items.get(id) || { id, progress: null, content: null }), ...fields };
    this.items.set(id, item);
    return item;
  }

  /** The chat's artifacts from the API (no content). */
  setList(list) {
    this.items.clear();
    for (const a of list || []) {
      this.merge(a.id, { kind: a.kind, title: a.title, status: a.status, version: a.version, tool_use_id: a.tool_use_id });
    }
    this.emit(null);
  }

  /** An `artifact` event: state, progress and the content so far. */
  update(event) {
    const known = this.items.get(event.artifact_id);
    const fields = { kind: event.kind, title: event.title, status: event.status, version: event.version, tool_use_id: event.tool_use_id };
    if (event.progress !== undefined) fields.progress = event.progress;
    if (event.content !== undefined) fields.content = event.content;
    else if (known && known.version !== event.version) fields.content = null;
    this.merge(event.artifact_id, fields);
    this.emit(event.artifact_id);
  }

  /** An artifact named by a stored tool result (artifact_data); what is known wins. */
  fromData(data) {
    if (!data || !data.artifact_id) return null;
    return this.items.get(data.artifact_id) || this.merge(data.artifact_id, { kind: data.kind, title: data.title, status: data.status, version: data.version });
  }

  byToolUse(toolUseId) {
    for (const item of this.items.values()) if (item.tool_use_id === toolUseId) return item;
    return null;
  }

  get size() {
    return this.items.size;
  }

  newest() {
    return [...this.items.values()].at(-1) || null;
  }
}

export class ArtifactPanel {
  constructor(root, { api, store, announce, onVisibility, fallbackFocus }) {
    this.root = root;
    this.api = api;
    this.store = store;
    this.announce = announce;
    this.onVisibility = onVisibility;
    this.fallbackFocus = fallbackFocus;
    const $ = (id) => root.querySelector(`#${id}`);
    this.el = {
      heading: $("artifact-heading"),
      close: $("artifact-close"),
      selectField: $("artifact-select-field"),
      select: $("artifact-select"),
      version: $("artifact-version"),
      progressRow: $("artifact-progress-row"),
      progress: $("artifact-progress"),
      status: $("artifact-status"),
      tabRendered: $("tab-rendered"),
      tabSource: $("tab-source"),
      copy: $("artifact-copy"),
      download: $("artifact-download"),
      view: $("artifact-view"),
    };
    this.currentId = null;
    this.detail = null; // the API's copy of the current artifact (with versions)
    this.version = null; // null: the current version; else an earlier version number
    this.tab = "rendered";
    this.opener = null;
    this.blobUrls = [];
    this.timer = null;

    this.el.close.addEventListener("click", () => this.close());
    this.el.select.addEventListener("change", () => this.open(this.el.select.value));
    this.el.version.addEventListener("change", () => {
      this.version = this.el.version.value === "current" ? null : Number(this.el.version.value);
      this.render();
    });
    this.el.tabRendered.addEventListener("click", () => this.setTab("rendered"));
    this.el.tabSource.addEventListener("click", () => this.setTab("source"));
    for (const tab of [this.el.tabRendered, this.el.tabSource]) {
      tab.addEventListener("keydown", (event) => {
        if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
          event.preventDefault();
          this.setTab(this.tab === "rendered" ? "source" : "rendered");
          (this.tab === "rendered" ? this.el.tabRendered : this.el.tabSource).focus();
        }
      });
    }
    this.el.copy.addEventListener("click", async () => {
      const shown = this.shown();
      const ok = shown && (await copyText(shown.content || ""));
      this.el.copy.textContent = ok ? "Copied" : "Copy failed";
      this.announce(ok ? "The artifact was copied." : "The artifact could not be copied.");
      setTimeout(() => (this.el.copy.textContent = "Copy"), 1500);
    });
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen) {
        event.preventDefault(); // Esc closes the panel, nothing else (shortcuts.js)
        this.close();
      }
    });
    store.subscribe((id) => this.changed(id));
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Show artifact `id`; `opener` gets the focus back when the panel closes. */
  async open(id, opener = null) {
    if (opener) this.opener = opener;
    if (id !== this.currentId) {
      this.currentId = id;
      this.detail = null;
      this.version = null;
    }
    this.root.hidden = false;
    this.onVisibility(true);
    this.render();
    this.el.heading.focus();
    await this.fetchDetail();
  }

  close() {
    if (!this.isOpen) return;
    this.root.hidden = true;
    this.onVisibility(false);
    this.revokeBlobs();
    const target = this.opener && this.opener.isConnected ? this.opener : this.fallbackFocus();
    this.opener = null;
    if (target) target.focus();
  }

  toggle() {
    if (this.isOpen) this.close();
    else {
      const newest = this.currentId || (this.store.newest() && this.store.newest().id);
      if (newest) this.open(newest);
    }
  }

  /** The chat changed: forget what was shown. */
  reset() {
    this.currentId = null;
    this.detail = null;
    this.version = null;
    if (this.isOpen) {
      this.root.hidden = true;
      this.onVisibility(false);
    }
    this.revokeBlobs();
  }

  async fetchDetail() {
    const id = this.currentId;
    try {
      const detail = await this.api.getArtifact(id);
      if (id !== this.currentId) return;
      this.detail = detail;
      const item = this.store.items.get(id);
      if (!item || !item.status) {
        this.store.merge(id, { kind: detail.kind, title: detail.title, status: detail.status, version: detail.version, tool_use_id: detail.tool_use_id });
      } else if (item.status !== "generating" && (detail.status === "generating" || detail.version < item.version)) {
        // Read before the last events were: live events are newer. Ask again shortly.
        setTimeout(() => id === this.currentId && this.fetchDetail(), 250);
      }
      this.render();
    } catch (error) {
      if (id === this.currentId) this.el.status.textContent = `Could not load the artifact: ${error.message}`;
    }
  }

  changed(id) {
    this.updateSelect();
    if (!this.isOpen || id !== this.currentId) return;
    const item = this.store.items.get(id);
    if (item && item.status !== "generating" && this.detail && (this.detail.status === "generating" || this.detail.version !== item.version)) {
      this.fetchDetail(); // finished or revised: the API has the final content and versions
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.render();
      }, LIVE_RENDER_MS);
    }
  }

  /** What the panel shows: {title, kind, content, version, current}. */
  shown() {
    const item = this.store.items.get(this.currentId);
    if (!item) return null;
    if (this.version !== null && this.detail) {
      const earlier = (this.detail.versions || []).find((v) => v.version === this.version);
      if (earlier) return { title: earlier.title, kind: item.kind, content: earlier.content, version: earlier.version, current: false };
    }
    const live = item.status === "generating" || !this.detail || this.detail.version !== item.version || this.detail.status !== item.status;
    const content = live && item.content !== null ? item.content : this.detail ? this.detail.content : item.content;
    return { title: item.title, kind: item.kind, content: content ?? "", version: item.version, current: true, loading: content === null || content === undefined };
  }

  setTab(tab) {
    this.tab = tab;
    this.el.tabRendered.setAttribute("aria-selected", String(tab === "rendered"));
    this.el.tabSource.setAttribute("aria-selected", String(tab === "source"));
    this.el.tabRendered.tabIndex = tab === "rendered" ? 0 : -1;
    this.el.tabSource.tabIndex = tab === "source" ? 0 : -1;
    this.el.view.setAttribute("aria-labelledby", tab === "rendered" ? "tab-rendered" : "tab-source");
    this.render();
  }

  updateSelect() {
    const items = [...this.store.items.values()];
    this.el.selectField.hidden = items.length < 2;
    this.el.select.replaceChildren(...items.map((a) => h("option", { value: a.id, selected: a.id === this.currentId }, a.title || "Untitled")));
  }

  render() {
    const item = this.store.items.get(this.currentId);
    if (!item) return;
    this.revokeBlobs(); // the view and the download link are made again below
    const shown = this.shown();
    this.el.heading.textContent = shown.title || "Untitled";
    this.el.select.value = item.id; // the options are made on store changes, not on opening one
    this.root.dataset.artifactId = item.id;
    this.root.dataset.status = item.status;

    const versions = [{ value: "current", label: `Version ${item.version} (current)` }];
    for (const v of [...((this.detail && this.detail.versions) || [])].reverse()) versions.push({ value: String(v.version), label: `Version ${v.version}` });
    const selected = this.version === null ? "current" : String(this.version);
    this.el.version.replaceChildren(...versions.map((v) => h("option", { value: v.value, selected: v.value === selected }, v.label)));
    this.el.version.disabled = versions.length < 2;

    const generating = item.status === "generating";
    this.el.progressRow.hidden = !generating && item.status !== "failed";
    this.el.progress.value = item.progress ?? 0;
    this.el.progress.hidden = !generating;
    this.el.status.textContent = generating
      ? `Writing… ${Math.round((item.progress ?? 0) * 100)}%`
      : item.status === "failed"
        ? "Writing this artifact failed; what was written is shown."
        : "";

    if (shown.current) {
      this.el.download.href = this.api.downloadUrl(item.id);
      this.el.download.setAttribute("download", "");
    } else {
      const blob = new Blob([shown.content], { type: "text/plain" });
      const url = URL.createObjectURL(blob);
      this.blobUrls.push(url);
      this.el.download.href = url;
      this.el.download.setAttribute("download", fileName(shown, item));
    }
    this.el.download.setAttribute("aria-disabled", String(generating));
    this.renderView(shown);
  }

  renderView(shown) {
    const view = this.el.view;
    view.dataset.kind = shown.kind;
    view.dataset.tab = this.tab;
    if (shown.loading) {
      view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      return;
    }
    if (this.tab === "source") {
      view.replaceChildren(h("pre", { class: "artifact-source" }, h("code", {}, shown.content)));
      return;
    }
    view.replaceChildren(this.rendered(shown));
  }

  rendered(shown) {
    const content = shown.content;
    switch (shown.kind) {
      case "markdown": {
        const div = h("div", { class: "markdown artifact-markdown" });
        renderMarkdown(div, content);
        return div;
      }
      case "code": {
        const code = h("code", {}, content);
        highlightElement(code, languageOfFile(shown.title));
        return h("pre", { class: "artifact-code" }, code);
      }
      case "svg": {
        const url = URL.createObjectURL(new Blob([sanitizeSvg(content)], { type: "image/svg+xml" }));
        this.blobUrls.push(url);
        return h("img", { class: "artifact-image", src: url, alt: shown.title || "SVG image" });
      }
      case "html": {
        // No allow-scripts, no allow-same-origin: the page is shown, never run.
        const frame = h("iframe", { class: "artifact-frame", sandbox: "", title: shown.title || "HTML page", referrerpolicy: "no-referrer" });
        frame.srcdoc = content;
        return frame;
      }
      case "mermaid":
        return h(
          "div",
          {},
          h("p", { class: "muted note" }, "Mermaid diagrams are shown as their source here (no diagram renderer is bundled). Download the .mmd file to draw it with Mermaid tools."),
          h("pre", { class: "artifact-source" }, h("code", {}, content)),
        );
      default:
        return h("pre", { class: "artifact-source" }, h("code", {}, content));
    }
  }

  revokeBlobs() {
    for (const url of this.blobUrls) URL.revokeObjectURL(url);
    this.blobUrls = [];
  }
}

function fileName(shown, item) {
  const base = (shown.title || "artifact").replace(/[^\w.-]+/g, "-").replace(/^-+|-+$/g, "") || "artifact";
  if (item.kind === "code") {
    const dot = base.lastIndexOf(".");
    return dot > 0 ? `${base.slice(0, dot)}-v${shown.version}${base.slice(dot)}` : `${base}-v${shown.version}.txt`;
  }
  return `${base}-v${shown.version}.${EXTENSIONS[item.kind] || "txt"}`;
}
