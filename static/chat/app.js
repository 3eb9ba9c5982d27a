// The chat page: wires the sidebar, the open chat, the composer, the header and the
// artifact panel. Configuration comes from the page (templates/chat/home.html, chat/views.py).

import { createApi } from "./api.js";
import { ArtifactPanel, ArtifactStore } from "./artifacts.js";
import { AttachmentTray } from "./attachments.js";
import { Composer } from "./composer.js";
import { ContextMeter } from "./context.js";
import { Conversation } from "./conversation.js";
import { h, newId } from "./dom.js";
import { Drawer, SMALL } from "./drawer.js";
import { fork } from "./fork.js";
import { FollowScroll } from "./scrolling.js";
import { ChatSearch } from "./search.js";
import { OpenChat } from "./session.js";
import { installShortcuts } from "./shortcuts.js";
import { Sidebar } from "./sidebar.js";
import { Toolbar } from "./toolbar.js";
import { UsageMenu } from "./usage.js";
import { versions } from "./versions.js";

const config = JSON.parse(document.getElementById("chat-config").textContent);
const api = createApi(config);
const $ = (id) => document.getElementById(id);

const app = $("chat-app");
const notices = $("notices");
const announcer = $("announcer");
const chatUrl = (id) => config.chatUrl.replace("{id}", id);
const chatIdIn = (path) => {
  const match = /\/c\/([0-9a-f-]{36})\/?$/i.exec(path);
  return match ? match[1].toLowerCase() : null;
};

let current = null; // the OpenChat on screen

// --- announcements and notices --------------------------------------------------------------

function announce(text) {
  // Emptied first, so the same words twice are still read twice.
  announcer.textContent = "";
  setTimeout(() => (announcer.textContent = text), 50);
}

function notify(message, retry = null) {
  const notice = h("div", { class: "notice error", role: "alert" }, h("p", {}, message));
  const dismiss = h("button", { type: "button", class: "secondary icon-button dismiss", "aria-label": "Dismiss this notice" }, "✕");
  dismiss.addEventListener("click", () => {
    notice.remove();
    composer.focus();
  });
  if (retry) {
    const button = h("button", { type: "button", class: "secondary retry" }, "Retry");
    button.addEventListener("click", () => {
      notice.remove();
      retry();
    });
    notice.append(button);
  }
  notice.append(dismiss);
  notices.replaceChildren(notice);
}

function clearNotices() {
  notices.replaceChildren();
}

// --- the parts of the page ------------------------------------------------------------------

const store = new ArtifactStore();
const usageMenu = new UsageMenu({ root: $("usage-menu-root"), button: $("usage-button"), popup: $("usage-popup") }, api);

const toolbar = new Toolbar(
  {
    title: $("chat-title"),
    model: $("model-value"),
    artifacts: $("artifacts-toggle"),
    artifactsCount: $("artifacts-count"),
    menuRoot: $("chat-menu-root"),
    menuButton: $("chat-menu-button"),
    menu: $("chat-menu"),
    exportMarkdown: $("export-markdown"),
    exportJson: $("export-json"),
  },
  { exportUrl: (id, format) => `${config.apiRoot}chats/${id}/export/?format=${format}` },
);

const composer = new Composer(
  { form: $("composer"), input: $("composer-input"), send: $("send-button"), stop: $("stop-button"), hint: $("composer-hint"), status: $("composer-status") },
  {
    submit(text) {
      if (text.trim() === "/compact") return Boolean(current && current.compact());
      if (!current || !current.send(text, tray.ids())) return false;
      tray.sent();
      clearNotices();
      return true;
    },
    files: () => ({ count: tray.ids().length, busy: tray.busy }),
    stop() {
      if (current) current.cancel();
    },
    editLast: () => versions.openEditor(view.lastTypedEntry()),
  },
);

const tray = new AttachmentTray(
  { button: $("attach-button"), input: $("attach-input"), chips: $("attachment-chips"), dropZone: $("conversation-pane"), pasteTarget: $("composer-input") },
  { chatId: () => current.id, announce },
);

const panel = new ArtifactPanel($("artifact-panel"), {
  api,
  store,
  announce,
  fallbackFocus: () => $("composer-input"),
  onVisibility: (open) => {
    app.classList.toggle("panel-open", open);
    toolbar.artifacts.setAttribute("aria-expanded", String(open));
  },
});

const view = new Conversation($("messages"), new FollowScroll($("conversation"), $("jump-latest")), {
  store,
  announce,
  onAnswer: (id, choice) => {
    if (current) current.answer(id, choice);
    composer.focus();
  },
  onOpenArtifact: (id, opener) => panel.open(id, opener),
  onEmptyChange: (empty) => ($("empty-state").hidden = !empty),
});

const meter = new ContextMeter(
  { root: $("context-meter"), bar: $("context-bar"), fill: $("context-fill"), mark: $("context-mark"), label: $("context-label"), button: $("compact-button"), list: $("messages") },
  { api, compact: () => current && current.compact() },
);

store.subscribe(() => toolbar.setArtifactCount(store.size));
toolbar.artifacts.addEventListener("click", () => panel.toggle());

const drawer = new Drawer({ app, toggle: $("sidebar-toggle"), close: $("sidebar-close"), backdrop: $("sidebar-backdrop"), firstFocus: $("new-chat") });

const sidebar = new Sidebar({
  list: $("chat-list"),
  empty: $("chat-list-empty"),
  more: $("more-chats"),
  api,
  chatUrl,
  notify,
  onOpen: (id) => {
    navigate(id);
    drawer.closeOnSmallScreens();
  },
  onRenamed: (id, title) => {
    if (current && current.id === id) toolbar.setTitle(title);
  },
  onDeleted: (id) => {
    if (current && current.id === id) navigate(null);
  },
});

const search = new ChatSearch(
  { input: $("search-input"), results: $("search-results"), status: $("search-status"), more: $("search-more"), hides: $("chat-nav") },
  { api, onChoose: (hit) => openHit(hit) },
);

/** A search hit: its chat, at its message (shown as the conversation if it is another version). */
async function openHit({ chat, message }) {
  drawer.closeOnSmallScreens();
  if (!message) return navigate(chat.id);
  if (message.on_active_path && current && current.id === chat.id && view.reveal(message.sequence)) return;
  if (!message.on_active_path) {
    try {
      await api.switchTo(chat.id, message.id);
    } catch (error) {
      navigate(chat.id);
      notify(`That message is in another version of this conversation, which cannot be shown now: ${error.message}`);
      return;
    }
  }
  navigate(chat.id, { reveal: message.sequence });
}

let refreshTimer = null;
function refreshSidebarSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => sidebar.refresh(), 300);
}

const ui = {
  connection(state) {
    app.dataset.connection = state;
    $("connection-banner").hidden = state !== "disconnected";
    if (state === "disconnected") $("connection-text").textContent = "Disconnected. Reconnecting…";
  },
  model(name) {
    toolbar.setModel(name);
  },
  runState(state, { outgoing }) {
    app.dataset.runState = state;
    composer.setState(state, { outgoing });
    versions.setState(state, { outgoing });
  },
  title(id, title) {
    sidebar.setTitle(id, title);
    if (current && current.id === id) toolbar.setTitle(title);
  },
  created(id) {
    // The chat exists now: give it its own address, list it, and offer its export.
    if (chatIdIn(window.location.pathname) !== id) history.replaceState({ chatId: id }, "", chatUrl(id));
    sidebar.ensure(id);
    sidebar.setActive(id);
    toolbar.setChat(id);
  },
  notify,
  clearNotices,
  announce,
  restoreDraft(text) {
    composer.restoreDraft(text);
  },
  fatal(reason) {
    if (reason === "unauthenticated") {
      window.location.assign(`${config.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
      return;
    }
    notify("This chat does not exist any more, or it is not yours.");
    $("send-button").disabled = true;
  },
  runEnded() {
    refreshSidebarSoon();
    usageMenu.runEnded();
  },
  contextChanged() {
    if (current && current.exists) meter.refresh(current.id);
  },
  compacting: (on) => meter.compacting(on),
  pathChanged: () => versions.settled(),
  versionRefused: (frame) => versions.refused(frame),
  caughtUp: () => versions.caughtUp(),
};

versions.connect({
  edit: (id, text) => Boolean(current && current.edit(id, text)),
  regenerate: (id) => Boolean(current && current.regenerate(id)),
  switchTo: (id) => Boolean(current && current.switchTo(id)),
  versionsOf: (id) => api.versions(current.id, id),
  quiet: (text) => composer.say(text),
  notify,
  focusHome() {
    if (SMALL.matches) $("conversation").focus({ preventScroll: true }); // no keyboard popping up
    else composer.focus();
  },
});

fork.connect({
  async fork(messageId) {
    const made = await api.forkChat(current.id, messageId);
    sidebar.setTitle(made.id, made.title); // listed first, before the next refresh lists it too
    navigate(made.id);
    announce(`Opened a new chat from that message${made.title ? `: ${made.title}` : ""}.`);
    return made;
  },
  notify,
});

// --- opening chats --------------------------------------------------------------------------

function open(id, { reveal = null } = {}) {
  if (current) current.stop();
  clearNotices();
  tray.reset();
  panel.reset();
  store.clear();
  view.reset();
  const isNew = id === null;
  const chatId = id || newId();
  toolbar.setTitle(isNew ? "" : sidebar.titleOf(chatId));
  toolbar.setChat(isNew ? null : chatId);
  meter.reset(isNew ? null : chatId);
  sidebar.setActive(isNew ? null : chatId);
  toolbar.setModel("connecting…");
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  current = new OpenChat({
    id: chatId,
    isNew,
    wsUrl: `${scheme}://${window.location.host}${config.wsRoot}${chatId}/`,
    api,
    view,
    store,
    ui,
    reveal,
  });
  ui.runState("idle", { outgoing: false });
  current.start();
  if (!SMALL.matches && reveal === null) composer.focus(); // on a phone that would pop the keyboard up
}

function navigate(id, options = {}) {
  const url = id ? chatUrl(id) : config.homeUrl;
  if (window.location.pathname !== url) history.pushState({ chatId: id }, "", url);
  open(id, options);
}

window.addEventListener("popstate", () => open(chatIdIn(window.location.pathname)));

function newChat() {
  navigate(null);
  drawer.closeOnSmallScreens();
}

$("new-chat").addEventListener("click", (event) => {
  event.preventDefault();
  newChat();
});

// Last: Esc goes to whatever it closes first (see shortcuts.js).
installShortcuts(
  { dialog: $("shortcuts-dialog"), list: $("shortcut-list"), opener: $("shortcuts-button"), closer: $("shortcuts-close") },
  {
    newChat,
    search: () => {
      if (SMALL.matches) drawer.set(true);
      search.focus();
    },
    stop: () => composer.stop(),
    isRunning: () => Boolean(current && current.state === "running"),
  },
);

// --- start ----------------------------------------------------------------------------------

// For tests and debugging: the open chat's connection (drop it to simulate a network loss).
window.agentsite = {
  get chat() {
    return current;
  },
  dropConnection(holdMs = 0) {
    if (current) current.connection.drop(holdMs);
  },
};

sidebar.refresh();
open(config.chatId);
