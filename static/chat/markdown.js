// Markdown from the model, rendered safely: marked parses, DOMPurify sanitises what it made,
// highlight.js colours finished code blocks.
//
// Two layers, so that neither alone has to be perfect:
// - raw HTML the model writes is shown as text (the html renderer escapes it), and images
//   become links (a remote image would load a URL of the model's choosing: a leak);
// - the HTML marked produced is sanitised by DOMPurify before it reaches the page
//   (no script, event handler, javascript: URL, form, frame or style).
// User text never comes here: it is shown with textContent.

import { Marked } from "../vendor/marked-18.2.1/marked.esm.js";
import DOMPurify from "../vendor/dompurify-3.4.18/purify.es.mjs";
import hljs from "../vendor/highlight.js-11.12.0/highlight.min.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    html({ text, block }) {
      return block ? `<p>${escapeHtml(text)}</p>` : escapeHtml(text);
    },
    image({ href, text }) {
      const label = text || href || "image";
      return `<a href="${escapeHtml(href || "")}">${escapeHtml(label)}</a>`;
    },
  },
});

const PURIFY = {
  FORBID_TAGS: [
    "style", "img", "svg", "math", "form", "input", "button", "textarea", "select",
    "option", "iframe", "frame", "object", "embed", "video", "audio", "source", "picture",
  ],
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Sanitised DOM for `text` as Markdown. `highlight`: colour code blocks (finished text). */
export function markdownFragment(text, { highlight = true } = {}) {
  const html = marked.parse(text || "");
  const fragment = DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
  if (highlight) {
    for (const code of fragment.querySelectorAll("pre > code")) highlightElement(code);
  }
  return fragment;
}

/** Render Markdown into `target`, replacing what it held. */
export function renderMarkdown(target, text, options) {
  target.replaceChildren(markdownFragment(text, options));
}

const AUTO_LIMIT = 20000; // guessing the language of a long block is slow

/** Colour one <code> element in place, from its language-* class or the file name given. */
export function highlightElement(code, languageHint) {
  const source = code.textContent;
  const match = /language-([\w+#.-]+)/.exec(code.className);
  const language = [languageHint, match && match[1]].find((name) => name && hljs.getLanguage(name));
  let result = null;
  try {
    if (language) result = hljs.highlight(source, { language, ignoreIllegals: true });
    else if (source.length <= AUTO_LIMIT) result = hljs.highlightAuto(source);
  } catch {
    result = null;
  }
  if (!result) return;
  // highlight.js escapes the source itself; sanitised again so only its spans remain.
  code.innerHTML = DOMPurify.sanitize(result.value, { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"] });
  code.classList.add("hljs");
}

/** The language highlight.js knows for a file name such as fib.py, or null. */
export function languageOfFile(name) {
  const extension = /\.([\w+-]+)$/.exec(name || "");
  return extension && hljs.getLanguage(extension[1]) ? extension[1] : null;
}

/** An SVG document with everything that could run or fetch removed, as a string. */
export function sanitizeSvg(svg) {
  return DOMPurify.sanitize(svg, {
    USE_PROFILES: { svg: true, svgFilters: true },
    FORBID_TAGS: ["foreignObject", "image", "use", "a"],
  });
}
