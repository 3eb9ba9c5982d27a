"""What a user typed into the search, checked once where it enters, and its SQLite form.

The syntax is PostgreSQL's ``websearch_to_tsquery``: words are all required, ``"a phrase"``
must appear as written, ``-word`` (or ``-"a phrase"``) must not appear, and ``or`` between
two words accepts either. The last word, unless quoted or excluded, also matches as the
start of a word (``kiw`` finds "kiwis"): what a user types is searched as they type it. No
text is a syntax error: an unbalanced quote runs to the end, a stray ``-`` or ``or`` is
ignored. The parsed text is written out here for each database, every word quoted, so
nothing typed is read as syntax: an FTS5 expression for SQLite, a ``to_tsquery``
expression for PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chat import text as user_text
from chat.errors import UserError

MAX_LENGTH = 200

# A word is what FTS5's unicode61 tokenizer keeps: runs of letters and digits.
_HAS_WORD = re.compile(r"[^\W_]")
_TOKENS = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')


@dataclass(frozen=True)
class Term:
    text: str  # one word, or several as a phrase
    excluded: bool = False
    # Also matches as the start of a word: the last word typed, if not quoted.
    prefix: bool = False


@dataclass(frozen=True)
class SearchQuery:
    """Checked search text; ``groups`` are ANDed, the terms of a group ORed."""

    text: str
    groups: tuple[tuple[Term, ...], ...]

    @property
    def finds_anything(self) -> bool:
        """False for text with no word to look for (only exclusions, or only punctuation):
        such a search finds nothing, rather than every message without the excluded words."""
        return any(not term.excluded for group in self.groups for term in group)


def parse(raw: object) -> SearchQuery:
    """The search text ``raw`` (a query parameter), or UserError saying what is wrong with it."""
    if not isinstance(raw, str) or not raw.strip():
        raise UserError("invalid_query", "Type something to search for (q).")
    if user_text.unstorable(raw):
        raise UserError("invalid_query", "The search contains a character that cannot be searched for (NUL or a lone surrogate).")
    text = " ".join(raw.split())
    if len(text) > MAX_LENGTH:
        raise UserError("invalid_query", f"A search can be at most {MAX_LENGTH} characters.")
    return SearchQuery(text, _groups(text))


def _groups(text: str) -> tuple[tuple[Term, ...], ...]:
    groups: list[list[Term]] = []
    joining = False  # the previous token was "or"
    tokens = list(_TOKENS.finditer(text))
    for match in tokens:
        phrase_minus, phrase, word_minus, word = match.groups()
        if word is not None and word.lower() == "or":
            joining = bool(groups)
            continue
        body = phrase if phrase is not None else word
        if not _HAS_WORD.search(body):
            continue
        excluded = bool(phrase_minus or word_minus)
        last_word = match is tokens[-1] and word is not None and not excluded
        term = Term(" ".join(body.split()), excluded=excluded, prefix=last_word)
        if joining and not term.excluded and not any(t.excluded for t in groups[-1]):
            groups[-1].append(term)
        else:
            groups.append([term])
        joining = False
    return tuple(tuple(group) for group in groups)


def fts5(query: SearchQuery) -> str:
    """The FTS5 expression of ``query`` (which must find anything): every word quoted."""

    def quoted(term: Term) -> str:
        return '"' + term.text.replace('"', '""') + '"' + ("*" if term.prefix else "")

    wanted = [
        "(" + " OR ".join(quoted(t) for t in group) + ")"
        for group in query.groups
        if not group[0].excluded
    ]
    unwanted = [quoted(group[0]) for group in query.groups if group[0].excluded]
    expression = " AND ".join(wanted)
    for term in unwanted:
        expression = f"({expression}) NOT {term}"
    return expression


def tsquery(query: SearchQuery) -> str:
    """The ``to_tsquery`` expression of ``query``: each word single-quoted (PostgreSQL's
    configuration still reads it: lower case, stems, stop words), a phrase's words in
    order (``<->``), the last word also as a prefix (``:*``)."""

    def quoted(word: str) -> str:
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

    def term(t: Term) -> str:
        words = t.text.split()
        phrase = " <-> ".join(quoted(w) for w in words)
        if t.prefix:
            phrase += ":*"
        return f"({phrase})" if len(words) > 1 else phrase

    wanted = ["(" + " | ".join(term(t) for t in group) + ")" for group in query.groups if not group[0].excluded]
    unwanted = [f"!{term(group[0])}" for group in query.groups if group[0].excluded]
    return " & ".join(wanted + unwanted)
