"""The topic directory lists the broker's topics on a miss, at most once per interval."""

from __future__ import annotations

from collections.abc import Iterable

from tierline.streams.topic_directory import TopicDirectory


class Broker:
    def __init__(self) -> None:
        self.topics = {"acme.replies"}
        self.now = 0.0

    async def list(self) -> Iterable[str]:
        return set(self.topics)

    def clock(self) -> float:
        return self.now


async def test_a_missing_topic_is_listed_once_per_interval_a_known_one_never() -> None:
    broker = Broker()
    directory = TopicDirectory(broker.list, min_interval_s=2.0, clock=broker.clock)
    assert await directory.exists("acme.replies")
    assert directory.listings == 1
    assert await directory.exists("acme.replies")
    for _ in range(100):
        assert not await directory.exists("acme.missing")
    assert directory.listings == 1  # a flood of misses costs one listing per interval
    broker.topics.add("acme.missing")
    broker.now = 2.5
    assert await directory.exists("acme.missing")  # created since: seen after the interval
    assert directory.listings == 2


async def test_a_fixed_directory_knows_only_its_topics() -> None:
    directory = TopicDirectory.fixed(["a.x"])
    assert await directory.exists("a.x")
    assert not await directory.exists("a.y")
