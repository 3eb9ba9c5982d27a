"""Installing, filling and rebuilding the search index, for the migration, the
``rebuild_search_index`` command and the check after every ``migrate``."""

from __future__ import annotations

from types import ModuleType
from typing import Callable

from django.conf import settings
from django.db import connection

from chat.search import postgres, sqlite

BATCH = 5000


def backend() -> ModuleType:
    return postgres if connection.vendor == "postgresql" else sqlite


def install() -> None:
    """Tables, functions and triggers (not the PostgreSQL indexes: ``finish``)."""
    backend().install(settings.SEARCH_CONFIG)


def uninstall() -> None:
    backend().uninstall()


def backfill(*, only_missing: bool = True, batch: int = BATCH, progress: Callable[[int], None] | None = None) -> int:
    """Index the messages stored before the triggers existed (``only_missing``), or all of
    them again, ``batch`` at a time, each batch its own transaction: stopped part-way, it
    goes on where it was when run again. Returns how many messages were read."""
    after, read = None, 0
    while True:
        done = backend().index_batch(after, batch, only_missing=only_missing)
        if done is None:
            return read
        after, count = done
        read += count
        if progress:
            progress(read)


def finish() -> None:
    backend().create_indexes()


def rebuild(*, batch: int = BATCH, progress: Callable[[int], None] | None = None) -> int:
    """Install the index as ``SEARCH_CONFIG`` says and index every message again. Searches
    keep working meanwhile (on SQLite they find less until it ends)."""
    before = postgres.installed_config() if connection.vendor == "postgresql" else None
    if connection.vendor != "postgresql":
        sqlite.uninstall()  # an FTS5 table's tokenizer is fixed when it is made
    install()
    read = backfill(only_missing=connection.vendor != "postgresql", batch=batch, progress=progress)
    backend().remove_orphans()
    finish()
    if connection.vendor == "postgresql" and before != settings.SEARCH_CONFIG:
        postgres.reindex_titles()  # built with the configuration as it was
    return read


def ensure(**_: object) -> None:
    """After ``migrate``, on SQLite: a migration that rebuilds ``chat_message`` or the chats'
    table (SQLite cannot alter most columns in place) drops their triggers with the old
    table and renumbers the rows; then the index is made again and filled. (Nothing to do
    before the search migration or after it was reversed: no index table then.)"""
    if connection.vendor == "postgresql" or not sqlite.present() or sqlite.installed():
        return
    sqlite.uninstall()
    install()
    backfill()
