// The cards shown under a tool call: display data (charts, text analysis), questions,
// artifacts, and a plain line for other tools. Built with DOM calls: no markup parsing.

import { h } from "./dom.js";
import { chartFigure } from "./charts.js";

/** A display card for display_data, or null for a kind this page does not know. */
export function displayCard(data) {
  if (!data || typeof data !== "object") return null;
  if (data.kind === "chart") return chartFigure(data);
  if (data.kind === "text_analysis") return analysisCard(data);
  return null;
}

const ANALYSIS_ROWS = [
  ["Words", (d) => d.words],
  ["Sentences", (d) => d.sentences],
  ["Characters", (d) => d.characters],
  ["Characters without spaces", (d) => d.characters_no_spaces],
  ["Average word length", (d) => `${d.average_word_length} letters`],
  ["Average sentence length", (d) => `${d.average_sentence_length} words`],
  ["Reading ease (Flesch)", (d) => `${d.reading_ease} (${d.reading_level})`],
  ["Reading time", (d) => `about ${d.reading_time_minutes} min`],
  ["Most used words", (d) => (Array.isArray(d.top_words) && d.top_words.length ? d.top_words.join(", ") : "—")],
];

function analysisCard(data) {
  return h(
    "figure",
    { class: "card analysis-card" },
    h("figcaption", {}, "Text analysis"),
    h(
      "table",
      {},
      h(
        "tbody",
        {},
        ANALYSIS_ROWS.map(([label, value]) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, String(value(data) ?? "—")))),
      ),
    ),
  );
}

/** What the user answered, from a completed tool_result's content. */
export function answerOf(content) {
  const text = typeof content === "string" ? content : "";
  if (text.startsWith("User selected: ")) return { choice: text.slice("User selected: ".length) };
  if (text.startsWith("User replied: ")) return { reply: text.slice("User replied: ".length) };
  return { other: text };
}

/**
 * A question with one button per option.
 * state: { question, options, answer: {choice|reply|other}|null, sending: {choice}|{reply}|null, isError }
 */
export function questionCard(id, state, onChoose) {
  const headingId = `question-${id}`;
  const answered = Boolean(state.answer);
  const locked = answered || Boolean(state.sending);
  const chosen = (state.answer || state.sending || {}).choice;
  const card = h("div", {
    class: `card question-card${answered ? " answered" : ""}`,
    role: "group",
    "aria-labelledby": headingId,
    dataset: { toolUseId: id, state: answered ? "answered" : state.sending ? "sending" : "open" },
  });
  card.append(
    h("p", { class: "question-text", id: headingId }, state.question),
    h(
      "div",
      { class: "options" },
      state.options.map((option) =>
        h(
          "button",
          {
            type: "button",
            class: `option${option === chosen ? " chosen" : ""}`,
            disabled: locked,
            "aria-pressed": option === chosen ? "true" : "false",
            onclick: () => onChoose(option),
          },
          option,
        ),
      ),
    ),
  );
  // An answer typed instead of an option is shown where a chosen option would be.
  const reply = (state.answer || state.sending || {}).reply;
  if (reply !== undefined) {
    card.append(h("p", { class: "question-reply" }, h("span", { class: "visually-hidden" }, "You replied: "), reply));
  }
  let note = "Pick an option, or type your own answer below.";
  if (state.sending) note = state.sending.choice !== undefined ? `Sending “${state.sending.choice}”…` : "Sending your answer…";
  if (state.answer && state.answer.choice !== undefined) note = `You chose ${state.answer.choice}.`;
  if (state.answer && state.answer.reply !== undefined) note = null; // the reply above says it
  if (state.answer && state.answer.other !== undefined) note = state.answer.other || "This question was closed.";
  if (note) card.append(h("p", { class: `question-note muted${state.isError ? " error-text" : ""}` }, note));
  return card;
}

const KIND_NAMES = { markdown: "Document", code: "Code", mermaid: "Diagram", svg: "Image", html: "Web page", text: "Text" };

/** A reference to an artifact, with its progress while it is written. */
export function artifactCard(artifact, onOpen) {
  const generating = artifact.status === "generating";
  const failed = artifact.status === "failed";
  const percent = Math.round((artifact.progress ?? 0) * 100);
  const status = generating ? `Writing… ${percent}%` : failed ? "Failed" : `Version ${artifact.version}`;
  return h(
    "div",
    { class: `card artifact-card${failed ? " failed" : ""}`, dataset: { artifactId: artifact.id, status: artifact.status } },
    h("span", { class: "artifact-icon", "aria-hidden": "true" }, "▤"),
    h(
      "div",
      { class: "artifact-meta" },
      h("strong", { class: "artifact-title" }, artifact.title || "Untitled"),
      h("span", { class: "muted" }, `${KIND_NAMES[artifact.kind] || artifact.kind} · `, h("span", { class: "artifact-state" }, status)),
      generating ? h("progress", { max: "1", value: String(artifact.progress ?? 0), "aria-label": `Writing ${artifact.title}` }) : null,
    ),
    h(
      "button",
      { type: "button", class: "secondary open-artifact", onclick: (event) => onOpen(artifact.id, event.currentTarget) },
      "Open",
      h("span", { class: "visually-hidden" }, ` ${artifact.title || "artifact"}`),
    ),
  );
}

function inputSummary(input) {
  if (!input || typeof input !== "object") return "";
  const values = Object.values(input).filter((value) => typeof value === "string" || typeof value === "number");
  const text = values.length === 1 ? String(values[0]) : JSON.stringify(input);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.filter((b) => b && b.type === "text").map((b) => b.text).join(" ");
  return "";
}

/** A tool call without a card: its name, input and result (or that it is running). */
export function toolLine(use, result, running) {
  const name = (use && use.name) || "tool";
  const failed = result && result.is_error;
  const line = h("div", { class: `tool-line${failed ? " failed" : ""}`, dataset: { state: result ? (failed ? "error" : "done") : running ? "running" : "unknown" } });
  line.append(h("span", { class: "tool-name" }, name));
  const input = inputSummary(use && use.input);
  if (input) line.append(" ", h("code", { class: "tool-input" }, input));
  if (result) {
    line.append(" ", h("span", { class: "tool-result" }, `${failed ? "failed: " : "→ "}${resultText(result.content)}`));
  } else if (running) {
    line.append(" ", h("span", { class: "tool-result muted" }, "running…"));
  }
  return line;
}
