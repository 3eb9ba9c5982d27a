"""Pagination: cursors over timestamps for chats and artifacts, sequence ranges for messages.

DRF's cursor pagination quietly falls back on a bad ``limit`` and answers a bad cursor with
a 404; here both are a 400 that says what was wrong.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# The largest value a sequence column holds; a bigger number would fail inside the query.
MAX_SEQUENCE = 2**31 - 1


def parse_whole_number(name: str, raw: str | None, *, default: int, minimum: int, maximum: int) -> int:
    """A query parameter that must be a whole number in [minimum, maximum]."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: "A whole number is required."}) from None
    if not minimum <= value <= maximum:
        raise ValidationError({name: f"Must be between {minimum} and {maximum}."})
    return value


def _is_timestamp(text: str) -> bool:
    try:
        return parse_datetime(text) is not None
    except ValueError:  # well formed, but not a real date
        return False


class TimeCursorPagination(CursorPagination):
    """Opaque cursors over a timestamp ordering, with a strict ``limit``."""

    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    page_size_query_param = "limit"
    ordering = "-updated_at"

    def get_page_size(self, request: Any) -> int:
        return parse_whole_number(
            self.page_size_query_param,
            request.query_params.get(self.page_size_query_param),
            default=self.page_size,
            minimum=1,
            maximum=self.max_page_size,
        )

    def decode_cursor(self, request: Any) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:  # DRF's answer to an undecodable cursor
            raise ValidationError({"cursor": "This cursor is not valid."}) from None
        # A hand-made cursor could carry any text as its position, and a position that is
        # not a timestamp would fail inside the query.
        if cursor is not None and cursor.position is not None and not _is_timestamp(cursor.position):
            raise ValidationError({"cursor": "This cursor is not valid."})
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters


class ChatPagination(TimeCursorPagination):
    """Newest activity first (the (owner, -updated_at) index)."""

    ordering = ("-updated_at", "-id")


class ArtifactPagination(TimeCursorPagination):
    """In the order they were made, as they appear in the conversation."""

    ordering = ("created_at", "id")
