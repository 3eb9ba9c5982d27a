"""A path through a chat's tree, as the chain of branch segments it is made of.

See ``chat.models.Branch``. A path is a list of ``Segment``: branch 0 from message 1 up to
the first fork, then each forked branch from the message after its fork up to the next
fork, the last one up to the path's leaf. Pure functions: the database code turns the
filters into index ranges, one per segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from django.db.models import Q


@dataclass(frozen=True)
class Segment:
    branch: int
    first: int
    # The segment's last sequence on this path, and the running token sum there; None for
    # the path's last segment, which runs to its leaf.
    last: int | None = None
    last_cumulative: int | None = None

    def holds(self, sequence: int) -> bool:
        return self.first <= sequence and (self.last is None or sequence <= self.last)


ROOT: tuple[Segment, ...] = (Segment(0, 1),)


def from_json(data: Sequence[Sequence[Any]]) -> tuple[Segment, ...]:
    return tuple(Segment(*item) for item in data)


def to_json(segments: Sequence[Segment]) -> list[list[Any]]:
    return [[s.branch, s.first, s.last, s.last_cumulative] for s in segments]


def holder(segments: Sequence[Segment], sequence: int) -> int:
    """The branch that holds message ``sequence`` of the path."""
    for segment in segments:
        if segment.holds(sequence):
            return segment.branch
    raise ValueError(f"the path has no message {sequence}")


def forked(segments: Sequence[Segment], after: int, after_cumulative: int, number: int) -> tuple[Segment, ...]:
    """The path of branch ``number``, which continues ``segments`` after message ``after``
    (whose running token sum is ``after_cumulative``); 0 forks before the first message."""
    out = []
    for segment in segments:
        if segment.first > after:
            break
        if segment.last is None or segment.last >= after:
            out.append(Segment(segment.branch, segment.first, after, after_cumulative))
            break
        out.append(segment)
    out.append(Segment(number, after + 1))
    return tuple(out)


def within_budget(segments: Sequence[Segment], threshold: int) -> Q:
    """The path's messages whose running token sum is above ``threshold``: along a path the
    sums rise, so per segment that is one range of (branch, cumulative_tokens)."""
    ranges = [
        Q(branch=s.branch, cumulative_tokens__gt=threshold)
        & (Q() if s.last_cumulative is None else Q(cumulative_tokens__lte=s.last_cumulative))
        for s in segments
        if s.last_cumulative is None or s.last_cumulative > threshold
    ]
    return _any(ranges)


def after_sequence(segments: Sequence[Segment], after: int, upto: int | None = None, *, field: str = "sequence") -> Q:
    """The path's messages with a sequence above ``after`` (and at most ``upto``): one range
    of (branch, sequence) per segment. ``field``: the column holding the sequence (a
    summary's ``last_sequence``)."""
    ranges = []
    for s in segments:
        low, high = max(after + 1, s.first), s.last
        if upto is not None:
            high = upto if high is None else min(high, upto)
        if high is not None and low > high:
            continue
        ranges.append(Q(branch=s.branch, **{f"{field}__gte": low}) & (Q() if high is None else Q(**{f"{field}__lte": high})))
    return _any(ranges)


def _any(ranges: list[Q]) -> Q:
    if not ranges:
        return Q(pk__in=[])
    combined = ranges[0]
    for more in ranges[1:]:
        combined |= more
    return combined
