"""The content blocks a message stores for its files, and what a provider sends instead.

A stored block is an Anthropic image or document block whose ``source`` names the file
(``{"type": "attachment", ...}``) and says what it is (name, size, pixels, pages, the
start of its text, estimated tokens), so that the history needs no other table to be
shown, estimated or acknowledged. ``chat.history`` keeps the whole ``source`` when it
cleans a history; the provider replaces it with the file's bytes (``for_api``).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from chat.models import Attachment, attachment_storage

logger = logging.getLogger(__name__)

SOURCE = "attachment"


def stored_block(attachment: Attachment) -> dict[str, Any]:
    source: dict[str, Any] = {
        "type": SOURCE,
        "attachment_id": str(attachment.pk),
        "file": attachment.file.name,
        "kind": attachment.kind,
        "media_type": attachment.media_type,
        "name": attachment.name,
        "size": attachment.size,
        "tokens": attachment.tokens,
    }
    if attachment.kind == Attachment.Kind.IMAGE:
        return {"type": "image", "source": {**source, "width": attachment.width, "height": attachment.height}}
    if attachment.kind == Attachment.Kind.PDF:
        source.update(pages=attachment.pages, excerpt=attachment.excerpt)
    else:
        source.update(excerpt=attachment.excerpt)
    return {"type": "document", "source": source, "title": attachment.name}


def source_of(block: dict[str, Any]) -> dict[str, Any] | None:
    """The attachment a block stands for, or None for any other block."""
    source = block.get("source") if isinstance(block, dict) else None
    if isinstance(source, dict) and source.get("type") == SOURCE:
        return source
    return None


def attachments_in(content: Any) -> list[dict[str, Any]]:
    """The attachment sources of a message's content, in order."""
    if not isinstance(content, list):
        return []
    return [s for s in (source_of(b) for b in content) if s is not None]


def _read(name: str) -> bytes:
    with attachment_storage().open(name, "rb") as file:
        return file.read()


def api_block(block: dict[str, Any]) -> dict[str, Any]:
    """An attachment block as the Messages API takes it: base64 images and PDFs, a text
    file as a plain-text document. Reads the file (call it off the event loop)."""
    source = source_of(block)
    if source is None:
        return block
    try:
        data = _read(source["file"])
    except (OSError, ValueError) as exc:  # lost from the storage: say so rather than fail every call
        logger.warning("attachment %s unreadable: %s", source.get("attachment_id"), exc)
        return {"type": "text", "text": f"[The attached file {source.get('name')} is no longer available.]"}
    if source["kind"] == "text":
        return {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": data.decode("utf-8-sig")},
            "title": source["name"],
        }
    encoded = {"type": "base64", "media_type": source["media_type"], "data": base64.b64encode(data).decode("ascii")}
    if block["type"] == "image":
        return {"type": "image", "source": encoded}
    return {"type": "document", "source": encoded, "title": source["name"]}


def for_api(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """API messages with every attachment block replaced by the file it names."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list) and any(source_of(b) for b in content):
            message = {**message, "content": [api_block(b) for b in content]}
        out.append(message)
    return out


def describe(source: dict[str, Any]) -> str:
    """One line about a file: "photo.png, a 640×480 image", "report.pdf, 3 pages"."""
    name = source.get("name", "a file")
    if source.get("kind") == "image":
        return f"{name}, a {source.get('width')}×{source.get('height')} image"
    if source.get("kind") == "pdf":
        pages = source.get("pages") or 0
        return f"{name}, {pages} page{'s' if pages != 1 else ''}"
    return f"{name}, a text file of {source.get('size', 0):,} bytes"
