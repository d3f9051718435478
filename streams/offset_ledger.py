"""Which offsets of one input partition are answered, in a form a transaction can commit.

A tier worker finishes messages out of order, so "answered" is not a prefix of
the partition: it is everything below the committed offset, plus a scatter of
offsets above it. On the transactional path that scatter rides in the commit
itself, as the metadata string Kafka keeps with each committed offset, written in
the same transaction as the answers. After a crash or a rebalance, the next owner
reads the committed offset and its metadata and skips exactly the messages whose
answers were committed: no separate done record, nothing that can disagree with
the answers, because both land or neither does.

The metadata reads `t1:<end>:<holes>`: every offset from the committed one up to
`end` (exclusive) is answered except the holes, written as base-36 steps, each from
the one before (the first from the committed offset). Offsets that are not data
records (transaction markers) fall inside the answered range harmlessly: they are
never delivered.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "t1"
#: the broker keeps at most `offset.metadata.max.bytes` (default 4096) per commit
MAX_METADATA_CHARS = 4000
#: holes a commit may carry: each costs at most 7 characters ("," + 6 base-36 digits)
MAX_HOLES = (MAX_METADATA_CHARS - 40) // 7

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, digit = divmod(n, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


@dataclass(frozen=True, slots=True)
class CommitPoint:
    """What a transaction commits for its input partition: offset and metadata."""

    offset: int
    metadata: str


class OffsetLedger:
    """One partition's answered offsets: all below `base`, and those in [base, end) not unfinished.

    `unfinished` holds the offsets taken and not yet answered, and the holes a
    previous owner left (they are delivered again and taken again).
    """

    def __init__(self, committed: int, end: int | None = None, holes: Iterable[int] = ()) -> None:
        self.base = max(committed, 0)
        self.end = max(end if end is not None else self.base, self.base)
        self.unfinished: set[int] = {h for h in holes if self.base <= h < self.end}

    @classmethod
    def from_commit(cls, offset: int, metadata: str) -> OffsetLedger:
        """The ledger a commit describes; metadata that is not ours means "nothing above"."""
        parts = metadata.split(":") if metadata else []
        if len(parts) != 3 or parts[0] != PREFIX:
            return cls(offset)
        try:
            end = int(parts[1], 36)
            holes, at = [], offset
            for step in filter(None, parts[2].split(",")):
                at += int(step, 36)
                holes.append(at)
        except ValueError:
            return cls(offset)
        return cls(offset, end, holes)

    def answered(self, offset: int) -> bool:
        """Whether the message at `offset` was answered (by this owner or a previous one)."""
        return offset < self.base or (offset < self.end and offset not in self.unfinished)

    def take(self, offset: int) -> bool:
        """The message at `offset` was read: True if it needs serving (not answered yet)."""
        if self.answered(offset):
            return False
        self.unfinished.add(offset)
        return True

    def admissible(self, offsets: Iterable[int]) -> tuple[list[int], list[int]]:
        """Split answered `offsets` into those one commit can record, and those to hold back.

        Offsets below `end` only fill holes, so they always fit. One above `end`
        turns every unfinished offset below it into a hole; past MAX_HOLES the rest
        wait for the next transaction, by when the oldest holes have usually filled.
        """
        ordered = sorted(offsets)
        taken = [o for o in ordered if o < self.end]
        above = [o for o in ordered if o >= self.end]
        if not above:
            return taken, []
        finishing = set(ordered)
        open_ = sorted(o for o in self.unfinished if o not in finishing)
        held: list[int] = []
        for i, offset in enumerate(above):
            if bisect.bisect_left(open_, offset) > MAX_HOLES:
                held = above[i:]
                break
            taken.append(offset)
        return taken, held

    def commit(self, answered: Iterable[int]) -> CommitPoint:
        """Record `answered` and say what to commit: the first unanswered offset and the holes.

        Call it for the offsets a transaction carries, before committing it. A
        transaction that aborts is retried with the same offsets, which gives the
        same point; an owner that is fenced drops its ledger with the partition.
        """
        for offset in answered:
            self.unfinished.discard(offset)
            self.end = max(self.end, offset + 1)
        below_end = sorted(o for o in self.unfinished if o < self.end)
        self.base = below_end[0] if below_end else self.end
        steps, at = [], self.base
        for hole in below_end:
            steps.append(_base36(hole - at))
            at = hole
        return CommitPoint(self.base, f"{PREFIX}:{_base36(self.end)}:{','.join(steps)}")
