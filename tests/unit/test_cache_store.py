"""The response cache's store: least recently used out first, bounded by entries and bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tierline.processors.serving.cache_store import AnswerStore
from tierline.schemas import CachedAnswer

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def answer(n: int, ttl_s: float = 3600) -> CachedAnswer:
    return CachedAnswer(
        key=f"{n:064x}",
        tenant="acme",
        model="nano",
        provider="openai",
        content=f"answer {n}",
        finish_reason="stop",
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=ttl_s),
    )


def keys(store: AnswerStore, upto: int = 10) -> list[int]:
    return [n for n in range(upto) if f"{n:064x}" in store]


def test_past_max_entries_the_least_recently_used_falls_out() -> None:
    store = AnswerStore(max_entries=3, max_bytes=10_000, clock=Clock())
    for n in range(3):
        assert store.put(answer(n), 100)
    assert store.get(answer(0).key) is not None  # 0 used: 1 is now the oldest
    store.put(answer(3), 100)
    assert keys(store) == [0, 2, 3]
    assert (len(store), store.bytes, store.evicted) == (3, 300, 1)


def test_past_max_bytes_answers_fall_out_until_the_new_one_fits() -> None:
    store = AnswerStore(max_entries=100, max_bytes=1000, clock=Clock())
    for n in range(4):
        store.put(answer(n), 250)
    store.put(answer(4), 600)
    assert keys(store) == [3, 4] and store.bytes == 850
    assert not store.put(answer(5), 1001)  # larger than the whole store: not kept
    assert keys(store) == [3, 4]


def test_the_same_key_again_replaces_the_answer_and_its_size() -> None:
    store = AnswerStore(max_entries=10, max_bytes=1000, clock=Clock())
    store.put(answer(1), 400)
    store.put(answer(1), 100)
    assert (len(store), store.bytes) == (1, 100)
    store.drop(answer(1).key)
    assert (len(store), store.bytes) == (0, 0)


def test_an_expired_answer_is_never_handed_out() -> None:
    clock = Clock()
    store = AnswerStore(max_entries=10, max_bytes=1000, clock=clock)
    store.put(answer(1, ttl_s=60), 100)
    clock.now += 59.9
    assert store.get(answer(1).key) is not None
    clock.now += 0.1
    assert store.get(answer(1).key) is None
    assert (len(store), store.bytes, store.evicted) == (0, 0, 0)  # dropped, not evicted
    assert not store.put(answer(2, ttl_s=60), 100)  # already expired when it arrives


def test_smaller_bounds_evict_at_once() -> None:
    store = AnswerStore(max_entries=10, max_bytes=10_000, clock=Clock())
    for n in range(6):
        store.put(answer(n), 100)
    store.resize(max_entries=4, max_bytes=250)
    assert keys(store) == [4, 5]
    store.resize(max_entries=0, max_bytes=250)
    assert len(store) == 0 and not store.put(answer(7), 1)
