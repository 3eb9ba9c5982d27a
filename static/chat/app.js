// The chat page: wires the sidebar, the open chat, the composer and the artifact panel.
// Configuration comes from the page (templates/chat/home.html, chat/views.py).

import { createApi } from "./api.js";
import { ArtifactPanel, ArtifactStore } from "./artifacts.js";
import { Conversation } from "./conversation.js";
import { h, newId } from "./dom.js";
import { OpenChat } from "./session.js";
import { Sidebar } from "./sidebar.js";

const config = JSON.parse(document.getElementById("chat-config").textContent);
const api = createApi(config);
const $ = (id) => document.getElementById(id);

const app = $("chat-app");
const input = $("composer-input");
const sendButton = $("send-button");
const stopButton = $("stop-button");
const notices = $("notices");
const announcer = $("announcer");
const sidebarToggle = $("sidebar-toggle");
const artifactsToggle = $("artifacts-toggle");
const chatUrl = (id) => config.chatUrl.replace("{id}", id);
const chatIdIn = (path) => {
  const match = /\/c\/([0-9a-f-]{36})\/?$/i.exec(path);
  return match ? match[1].toLowerCase() : null;
};

let current = null; // the OpenChat on screen
const small = window.matchMedia("(max-width: 760px)"); // as in chat.css

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
    input.focus();
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

const panel = new ArtifactPanel($("artifact-panel"), {
  api,
  store,
  announce,
  fallbackFocus: () => input,
  onVisibility: (open) => {
    app.classList.toggle("panel-open", open);
    artifactsToggle.setAttribute("aria-expanded", String(open));
  },
});

const view = new Conversation($("messages"), $("conversation"), {
  store,
  announce,
  onAnswer: (id, choice) => {
    if (current) current.answer(id, choice);
    input.focus();
  },
  onOpenArtifact: (id, opener) => panel.open(id, opener),
  onEmptyChange: (empty) => ($("empty-state").hidden = !empty),
});

store.subscribe(() => {
  artifactsToggle.hidden = store.size === 0;
  artifactsToggle.textContent = `Artifacts (${store.size})`;
});

const sidebar = new Sidebar({
  list: $("chat-list"),
  empty: $("chat-list-empty"),
  more: $("more-chats"),
  api,
  chatUrl,
  notify,
  onOpen: (id) => {
    navigate(id);
    closeSidebarOnSmallScreens();
  },
  onRenamed: (id, title) => {
    if (current && current.id === id) setTitle(title);
  },
  onDeleted: (id) => {
    if (current && current.id === id) navigate(null);
  },
});

function setTitle(title) {
  $("chat-title").textContent = title || "New chat";
  document.title = `${title || "New chat"} · agentsite`;
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
    $("model-value").textContent = name;
  },
  runState(state, { outgoing }) {
    app.dataset.runState = state;
    const running = state === "running";
    stopButton.hidden = !running;
    stopButton.disabled = false;
    stopButton.textContent = "Stop";
    sendButton.disabled = running || outgoing;
    input.placeholder = state === "awaiting_input" ? "Or type your own answer" : "Message the assistant";
  },
  title(id, title) {
    sidebar.setTitle(id, title);
    if (current && current.id === id) setTitle(title);
  },
  created(id) {
    // The chat exists now: give it its own address and list it.
    if (chatIdIn(window.location.pathname) !== id) history.replaceState({ chatId: id }, "", chatUrl(id));
    sidebar.ensure(id);
    sidebar.setActive(id);
  },
  notify,
  clearNotices,
  announce,
  restoreDraft(text) {
    if (!input.value) input.value = text;
    autosize();
  },
  fatal(reason) {
    if (reason === "unauthenticated") {
      window.location.assign(`${config.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
      return;
    }
    notify("This chat does not exist any more, or it is not yours.");
    sendButton.disabled = true;
  },
  runEnded() {
    refreshSidebarSoon();
  },
};

// --- opening chats --------------------------------------------------------------------------

function open(id) {
  if (current) current.stop();
  clearNotices();
  panel.reset();
  store.clear();
  view.reset();
  const isNew = id === null;
  const chatId = id || newId();
  setTitle(isNew ? "" : sidebar.titleOf(chatId));
  sidebar.setActive(isNew ? null : chatId);
  $("model-value").textContent = "connecting…";
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  current = new OpenChat({
    id: chatId,
    isNew,
    wsUrl: `${scheme}://${window.location.host}${config.wsRoot}${chatId}/`,
    api,
    view,
    store,
    ui,
  });
  ui.runState("idle", { outgoing: false });
  current.start();
  if (!small.matches) input.focus(); // on a phone that would pop the keyboard up
}

function navigate(id) {
  const url = id ? chatUrl(id) : config.homeUrl;
  if (window.location.pathname !== url) history.pushState({ chatId: id }, "", url);
  open(id);
}

window.addEventListener("popstate", () => open(chatIdIn(window.location.pathname)));

$("new-chat").addEventListener("click", (event) => {
  event.preventDefault();
  navigate(null);
  closeSidebarOnSmallScreens();
});

// --- the composer ---------------------------------------------------------------------------

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function submit() {
  const text = input.value;
  if (!text.trim() || !current) return;
  if (current.state === "running") {
    notify("The assistant is still answering. Wait for it, or stop it first.");
    return;
  }
  if (current.send(text)) {
    clearNotices();
    input.value = "";
    autosize();
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

input.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter is a new line; Enter while composing (IME) is the IME's.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});
input.addEventListener("input", autosize);

stopButton.addEventListener("click", () => {
  if (!current) return;
  current.cancel();
  stopButton.disabled = true;
  stopButton.textContent = "Stopping…";
});

// --- layout ---------------------------------------------------------------------------------

function setSidebar(open) {
  app.classList.toggle("sidebar-open", open);
  sidebarToggle.setAttribute("aria-expanded", String(open));
  if (open) $("new-chat").focus();
}

function closeSidebarOnSmallScreens() {
  if (small.matches) setSidebar(false);
}

sidebarToggle.addEventListener("click", () => setSidebar(!app.classList.contains("sidebar-open")));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && small.matches && app.classList.contains("sidebar-open")) {
    setSidebar(false);
    sidebarToggle.focus();
  }
});
artifactsToggle.addEventListener("click", () => panel.toggle());

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
