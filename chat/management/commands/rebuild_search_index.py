"""``manage.py rebuild_search_index``: index every message (and title) again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chat.search import index


class Command(BaseCommand):
    help = (
        "Rebuild the chat search index: install it with SEARCH_CONFIG (run it after changing "
        "that setting) and index every message again, a batch per transaction. Searches keep "
        "working meanwhile. Safe to stop and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=index.BATCH, help="Messages per transaction (default %(default)s).")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size <= 0:
            self.stderr.write("--batch-size must be positive.")
            raise SystemExit(2)
        self.stdout.write(f"Rebuilding the search index with the text search configuration {settings.SEARCH_CONFIG!r}…")
        read = index.rebuild(batch=batch_size, progress=lambda n: self.stdout.write(f"  {n:,} messages read"))
        self.stdout.write(self.style.SUCCESS(f"Done: {read:,} messages read."))
