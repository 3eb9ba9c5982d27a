"""What text a user may send: one rule for messages and answers (websocket and API) and titles.

Text is refused, with nothing stored, when it holds characters that cannot be stored at
all (NUL: PostgreSQL refuses it in text and JSON; a lone surrogate: not encodable as
UTF-8), and a message counts as empty when nothing in it would be visible: blanks,
zero-width and other format characters, and the few letters that render as blank.
"""

from __future__ import annotations

import unicodedata

from chat.errors import UserError

# Letters that render as nothing (Hangul fillers, the blank Braille pattern), used to
# dodge "empty" checks.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def unstorable(text: str) -> bool:
    """True if ``text`` holds a character no database column can take."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


def invisible(text: str) -> bool:
    """True if nothing in ``text`` would show on screen."""
    return all(ch.isspace() or ch in _BLANK_LETTERS or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def check_message(text: str, *, max_chars: int, what: str = "message") -> str:
    """``text`` if a user may send it as a message (or answer); else UserError."""
    if unstorable(text):
        raise UserError("invalid_text", f"The {what} contains a character that cannot be stored (NUL or a lone surrogate).")
    if invisible(text):
        raise UserError("empty_message", f"The {what} is empty.")
    if len(text) > max_chars:
        raise UserError("text_too_long", f"A {what} can be at most {max_chars} characters.")
    return text
