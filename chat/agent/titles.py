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
from chat.agent.providers.base import usage
from chat.db import db_async
from chat.models import UsageRecord
from chat.usage import ledger
from chat.usage.ledger import Charge, Payer

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


def _charge(session_id: Any, payer: Payer | None, attempt: int, raw: str, provider: Provider) -> Charge | None:
    """The ledger row of one title call (``payer``: who the chat's run charges)."""
    if payer is None:
        return None
    model = getattr(raw, "model", provider.model)
    return payer.call(UsageRecord.Kind.TITLE, ledger.title_key(session_id, attempt), model, getattr(raw, "usage", None) or usage())


async def generate_title(
    session_id: Any,
    text: str,
    provider: Provider,
    publish: Publish | None = None,
    *,
    payer: Payer | None = None,
    attempts: int = ATTEMPTS,
    retry_delay: float = 1.0,
) -> str | None:
    """Ask for a title, store it and publish a ``title`` event; the title, or None. Each
    call that answered is charged to ``payer`` in the usage ledger: with the title, or on
    its own if its answer was no use.

    Never raises (except CancelledError): a chat without a title is not worth failing for.
    """
    title, charge = "", None
    for attempt in range(1, attempts + 1):
        try:
            raw = await provider.title(text)
            charge = _charge(session_id, payer, attempt, raw, provider)
            title = clean(raw)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then given up
            logger.warning("title for session %s failed (attempt %d): %s", session_id, attempt, exc)
        else:
            if title:
                break
            logger.warning("title for session %s was empty (attempt %d)", session_id, attempt)
            await _record_alone(charge)
            charge = None
        if attempt < attempts:
            await asyncio.sleep(retry_delay)
    if not title:
        return None
    try:
        if not await services.aset_title(session_id, title, charge=charge):
            return None  # the owner named the chat meanwhile
        if publish is not None:
            await publish({"type": "title", "title": title})
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("storing or publishing the title of session %s failed", session_id)
        return None
    return title


async def _record_alone(charge: Charge | None) -> None:
    if charge is None:
        return
    try:
        await db_async(ledger.record)(charge)
    except Exception:  # noqa: BLE001 - see generate_title's docstring
        logger.exception("the usage of a title call could not be recorded")


def schedule_title(
    session_id: Any, text: str, provider: Provider, publish: Publish | None = None, *, payer: Payer | None = None
) -> asyncio.Task[str | None]:
    """Start ``generate_title`` in the background and return its task."""
    task = asyncio.get_running_loop().create_task(generate_title(session_id, text, provider, publish, payer=payer))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
