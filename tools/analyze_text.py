"""analyze_text: statistics the server computes (words, sentences, readability).

A display tool whose figures the model has not seen, so the result's content states
them for the model to reason about; the same figures go to the UI as ``display_data``.
Readability is the Flesch reading ease with an English syllable heuristic: a guide for
English prose, not a measurement for other languages.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from tools.registry import Tool, ToolContext, ToolError, ToolKind

MAX_TEXT_LENGTH = 100_000
WORDS_PER_MINUTE = 200

_WORD = re.compile(r"\w+(?:['’-]\w+)*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_COMMON = frozenset(
    "the a an and or but of to in on at for with is are was were be been it its this that as by "
    "from not no i you he she we they my your our their".split()
)
# Flesch reading ease bands, highest first.
_LEVELS = (
    (90, "very easy"),
    (80, "easy"),
    (70, "fairly easy"),
    (60, "standard"),
    (50, "fairly difficult"),
    (30, "difficult"),
    (-math.inf, "very difficult"),
)


def _syllables(word: str) -> int:
    word = word.lower()
    count = len(_VOWEL_GROUP.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1  # a silent final e: "make", "there"
    return max(1, count)


def analyze(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ToolError("The text must be a string.")
    if len(text) > MAX_TEXT_LENGTH:
        raise ToolError(f"The text is longer than {MAX_TEXT_LENGTH} characters.")
    words = _WORD.findall(text)
    if not words:
        raise ToolError("There is no text to analyze.")
    # A piece without a final stop is a sentence too: "Hello there" is one.
    sentences = sum(1 for piece in _SENTENCE_BREAK.split(text.strip()) if _WORD.search(piece))
    syllables = sum(_syllables(word) for word in words)
    letters = sum(len(word) for word in words)
    ease = 206.835 - 1.015 * (len(words) / sentences) - 84.6 * (syllables / len(words))
    common = Counter(w.lower() for w in words if w.lower() not in _COMMON and len(w) > 2)
    return {
        "words": len(words),
        "sentences": sentences,
        "characters": len(text),
        "characters_no_spaces": len("".join(text.split())),
        "average_word_length": round(letters / len(words), 1),
        "average_sentence_length": round(len(words) / sentences, 1),
        "reading_ease": round(ease, 1),
        "reading_level": next(label for floor, label in _LEVELS if ease >= floor),
        "reading_time_minutes": max(1, math.ceil(len(words) / WORDS_PER_MINUTE)),
        "top_words": [word for word, _ in common.most_common(5)],
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def describe(stats: dict[str, Any]) -> str:
    return (
        f"{_count(stats['words'], 'word')} in {_count(stats['sentences'], 'sentence')} "
        f"({_count(stats['characters'], 'character')}); on average {stats['average_sentence_length']} "
        f"words per sentence and {stats['average_word_length']} letters per word. Flesch reading ease "
        f"{stats['reading_ease']} ({stats['reading_level']}); about "
        f"{_count(stats['reading_time_minutes'], 'minute')} to read."
    )


async def run(tool_input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    stats = analyze(tool_input.get("text"))
    return {"content": f"Text analysis: {describe(stats)}", "display_data": {"kind": "text_analysis", **stats}}


TOOL = Tool(
    name="analyze_text",
    description=(
        "Compute statistics of a text: word, sentence and character counts, average word and "
        "sentence length, Flesch reading ease and reading time. The user sees the figures "
        "as a card; you receive them as the result."
    ),
    input_schema={
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The text to analyze."}},
        "required": ["text"],
    },
    run=run,
    kind=ToolKind.DISPLAY,
)
