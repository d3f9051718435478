"""The commit gap: offsets commit only up to the oldest unfinished message."""

from __future__ import annotations

import asyncio

from tierline.streams.commit_gap import CommitGap


def test_commit_stops_at_the_oldest_unfinished_offset() -> None:
    gap: CommitGap[str] = CommitGap()
    for offset in range(10, 15):
        gap.start("p0", offset)
    for offset in (11, 13, 14):
        gap.finish("p0", offset)
    assert gap.safe_offset("p0") == 10
    gap.finish("p0", 10)
    assert gap.safe_offset("p0") == 12
    gap.finish("p0", 12)
    assert gap.safe_offset("p0") == 15  # everything done: one past the newest


def test_partitions_are_independent() -> None:
    gap: CommitGap[str] = CommitGap()
    gap.start("a", 0)
    gap.start("b", 7)
    gap.finish("b", 7)
    assert gap.to_commit(["a", "b"]) == {"a": 0, "b": 8}
    assert gap.in_flight() == 1
    assert gap.in_flight("a") == 1


def test_to_commit_reports_only_moves() -> None:
    gap: CommitGap[str] = CommitGap()
    gap.start("a", 0)
    gap.finish("a", 0)
    first = gap.to_commit(["a"])
    assert first == {"a": 1}
    gap.committed(first)
    assert gap.to_commit(["a"]) == {}
    gap.start("a", 1)
    gap.finish("a", 1)
    assert gap.to_commit(["a"]) == {"a": 2}


def test_forgotten_partitions_are_not_committed() -> None:
    gap: CommitGap[str] = CommitGap()
    gap.start("a", 3)
    gap.forget(["a"])
    assert gap.to_commit(["a"]) == {}
    assert gap.in_flight() == 0


async def test_drained_returns_once_the_last_unfinished_offset_finishes() -> None:
    gap: CommitGap[str] = CommitGap()
    for offset in (0, 1):
        gap.start("a", offset)
    gap.start("b", 0)
    waiting = asyncio.create_task(gap.drained(["a"]))
    await asyncio.sleep(0)
    gap.finish("a", 1)
    gap.finish("b", 0)  # another partition draining does not end the wait
    await asyncio.sleep(0)
    assert not waiting.done()
    gap.finish("a", 0)
    await asyncio.wait_for(waiting, timeout=1)


async def test_drained_of_idle_partitions_returns_at_once() -> None:
    gap: CommitGap[str] = CommitGap()
    gap.start("a", 0)
    gap.finish("a", 0)
    await asyncio.wait_for(gap.drained(["a", "never-seen"]), timeout=1)
