"""Sharing the health board between replicas through the compacted `tierline.health`.

Each process that has a board runs one feed. It reads the whole topic from the
beginning (no consumer group: every replica needs every record; compaction keeps
one record per `provider/model`), so a process that starts learns at once which
circuits are open and starts warm, then merges what the others publish as they
publish it. A worker's feed also publishes: a model's snapshot as soon as its
circuit changes or a 429 cools it (checked every `_TICK_S`), and every model's
snapshot each `publish_interval_s`, so latency figures stay fresh and stop being
trusted when a replica goes quiet.

A record that does not parse is logged and skipped: a stranger writing garbage
to the topic cannot stop a worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from tierline.processors.health.board import HealthBoard
from tierline.schemas import HealthSnapshot, encode
from tierline.streams.tail import caught_up, tail_consumer
from tierline.streams.topics import Topics

log = logging.getLogger("tierline.health")

_TICK_S = 0.2
_TICK_S_MS = int(_TICK_S * 1000)


def replica_name() -> str:
    """This process among the replicas: host, pid, and a nonce (pids are reused)."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


class HealthFeed:
    def __init__(
        self,
        board: HealthBoard,
        bootstrap: str,
        topics: Topics,
        *,
        producer: AIOKafkaProducer | None = None,
        publish_interval_s: float = 2.0,
    ) -> None:
        self.board = board
        self.bootstrap = bootstrap
        self.topic = topics.health
        self.producer = producer
        self.publish_interval_s = publish_interval_s
        self.merged = 0
        self.malformed = 0
        self.published = 0
        #: calls in each model's window when it was last published
        self._calls: dict[str, int] = {}
        #: set once the topic has been read up to where it ended at start
        self.warm = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        try:  # the topic is created at start; the broker may take a moment to show it
            consumer = await tail_consumer(
                self.bootstrap,
                self.topic,
                from_start=True,
                wait_s=20,
                fetch_max_wait_ms=_TICK_S_MS,  # a long-lived reader: no busy fetching
            )
        except RuntimeError:
            log.warning("health: topic %s not found; not sharing health", self.topic)
            self.warm.set()
            return
        try:
            partitions = list(consumer.assignment())
            ends = await consumer.end_offsets(partitions)
            next_full = time.monotonic() + self.publish_interval_s
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=_TICK_S_MS, max_records=500)
                for records in batch.values():
                    for record in records:
                        self._merge(record.value)
                if not self.warm.is_set() and await caught_up(consumer, ends):
                    self.warm.set()
                if self.producer is not None:
                    full = time.monotonic() >= next_full
                    if full:
                        next_full = time.monotonic() + self.publish_interval_s
                    await self._publish(full)
        finally:
            self.warm.set()
            await consumer.stop()

    def _merge(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            snapshot = HealthSnapshot.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            self.malformed += 1
            log.warning(
                "health: ignoring a malformed record on %s (%s): %r",
                self.topic,
                type(exc).__name__,
                raw[:200],
            )
            return
        if self.board.merge(snapshot):
            self.merged += 1

    async def _publish(self, full: bool) -> None:
        assert self.producer is not None
        dirty = self.board.take_dirty()
        if not full and not dirty:
            return
        now = self.board.clock()
        # in a full round, only models this replica called lately, and once more when
        # its window empties (readers stop judging the model's latency at once): a
        # silent replica never overwrites a busy one's figures
        models = [
            h
            for h in self.board.models()
            if h.key in dirty
            or (full and (h.window.stats(now).calls > 0 or self._calls.get(h.key, 0) > 0))
        ]
        for health in models:
            snapshot = self.board.snapshot(health)
            self._calls[health.key] = snapshot.calls
            try:
                await self.producer.send(self.topic, encode(snapshot), key=snapshot.key.encode())
                self.published += 1
            except KafkaError as exc:
                log.warning("health: could not publish %s: %s", snapshot.key, exc)
