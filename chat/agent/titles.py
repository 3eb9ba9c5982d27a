"""Chat titles, written in the background after a chat's first user message.

The title never holds up the reply and never depends on it: it is made from the user's
first message alone, in a task of its own, tried twice, and a failure only leaves the
chat untitled. A title the owner set meanwhile is never overwritten.

The run layer calls ``schedule_title`` when the ``message`` event of sequence 1 goes out,
passing ``publish`` to push the ``title`` event to the chat's sockets.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Awaitable, Callable

from chat import services
from chat.agent.providers import Provider

logger = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], Awaitable[None]]
ATTEMPTS = 2
MAX_LENGTH = 80

# Strong references to running title tasks: the event loop keeps only weak ones, and a
# task nothing refers to can be garbage-collected before it finishes.
_running: set[asyncio.Task[str | None]] = set()


# Marks around the whole title that are the model's formatting, not part of the title.
_WRAPPERS = (("**", "**"), ("__", "__"), ('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("`", "`"), ("*", "*"), ("_", "_"))


def _unwrap(title: str) -> str:
    """Without quotes, backticks or emphasis around all of it, and without a final stop.
    Marks inside the title are its own ("Say "hi" to Bob", "calculate 1/0") and stay."""
    while True:
        title = title.strip().rstrip(".!").strip()
        for opening, closing in _WRAPPERS:
            inner = title[len(opening) : len(title) - len(closing)]
            if len(title) >= len(opening) + len(closing) and title.startswith(opening) and title.endswith(closing) and closing not in inner:
                title = inner
                break
        else:
            return title


def clean(raw: str) -> str:
    """The model's answer as a title: one line, no heading mark, "Title:" or wrapping quotes,
    no final stop; the punctuation inside it is kept."""
    line = next((line for line in raw.splitlines() if line.strip()), "")
    line = re.sub(r"^(title:\s*)", "", line.strip(), flags=re.IGNORECASE)
    line = re.sub(r"^#{1,6}\s+", "", line)
    title = " ".join(_unwrap(line).split())
    if len(title) > MAX_LENGTH:
        title = title[:MAX_LENGTH].rsplit(" ", 1)[0]
    return title


async def generate_title(
    session_id: Any,
    text: str,
    provider: Provider,
    publish: Publish | None = None,
    *,
    attempts: int = ATTEMPTS,
    retry_delay: float = 1.0,
) -> str | None:
    """Ask for a title, store it and publish a ``title`` event; the title, or None.

    Never raises (except CancelledError): a chat without a title is not worth failing for.
    """
    title = ""
    for attempt in range(1, attempts + 1):
        try:
            title = clean(await provider.title(text))
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then given up
            logger.warning("title for session %s failed (attempt %d): %s", session_id, attempt, exc)
        else:
            if title:
                break
            logger.warning("title for session %s was empty (attempt %d)", session_id, attempt)
        if attempt < attempts:
            await asyncio.sleep(retry_delay)
    if not title:
        return None
    try:
        if not await services.aset_title(session_id, title):
            return None  # the owner named the chat meanwhile
        if publish is not None:
            await publish({"type": "title", "title": title})
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("storing or publishing the title of session %s failed", session_id)
        return None
    return title


def schedule_title(session_id: Any, text: str, provider: Provider, publish: Publish | None = None) -> asyncio.Task[str | None]:
    """Start ``generate_title`` in the background and return its task."""
    task = asyncio.get_running_loop().create_task(generate_title(session_id, text, provider, publish))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
