// The REST API (docs/api.md) as the page uses it: session cookie, CSRF header, JSON errors.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const PAGE = 500; // the API's largest page of messages

export function createApi({ apiRoot, csrfToken, loginUrl }) {
  async function request(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
    const response = await fetch(url.startsWith("/") ? url : apiRoot + url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      // The session ended (logged out in another tab, expired): sign in again.
      window.location.assign(`${loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
      throw new ApiError(401, "not_authenticated", "You are signed out.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(
        response.status,
        (data && data.code) || `http_${response.status}`,
        (data && data.message) || `The server answered ${response.status}.`,
      );
    }
    return data;
  }

  // A page's `next` is an absolute URL; its path is used, so that a proxy's idea of the
  // scheme or host cannot send the request elsewhere.
  const local = (url) => {
    const parsed = new URL(url, window.location.href);
    return parsed.pathname + parsed.search;
  };

  async function everyPage(first) {
    const results = [];
    let url = first;
    while (url) {
      const page = await request("GET", url);
      results.push(...page.results);
      url = page.next ? local(page.next) : null;
    }
    return results;
  }

  return {
    /** One page of the user's chats, newest activity first; pass the previous page's `next`. */
    listChats: (next) => request("GET", next ? local(next) : "chats/?limit=50"),
    getChat: (id) => request("GET", `chats/${id}/`),
    /** What the next prompt holds against the context window, and the summary shown (context.js). */
    context: (id) => request("GET", `chats/${id}/context/`),
    renameChat: (id, title) => request("PATCH", `chats/${id}/`, { title }),
    deleteChat: (id) => request("DELETE", `chats/${id}/`),

    /** One stored message (for an event sent without its content: too big for a frame). */
    async message(id, sequence) {
      const page = await request("GET", `chats/${id}/messages/?after=${sequence - 1}&limit=1`);
      return page.results.find((m) => m.sequence === sequence) || null;
    },

    /** Up to 500 messages after sequence `after`, in order. */
    async messagesAfter(id, after) {
      const page = await request("GET", `chats/${id}/messages/?after=${after}&limit=${PAGE}`);
      return page.results;
    },

    /** Every message of a chat after sequence `after` (all by default), in order (a page of 500 at a time). */
    async allMessages(id, after = 0) {
      const messages = [];
      for (;;) {
        const page = await request("GET", `chats/${id}/messages/?after=${after}&limit=${PAGE}`);
        messages.push(...page.results);
        if (page.next_after === null || page.next_after === undefined) return messages;
        after = page.next_after;
      }
    },

    /** One page of the user's search hits for `q` (docs/api.md); pass the previous page's `next` for more. */
    search: (q, next) => request("GET", next ? local(next) : `search/?q=${encodeURIComponent(q)}&limit=20`),
    /** Show another version of a message: the chat's conversation becomes the path through it. */
    switchTo: (chatId, messageId) => request("POST", `chats/${chatId}/messages/${messageId}/switch/`),
    /** A message's versions, oldest first: {id, sequence, role, active, …}. */
    async versions(chatId, messageId) {
      const page = await request("GET", `chats/${chatId}/messages/${messageId}/versions/`);
      return page.results;
    },

    /** A new chat holding the conversation up to and including a message: {id, title, …}. */
    forkChat: (chatId, messageId) => request("POST", `chats/${chatId}/messages/${messageId}/fork/`),

    /** Every artifact of a chat, oldest first (without content). */
    listArtifacts: (chatId) => everyPage(`chats/${chatId}/artifacts/?limit=200`),
    getArtifact: (id) => request("GET", `artifacts/${id}/`),
    downloadUrl: (id) => `${apiRoot}artifacts/${id}/download/`,

    /** The user's usage this month and today, against their limits (usage.js). */
    usage: () => request("GET", "usage/"),
  };
}
