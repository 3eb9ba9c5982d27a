"""The offline demo model: a deterministic stand-in for Claude, used when no API key is set.

It follows a small contract (``docs/offline-model.md``) so that users and tests can drive it:
the newest user text decides, checked in this order,

- ``calculate <expression>``        → calls calculate with what follows the word;
- contains the word ``analyze``     → calls analyze_text on the rest of the message;
- contains the word ``chart``       → calls display_chart with sample data (``pie`` or
  ``line`` in the message picks that chart type, else a bar chart);
- contains ``choose`` or ``options``→ calls propose_options with three options;
- contains ``write`` or ``artifact``→ calls create_artifact (a mermaid diagram, an SVG or
  code if the message says ``diagram``/``mermaid``, ``svg`` or ``code``; else markdown);
- contains the word ``long``        → a long reply (about ``LONG_REPLY_TOKENS`` tokens, in
  paragraphs), so that a chat reaches its context window and is compacted in a few turns;
- anything else                     → a reply of a few sentences quoting the user.

Asked for a summary (``summarize``, a compaction), it lists each message of the
conversation in one line, folding in the summary it begins with, newest lines kept.

After tool results it writes one short sentence per result that uses it. Its words stream
as separate deltas, ``word_delay`` seconds apart. Its output is a pure function of its input.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any, AsyncIterator

from django.conf import settings

from chat import history
from chat.agent.providers.base import ModelEvent, ModelReply, Provider, TextDelta, TitleReply, UsageSoFar, usage
from chat.attachments import blocks

QUOTE_LIMIT = 200
TITLE_MAX_LENGTH = 60  # a longer message is cut to TITLE_HEAD_LENGTH and tagged
TITLE_HEAD_LENGTH = 48

SAMPLE_CHART = {
    "title": "Visitors per month (sample data)",
    "labels": ["January", "February", "March", "April"],
    "values": [120, 150, 90, 180],
}
SAMPLE_OPTIONS = {
    "question": "Which topic should we explore next?",
    "options": ["Python", "JavaScript", "Rust"],
}
_WORD = re.compile(r"\S+\s*")


def _text_of(content: Any) -> str:
    """The text a user typed."""
    if isinstance(content, str):
        return content
    return "\n".join(
        b["text"] for b in content if b.get("type") == "text"
    ).strip()


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return str(content)


def _artifact_input(text: str) -> dict[str, Any]:
    lowered = text.lower()
    quote = text[:QUOTE_LIMIT]
    if "diagram" in lowered or "mermaid" in lowered:
        return {
            "kind": "mermaid",
            "title": "How a message travels",
            "content": "flowchart LR\n  Browser --> Consumer --> Loop --> Model\n  Loop --> Tools\n  Loop --> Storage\n",
        }
    if "svg" in lowered:
        return {
            "kind": "svg",
            "title": "A sample picture",
            "content": (
                '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="120" viewBox="0 0 120 120">'
                '<circle cx="60" cy="60" r="50" fill="#4a90d9"/></svg>'
            ),
        }
    if "code" in lowered:
        return {
            "kind": "code",
            "title": "fibonacci.py",
            "content": (
                "def fibonacci(n: int) -> list[int]:\n"
                "    numbers = [0, 1]\n"
                "    while len(numbers) < n:\n"
                "        numbers.append(numbers[-1] + numbers[-2])\n"
                "    return numbers[:n]\n"
            ),
        }
    return {
        "kind": "markdown",
        "title": "Notes on your request",
        "content": (
            "# Notes on your request\n\n"
            f"You asked: *{quote}*\n\n"
            "## What the offline model can do\n\n"
            "- stream replies word by word\n"
            "- call every built-in tool\n"
            "- write documents like this one\n"
        ),
    }


def _tool_for(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """The tool the contract picks for ``text``, with what to say first and its input."""
    lowered = text.lower()
    calculation = re.search(r"\bcalculate\s+(.+)", text, re.IGNORECASE | re.DOTALL)
    if calculation:
        return "calculate", "Let me calculate that.", {"expression": calculation.group(1).strip()}
    keyword = re.search(r"\banaly[sz]e\b[\s:,-]*", text, re.IGNORECASE)
    if keyword:
        rest = (text[: keyword.start()] + text[keyword.end() :]).strip()
        return "analyze_text", "Let me analyze that text.", {"text": rest}
    if re.search(r"\bcharts?\b", lowered):
        chart_type = "pie" if re.search(r"\bpie\b", lowered) else "line" if re.search(r"\bline\b", lowered) else "bar"
        return "display_chart", "Here is a chart of some sample data.", {"type": chart_type, **SAMPLE_CHART}
    if re.search(r"\b(choose|options?)\b", lowered):
        return "propose_options", "Let me offer you a choice.", dict(SAMPLE_OPTIONS)
    if re.search(r"\b(write|artifact)\b", lowered):
        return "create_artifact", "I will write that for you.", _artifact_input(text)
    return None


LONG_REPLY_TOKENS = 4_000
_LONG_PARAGRAPH = (
    "The offline model writes this long reply so that a chat grows quickly: each paragraph "
    "adds about a hundred tokens to the conversation, and the context meter below the "
    "message box shows how close the next prompt comes to the window. "
)
SUMMARY_HEADER = "Summary of the earlier conversation (offline demo model):"
SUMMARY_LINE_LIMIT = 120


def long_reply(text: str) -> str:
    """About ``LONG_REPLY_TOKENS`` tokens of numbered paragraphs quoting ``text``."""
    quote = " ".join(text.split())[:60]
    paragraphs, size, i = [], 0, 0
    while size < 4 * LONG_REPLY_TOKENS:
        i += 1
        paragraphs.append(f"{i}. On “{quote}”: {_LONG_PARAGRAPH}")
        size += len(paragraphs[-1]) + 2
    return "\n\n".join(paragraphs)


def summary_of(messages: list[dict[str, Any]], max_chars: int) -> str:
    """The offline model's summary: one line per message (a tool call, a quote of the
    text), the lines of the summary the conversation begins with first; the oldest lines
    go when it would pass ``max_chars``. A pure function of its input."""
    lines: list[str] = []
    for message in messages[:-1]:  # the last one asks for the summary
        for block in message["content"]:
            if block.get("type") == "text":
                body = block["text"]
                if body.startswith(history.SUMMARY_OPEN):
                    inner = body[len(history.SUMMARY_OPEN) : -len(history.SUMMARY_CLOSE)]
                    lines.extend(line for line in inner.splitlines() if line and line != SUMMARY_HEADER)
                    continue
                said = " ".join(body.split())
                said = said if len(said) <= SUMMARY_LINE_LIMIT else said[:SUMMARY_LINE_LIMIT].rstrip() + "…"
                who = "The user wrote" if message["role"] == "user" else "The assistant wrote"
                lines.append(f"- {who}: “{said}”")
            elif block.get("type") == "tool_use":
                lines.append(f"- The assistant called {block['name']}.")
            elif block.get("type") == "tool_result":
                lines.append(f"- A tool answered: “{_result_text(block)[:SUMMARY_LINE_LIMIT]}”")
    while lines and len(SUMMARY_HEADER) + sum(len(line) + 1 for line in lines) > max_chars:
        lines.pop(0)
    return "\n".join([SUMMARY_HEADER, *lines])


def plan(text: str, tool_names: set[str]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """What to say and which tools to call in reply to ``text``; only tools offered are called."""
    stripped = text.strip()
    chosen = _tool_for(stripped)
    if chosen is not None and chosen[0] in tool_names:
        name, lead, tool_input = chosen
        return lead, [(name, tool_input)]
    if re.search(r"\blong\b", stripped, re.IGNORECASE):
        return long_reply(stripped), []
    quote = stripped if len(stripped) <= QUOTE_LIMIT else stripped[:QUOTE_LIMIT].rstrip() + "…"
    return (
        f"You said: “{quote}”. I am the offline demo model, so I can only echo your words and call "
        "the built-in tools. Try “calculate 12 * (3 + 4)”, “analyze” followed by some text, “chart”, "
        "“choose” or “write a note”. Set ANTHROPIC_API_KEY to talk to Claude instead.",
        [],
    )


def _sentence(name: str, tool_input: dict[str, Any], result: dict[str, Any]) -> str:
    text = _result_text(result)
    if result.get("is_error"):
        return f"The {name} tool reported a problem: {text}"
    if name == "calculate":
        expression, _, value = text.rpartition(" = ")
        return f"The result of {expression or tool_input.get('expression')} is {value}."
    if name == "analyze_text":
        return f"Here is what I found: {text.removeprefix('Text analysis: ')}"
    if name == "display_chart":
        return "The chart above shows the sample figures."
    if name == "propose_options":
        if text.startswith("User selected: "):
            return f"You chose {text.removeprefix('User selected: ')}. Good choice!"
        return f"Thank you for your answer: {text.removeprefix('User replied: ')}"
    if name == "create_artifact":
        return f"Your artifact “{tool_input.get('title', '')}” is ready in the artifact panel."
    return f"The {name} tool returned: {text}"


NO_READING = (
    "I am the offline demo model, so that is all I can tell about them; set ANTHROPIC_API_KEY "
    "and Claude will read them."
)


def acknowledge(files: list[dict[str, Any]]) -> str:
    """What the files sent were: "I got photo.png, a 640×480 image and report.pdf, 3 pages,
    starting: “…”." """
    described = []
    for source in files:
        line = blocks.describe(source)
        if source.get("excerpt"):
            line += f", starting: “{source['excerpt']}”"
        described.append(line)
    if len(described) <= 2:
        listed = " and ".join(described)
    else:
        listed = "; ".join(described[:-1]) + "; and " + described[-1]
    return f"I got {listed}."


def after_tools(messages: list[dict[str, Any]]) -> str:
    """One sentence per tool result of the last message, using what it says."""
    calls: dict[str, dict[str, Any]] = {}
    if len(messages) >= 2 and messages[-2]["role"] == "assistant":
        calls = {b["id"]: b for b in messages[-2]["content"] if b.get("type") == "tool_use"}
    sentences = []
    for block in messages[-1]["content"]:
        if block.get("type") == "tool_result":
            call = calls.get(block["tool_use_id"], {})
            sentences.append(_sentence(call.get("name", "unknown"), call.get("input", {}), block))
    return " ".join(sentences)


class OfflineProvider(Provider):
    name = "offline"
    display_name = "Offline demo model (no API key set)"
    model = "offline-demo"

    def __init__(self, *, word_delay: float | None = None):
        # None: the setting, read at each word (one provider serves the whole process).
        self._word_delay = word_delay

    @property
    def word_delay(self) -> float:
        return settings.OFFLINE_MODEL_WORD_DELAY if self._word_delay is None else self._word_delay

    async def stream(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        context: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> AsyncIterator[ModelEvent]:
        last = messages[-1] if messages else {"role": "user", "content": ""}
        typed = _text_of(last["content"])
        has_results = isinstance(last["content"], list) and any(b.get("type") == "tool_result" for b in last["content"])
        files = blocks.attachments_in(last["content"]) if last["role"] == "user" else []
        if has_results and not typed:
            text, calls = after_tools(messages), []
        elif files and not typed:
            text, calls = f"{acknowledge(files)} {NO_READING}", []
        else:
            text, calls = plan(typed, {tool["name"] for tool in tools})
            if files:
                text = f"{acknowledge(files)} {text}"
        input_tokens = sum(history.estimate_tokens(m["content"]) for m in messages) if messages else 0
        yield UsageSoFar(usage(input_tokens=input_tokens))
        # A long reply streams by paragraph: by word it would take minutes to show.
        pieces = re.findall(r"[^\n]+\n*", text) if len(text) > 4 * LONG_REPLY_TOKENS // 2 else _WORD.findall(text)
        for word in pieces:
            # Even at 0 this yields to the event loop, as a network stream would.
            await asyncio.sleep(self.word_delay)
            yield TextDelta(word, 0)
        # Ids unique per conversation state, yet the same for the same input.
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()[:16]
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content += [
            {"type": "tool_use", "id": f"toolu_offline_{digest}_{i}", "name": name, "input": tool_input}
            for i, (name, tool_input) in enumerate(calls)
        ]
        yield ModelReply(
            content=content,
            stop_reason="tool_use" if calls else "end_turn",
            usage=usage(
                input_tokens=input_tokens,
                output_tokens=history.estimate_tokens(content) if content else 0,
            ),
        )

    async def summarize(self, *, system: str, messages: list[dict[str, Any]], max_tokens: int) -> ModelReply:
        text = summary_of(messages, max_chars=4 * max_tokens)
        return ModelReply(
            content=[{"type": "text", "text": text}],
            stop_reason="end_turn",
            usage=usage(
                input_tokens=sum(history.estimate_tokens(m["content"]) for m in messages),
                output_tokens=history.estimate_tokens(text),
            ),
        )

    async def title(self, text: str) -> TitleReply:
        """The message as typed, on one line, punctuation and all ("Calculate 1/0"). A
        message too long for a title keeps its beginning and ends in a tag made from all of
        it, so messages that begin alike still get different titles."""
        line = " ".join(text.split())
        if not re.search(r"\w", line):
            title = "New chat"
        else:
            if len(line) > TITLE_MAX_LENGTH:
                head = line[:TITLE_HEAD_LENGTH]
                head = head.rsplit(" ", 1)[0] if " " in head else head
                line = f"{head}… ({hashlib.sha256(line.encode()).hexdigest()[:4]})"
            title = line[:1].upper() + line[1:]
        used = usage(input_tokens=history.estimate_tokens(text), output_tokens=history.estimate_tokens(title))
        return TitleReply(title, self.model, used)
