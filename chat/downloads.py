"""What a downloaded file is called and served as: artifacts and chat exports.

Every download is an attachment. Artifacts are written by a model, so an SVG or HTML file
can hold script; served from our origin it would run with the user's session. The headers
in ``DOWNLOAD_HEADERS`` stop that even if a browser renders the file anyway: no sniffing,
and a sandboxing CSP that allows no script and no requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils import timezone

from chat.models import Artifact, ChatSession

DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
}
FILE_NAME_MAX_LENGTH = 100
TEXT = "text/plain; charset=utf-8"

# kind → (extension, content type)
_KINDS = {
    "markdown": ("md", "text/markdown; charset=utf-8"),
    "mermaid": ("mmd", TEXT),
    "svg": ("svg", "image/svg+xml"),
    "html": ("html", "text/html; charset=utf-8"),
    "text": ("txt", TEXT),
}
# Source code is served as plain text whatever the language: only the extension differs.
_LANGUAGE_EXTENSIONS = {
    "bash": "sh",
    "c": "c",
    "c++": "cpp",
    "cpp": "cpp",
    "csharp": "cs",
    "c#": "cs",
    "css": "css",
    "dart": "dart",
    "go": "go",
    "haskell": "hs",
    "html": "html",
    "java": "java",
    "javascript": "js",
    "js": "js",
    "json": "json",
    "jsx": "jsx",
    "kotlin": "kt",
    "lua": "lua",
    "perl": "pl",
    "php": "php",
    "python": "py",
    "py": "py",
    "r": "r",
    "ruby": "rb",
    "rust": "rs",
    "scala": "scala",
    "shell": "sh",
    "sh": "sh",
    "sql": "sql",
    "swift": "swift",
    "toml": "toml",
    "tsx": "tsx",
    "typescript": "ts",
    "ts": "ts",
    "xml": "xml",
    "yaml": "yaml",
    "yml": "yaml",
}
_KNOWN_EXTENSIONS = frozenset(_LANGUAGE_EXTENSIONS.values())


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str


def file_name(title: str, extension: str, *, fallback: str) -> str:
    """A safe file name from a title: letters, digits, ``-``, ``_`` and ``.``, one extension."""
    stem = re.sub(r"[^\w.\- ]+", "", title)
    stem = re.sub(r"\s+", "-", stem.strip()).strip(".-")[:FILE_NAME_MAX_LENGTH] or fallback
    suffix = f".{extension}"
    if stem.lower().endswith(suffix):
        stem = stem[: -len(suffix)] or fallback
    return stem + suffix


def _code_extension(artifact: Artifact) -> str:
    """The language's extension: from a kind like ``code:python``, else from a title that
    already names its file (``fib.py``), else ``txt``."""
    _, _, language = artifact.kind.partition(":")
    if language.strip().lower() in _LANGUAGE_EXTENSIONS:
        return _LANGUAGE_EXTENSIONS[language.strip().lower()]
    _, dot, extension = artifact.title.rpartition(".")
    if dot and extension.lower() in _KNOWN_EXTENSIONS:
        return extension.lower()
    return "txt"


def artifact_download(artifact: Artifact) -> Download:
    kind = artifact.kind.lower()
    if kind == "code" or kind.startswith("code:"):
        extension, content_type = _code_extension(artifact), TEXT
    else:
        extension, content_type = _KINDS.get(kind, ("txt", TEXT))
    return Download(file_name(artifact.title, extension, fallback="artifact"), content_type)


_EXPORTS = {"json": ("json", "application/json"), "markdown": ("md", "text/markdown; charset=utf-8")}


def export_download(session: ChatSession, export_format: str) -> Download:
    """A chat export (``json`` or ``markdown``), named from its title and today's date."""
    extension, content_type = _EXPORTS[export_format]
    stem = f"{session.title or 'chat'} {timezone.now():%Y-%m-%d}"
    return Download(file_name(stem, extension, fallback="chat"), content_type)
