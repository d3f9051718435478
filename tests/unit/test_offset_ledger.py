"""The commit point a transaction carries: answered offsets out of order, and back again."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from tierline.streams.offset_ledger import MAX_HOLES, MAX_METADATA_CHARS, OffsetLedger


def test_answers_in_order_commit_past_them_with_no_holes() -> None:
    ledger = OffsetLedger(-1)
    for offset in range(3):
        ledger.take(offset)
    point = ledger.commit([0, 1, 2])
    assert point.offset == 3
    again = OffsetLedger.from_commit(point.offset, point.metadata)
    assert [again.answered(o) for o in range(5)] == [True, True, True, False, False]


def test_an_answer_past_a_slow_one_is_remembered_above_the_committed_offset() -> None:
    ledger = OffsetLedger(10)
    for offset in range(10, 16):
        ledger.take(offset)
    point = ledger.commit([10, 12, 13, 15])  # 11 and 14 are still being served
    assert point.offset == 11
    next_owner = OffsetLedger.from_commit(point.offset, point.metadata)
    answered = {o for o in range(8, 20) if next_owner.answered(o)}
    assert answered == {8, 9, 10, 12, 13, 15}


def test_a_next_owner_serves_the_holes_and_then_commits_past_them() -> None:
    first = OffsetLedger(0)
    for offset in range(6):
        first.take(offset)
    point = first.commit([1, 2, 4])
    second = OffsetLedger.from_commit(point.offset, point.metadata)
    redelivered = [o for o in range(6) if not second.answered(o)]
    assert redelivered == [0, 3, 5]
    for offset in redelivered:
        second.take(offset)
    assert second.commit([0, 3]).offset == 5
    assert second.commit([5]).offset == 6


def test_metadata_that_is_not_a_ledger_means_only_the_offset_counts() -> None:
    for foreign in ("", "hello", "t1:zz", "t1:!:1,2", "t9:5:"):
        ledger = OffsetLedger.from_commit(7, foreign)
        assert ledger.answered(6) and not ledger.answered(7) and not ledger.answered(8)


def test_no_commit_yet_reads_everything() -> None:
    assert not OffsetLedger.from_commit(-1, "").answered(0)


def test_a_commit_holds_back_answers_that_would_need_too_many_holes() -> None:
    ledger = OffsetLedger(0)
    stuck = list(range(0, 2 * (MAX_HOLES + 10), 2))  # every even offset is slow
    for offset in range(2 * (MAX_HOLES + 10) + 1):
        ledger.take(offset)
    odd = list(range(1, 2 * (MAX_HOLES + 10), 2))
    taken, held = ledger.admissible(odd)
    assert held and taken == odd[: len(taken)] and taken + held == odd
    point = ledger.commit(taken)
    assert len(point.metadata) <= MAX_METADATA_CHARS
    back = OffsetLedger.from_commit(point.offset, point.metadata)
    assert {o for o in range(len(stuck) * 2) if back.answered(o)} == set(taken)


@given(st.integers(0, 10_000), st.lists(st.booleans(), min_size=1, max_size=400), st.randoms())
def test_the_metadata_round_trips_whatever_finished(
    base: int, finished: list[bool], rng: random.Random
) -> None:
    ledger = OffsetLedger(base)
    offsets = [base + i for i in range(len(finished))]
    for offset in offsets:
        ledger.take(offset)
    done = [o for o, f in zip(offsets, finished, strict=True) if f]
    rng.shuffle(done)
    taken, held = ledger.admissible(done)
    assert not held  # 400 offsets can never need more holes than fit
    point = ledger.commit(taken)
    back = OffsetLedger.from_commit(point.offset, point.metadata)
    assert {o for o in offsets if back.answered(o)} == set(done)
    assert all(back.answered(o) for o in range(base))
    assert len(point.metadata) <= MAX_METADATA_CHARS


def test_a_message_read_again_after_its_answer_needs_no_serving() -> None:
    ledger = OffsetLedger(5, 9, [6])  # 5, 7 and 8 were answered past the hole at 6
    assert [ledger.take(o) for o in range(4, 10)] == [False, False, True, False, False, True]
    ledger.commit([5, 6])
    assert not ledger.take(6)  # redelivered after its answer was published
