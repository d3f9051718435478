"""Which offsets may be committed while requests finish out of order.

Picture each partition as a tape of offsets. A worker takes messages off the
tape in order but finishes them in any order, since one provider call takes
80 ms and the next 8 s. The committed offset may only move up to the first
hole: the oldest offset still unfinished. Everything past the hole that is
already finished is read again after a crash, and the worker's done log makes
that second reading harmless.

Before a rebalance hands a partition to another worker, this worker waits for
the partition's tape to have no hole left (`drained`), then commits its end, so
the next owner starts past everything already answered.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class CommitGap(Generic[P]):
    """Per partition: the offsets started and not finished, and the last offset handed out."""

    def __init__(self) -> None:
        self._pending: dict[P, set[int]] = {}
        self._heaps: dict[P, list[int]] = {}
        self._next: dict[P, int] = {}
        self._committed: dict[P, int] = {}
        #: per partition, the oldest offset given up unfinished: no commit passes it
        self._abandoned: dict[P, int] = {}
        #: set whenever some partition's last unfinished offset finishes
        self._a_partition_drained = asyncio.Event()

    def start(self, partition: P, offset: int) -> None:
        self._pending.setdefault(partition, set()).add(offset)
        heapq.heappush(self._heaps.setdefault(partition, []), offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finish(self, partition: P, offset: int) -> None:
        pending = self._pending.get(partition)
        if pending is not None:
            pending.discard(offset)
            if not pending:
                self._a_partition_drained.set()

    def abandon(self, partition: P, offset: int) -> None:
        """`offset` will not finish here (its partition is being handed over): it no
        longer counts as in flight, and no commit of this worker's passes it."""
        floor = self._abandoned.get(partition)
        self._abandoned[partition] = offset if floor is None else min(floor, offset)
        self.finish(partition, offset)

    async def drained(self, partitions: Iterable[P]) -> None:
        """Return once none of `partitions` has an unfinished offset (bound it with a timeout)."""
        wanted = list(partitions)
        while any(self.in_flight(p) for p in wanted):
            # cleared and awaited with no await in between: a drain can't slip past unseen
            self._a_partition_drained.clear()
            await self._a_partition_drained.wait()

    def in_flight(self, partition: P | None = None) -> int:
        if partition is not None:
            return len(self._pending.get(partition, ()))
        return sum(len(p) for p in self._pending.values())

    def safe_offset(self, partition: P) -> int | None:
        """The offset to commit: the oldest unfinished one, or one past the newest seen."""
        pending = self._pending.get(partition)
        heap = self._heaps.get(partition)
        if pending is None or heap is None:
            return None
        while heap and heap[0] not in pending:
            heapq.heappop(heap)
        safe = heap[0] if heap else self._next[partition]
        floor = self._abandoned.get(partition)
        return safe if floor is None else min(safe, floor)

    def to_commit(self, partitions: Iterable[P]) -> dict[P, int]:
        """Safe offsets that moved since they were last handed out, for `partitions`."""
        out: dict[P, int] = {}
        for partition in partitions:
            offset = self.safe_offset(partition)
            if offset is not None and offset != self._committed.get(partition):
                out[partition] = offset
        return out

    def committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[P]) -> None:
        """Drop partitions this worker no longer owns."""
        for partition in partitions:
            for table in (
                self._pending,
                self._heaps,
                self._next,
                self._committed,
                self._abandoned,
            ):
                table.pop(partition, None)  # type: ignore[attr-defined]
