"""Chat ids as they enter, and the address of a chat's events.

Parse at the edge, once: a chat id from a URL or a frame is accepted only in its one
canonical spelling (lower-case, dashed), so one chat can never have two event logs or two
groups keyed by two spellings of its id. Inside, ids travel as ``uuid.UUID``.

A chat's events (its log and its group of sockets) are addressed by ``ChatRef``: the chat
*and its owner*. A socket names the chat it wants and who it is; a run publishes under the
chat's owner. So a socket opened on an id before anyone owns it, by a user who then does
not become its owner, is subscribed to an address nobody ever publishes to: no event of a
chat can reach anyone but its owner, whatever the order in which the two arrived.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from chat.errors import NotFound


def parse_chat_id(raw: object) -> uuid.UUID:
    """The chat id in ``raw``, which must be a canonical UUID string; NotFound otherwise."""
    if isinstance(raw, uuid.UUID):
        return raw
    if isinstance(raw, str) and len(raw) == 36:
        try:
            parsed = uuid.UUID(raw)
        except ValueError:
            pass
        else:
            if str(parsed) == raw:
                return parsed
    raise NotFound("No such chat.")


@dataclass(frozen=True)
class ChatRef:
    """A chat as its owner addresses it: the key of its event log and of its sockets."""

    owner_id: int
    session_id: uuid.UUID

    def __str__(self) -> str:
        # Letters, digits, '.' and '-' only: valid in a channel-layer group name.
        return f"{self.owner_id}.{self.session_id}"
