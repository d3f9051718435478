"""Which outboxes a consumer's answers go through: one producer per process, or per partition.

`kafka.transaction_scope` picks: "process" (`process_outbox`, the default: one
transaction carries answers of every owned partition, fenced by group
generation) or "partition" (`partition_outbox`: a producer per input partition,
fenced by transactional id; for brokers older than Kafka 2.5, and a new owner
never waits for a dead owner's transaction to time out). Both offer the surface
below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from tierline.streams.config import KafkaSettings
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import consumer_outboxes
from tierline.streams.process_outbox import consumer_process_outbox
from tierline.streams.topics import Topics


class Outbox(Protocol):
    """Where one input partition's answers go."""

    async def ready(self, timeout_s: float = 120.0) -> bool: ...

    def must_serve(self, offset: int) -> bool: ...

    def publish(self, offset: int, sends: Sequence[Outgoing]) -> asyncio.Future[bool]: ...


class OutboxSet(Protocol):
    """The outboxes of the partitions a consumer owns."""

    async def assign(self, partitions: Iterable[TopicPartition]) -> None: ...

    async def revoke(
        self, partitions: Iterable[TopicPartition], timeout_s: float = 30.0
    ) -> None: ...

    def take(self, tp: TopicPartition, offset: int) -> Outbox: ...

    async def close(self) -> None: ...


async def open_outboxes(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    group_id: str,
    kafka: KafkaSettings,
    topics: Topics,
    *,
    who: str,
    log: logging.Logger,
    linger_s: float | None = None,
) -> OutboxSet:
    """`consumer`'s outboxes, in the scope `kafka.transaction_scope` names; answers gather
    for `linger_s` (default `kafka.transaction_linger_ms`) before a transaction."""
    opener = consumer_process_outbox if kafka.transaction_scope == "process" else consumer_outboxes
    return await opener(
        consumer,
        bootstrap,
        group_id,
        kafka,
        topics,
        linger_s=kafka.transaction_linger_ms / 1000 if linger_s is None else linger_s,
        who=who,
        log=log,
    )
