"""What an uploaded file is, decided by its content; a UserError for anything we do not send.

The name only has to agree: a file whose name promises a PNG but holds something else is
refused (``wrong_type``), whatever it holds. Pillow decodes images (after the pixel count,
read from the header, is checked: a small file can decode to gigabytes) and pypdf opens
PDFs; a text file must be UTF-8 without NUL.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings
from PIL import Image, ImageOps
from pypdf import PdfReader

from chat.errors import UserError

# Anthropic's estimate for an image: (width × height) / 750 tokens, and images past about
# 1,600 tokens are scaled down by the API first.
IMAGE_TOKENS_MAX = 1600
PIXELS_PER_TOKEN = 750
# A PDF page is sent as its text and as an image of the page.
PDF_PAGE_IMAGE_TOKENS = 1600
EXCERPT_CHARS = 200
# The Messages API takes at most 5 MB an image.
IMAGE_MAX_BYTES = 5 * 1024 * 1024

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_IMAGE_EXTENSIONS = {
    "png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "gif": "GIF", "webp": "WEBP",
}
TEXT_EXTENSIONS = frozenset(
    "txt text md markdown csv tsv json jsonl log ini cfg conf toml yaml yml xml html htm css "
    "py pyi js mjs cjs ts tsx jsx java kt kts scala go rs c h cc cpp cxx hpp cs swift rb php pl "
    "pm lua r sql sh bash zsh fish ps1 bat dart hs ex exs erl clj vue svelte tex rst adoc diff patch "
    "gradle makefile mk cmake dockerfile".split()
)
ACCEPTED = "images (PNG, JPEG, GIF, WebP), PDFs and text files (txt, md, csv, json, source code)"


@dataclass
class Inspected:
    kind: str  # image, pdf, text
    media_type: str
    tokens: int
    width: int | None = None
    height: int | None = None
    pages: int | None = None
    excerpt: str = ""
    # A re-encoded image (scaled down) to store instead of the upload.
    replacement: bytes | None = field(default=None, repr=False)


def _extension(name: str) -> str:
    """``photo.png`` → ``png``; a Dockerfile or Makefile counts by its name."""
    base = os.path.basename(name).lower()
    if base in ("dockerfile", "makefile"):
        return base
    return base.rpartition(".")[2] if "." in base else ""


def sniff(head: bytes) -> str | None:
    """The format the first bytes announce: an image format's name, ``PDF``, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"%PDF-"):
        return "PDF"
    return None


def inspect(file: IO[bytes], name: str, size: int) -> Inspected:
    """Check an upload (``file`` positioned anywhere) and say what it is."""
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise too_large(settings.ATTACHMENT_MAX_BYTES)
    if size == 0:
        raise UserError("empty_file", f"{name} is empty.")
    file.seek(0)
    found = sniff(file.read(16))
    file.seek(0)
    extension = _extension(name)
    claimed = "PDF" if extension == "pdf" else _IMAGE_EXTENSIONS.get(extension)
    if claimed is not None and found != claimed and not (claimed in IMAGE_TYPES and found in IMAGE_TYPES):
        described = {"PDF": "a PDF"}.get(claimed, f"a {claimed} image")
        raise UserError("wrong_type", f"{name} is not {described}: its content is {_describe(found)}.")
    if found == "PDF":
        return _pdf(file, name)
    if found in IMAGE_TYPES:
        return _image(file, name, found)
    if extension in TEXT_EXTENSIONS:
        return _text(file, name, size)
    raise UserError("unsupported_type", f"{name} cannot be sent: attach {ACCEPTED}.")


def too_large(limit: int) -> UserError:
    return UserError("file_too_large", f"A file can be at most {_mb(limit)}.", status=413)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _describe(found: str | None) -> str:
    if found is None:
        return "something else"
    return "a PDF" if found == "PDF" else f"a {found} image"


def _image(file: IO[bytes], name: str, expected: str) -> Inspected:
    limit = settings.ATTACHMENT_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked below, from the header, before any decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
            width, height = image.size
            if width * height > limit:
                raise UserError(
                    "image_too_large",
                    f"{name} is {width}×{height} pixels; at most {limit:,} pixels are accepted.",
                )
            if image.format != expected:
                raise UserError("wrong_type", f"{name} is not a valid {expected} image.")
            image.load()
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError("image_too_large", f"{name} has too many pixels to be opened safely.") from None
    except Exception as exc:  # Pillow raises many kinds for broken files
        raise UserError("invalid_image", f"{name} is not an image that can be read ({exc.__class__.__name__}).") from None
    media_type = IMAGE_TYPES[expected]
    long_edge = settings.ATTACHMENT_IMAGE_LONG_EDGE
    replacement = None
    if max(width, height) > long_edge or _size(file) > IMAGE_MAX_BYTES:
        image, media_type, replacement = _scaled(image, expected, long_edge)
        width, height = image.size
        if len(replacement) > IMAGE_MAX_BYTES:
            raise UserError("image_too_large", f"{name} is still over {_mb(IMAGE_MAX_BYTES)} once scaled down.")
    tokens = min(IMAGE_TOKENS_MAX, math.ceil(width * height / PIXELS_PER_TOKEN))
    return Inspected("image", media_type, tokens, width=width, height=height, replacement=replacement)


def _size(file: IO[bytes]) -> int:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


def _scaled(image: Image.Image, fmt: str, long_edge: int) -> tuple[Image.Image, str, bytes]:
    """The image within ``long_edge`` (first frame of an animation), re-encoded: JPEG stays
    JPEG, WebP stays WebP, anything else becomes PNG; JPEG if that is still over 5 MB."""
    image = ImageOps.exif_transpose(image)
    image.thumbnail((long_edge, long_edge), Image.Resampling.LANCZOS)
    out_format = fmt if fmt in ("JPEG", "WEBP") else "PNG"
    data = _encode(image, out_format)
    if len(data) > IMAGE_MAX_BYTES and out_format != "JPEG":
        out_format, data = "JPEG", _encode(image, "JPEG")
    return image, IMAGE_TYPES[out_format], data


def _encode(image: Image.Image, fmt: str) -> bytes:
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif fmt == "PNG" and image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 85} if fmt in ("JPEG", "WEBP") else {"optimize": True}))
    return buffer.getvalue()


def _pdf(file: IO[bytes], name: str) -> Inspected:
    try:
        reader = PdfReader(file)
        if reader.is_encrypted:
            raise UserError("encrypted_pdf", f"{name} is encrypted (password-protected); send a copy without a password.")
        pages = len(reader.pages)
        if pages == 0:
            raise UserError("invalid_pdf", f"{name} has no pages.")
        limit = settings.ATTACHMENT_MAX_PDF_PAGES
        if pages > limit:
            raise UserError("too_many_pages", f"{name} has {pages} pages; at most {limit} are accepted.")
        text_chars, excerpt = 0, ""
        for page in reader.pages:
            text = page.extract_text() or ""
            text_chars += len(text)
            if len(excerpt) < EXCERPT_CHARS:
                excerpt = " ".join(f"{excerpt} {text}".split())
    except UserError:
        raise
    except Exception as exc:  # pypdf raises many kinds for broken files
        raise UserError("invalid_pdf", f"{name} is not a PDF that can be read ({exc.__class__.__name__}).") from None
    tokens = pages * PDF_PAGE_IMAGE_TOKENS + math.ceil(text_chars / 4)
    return Inspected("pdf", "application/pdf", tokens, pages=pages, excerpt=_cut(excerpt))


def _cut(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + "…"


def _text(file: IO[bytes], name: str, size: int) -> Inspected:
    limit = settings.ATTACHMENT_MAX_TEXT_BYTES
    if size > limit:
        raise UserError("file_too_large", f"{name} is too long: a text file can be at most {_mb(limit)}.", status=413)
    raw = file.read(limit + 1)
    file.seek(0)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError("unsupported_type", f"{name} is not UTF-8 text: attach {ACCEPTED}.") from None
    if "\x00" in text:
        raise UserError("unsupported_type", f"{name} is not text (it holds NUL bytes): attach {ACCEPTED}.")
    if not text.strip():
        raise UserError("empty_file", f"{name} is empty.")
    return Inspected(
        "text", "text/plain", max(1, math.ceil(len(text) / 4)) + 10, excerpt=_cut(" ".join(text.split()))
    )
