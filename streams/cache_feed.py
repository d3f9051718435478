"""Reading the compacted `tierline.cache` into a worker's response cache, from the start.

Every workers process runs one feed. It reads the whole topic (no consumer group:
every worker needs every answer; compaction keeps the newest per key), so a worker
that starts is warm once the feed has read up to where the topic ended at start
(`warm`), then keeps adding what the others publish as they publish it. Each worker
publishes its own answers with the answers themselves (`streams.worker_cache`), in
their transaction, so the feed reads committed answers only.

An expired answer is skipped; a tombstone forgets its key. A record that does not
parse, or whose Kafka key is not its cache key, is logged and skipped: a stranger
writing to the topic cannot stop a worker, nor file an answer under another key.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from tierline.processors.serving.response_cache import ResponseCache
from tierline.schemas import CachedAnswer
from tierline.streams.tail import caught_up, tail_consumer

log = logging.getLogger("tierline.cache")

_FETCH_WAIT_MS = 200


class CacheFeed:
    def __init__(
        self, cache: ResponseCache, bootstrap: str, topic: str, isolation_level: str
    ) -> None:
        self.cache = cache
        self.bootstrap = bootstrap
        self.topic = topic
        self.isolation_level = isolation_level
        self.kept = 0
        self.skipped = 0
        self.malformed = 0
        #: set once the topic has been read up to where it ended at start (or cannot be)
        self.warm = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        try:  # the topic is created at start; the broker may take a moment to show it
            consumer = await tail_consumer(
                self.bootstrap,
                self.topic,
                from_start=True,
                wait_s=20,
                isolation_level=self.isolation_level,
                fetch_max_wait_ms=_FETCH_WAIT_MS,  # a long-lived reader: no busy fetching
            )
        except (RuntimeError, KafkaError) as exc:
            log.warning("cache: cannot read %s (%s); answers are not shared", self.topic, exc)
            self.warm.set()
            return
        try:
            partitions = list(consumer.assignment())
            ends = await consumer.end_offsets(partitions)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=_FETCH_WAIT_MS, max_records=500)
                for records in batch.values():
                    for record in records:
                        self.merge(record.key, record.value)
                if not self.warm.is_set() and await caught_up(consumer, ends):
                    log.info("cache: %d answers read from %s", len(self.cache.store), self.topic)
                    self.warm.set()
        finally:
            self.warm.set()
            await consumer.stop()

    def merge(self, key: bytes | None, raw: bytes | None) -> None:
        """One record of the topic into the cache: an answer kept, or a key forgotten."""
        if key is None:
            self.malformed += 1
            return
        if raw is None:
            self.cache.forget(key.decode(errors="replace"))
            return
        try:
            answer = CachedAnswer.model_validate_json(raw)
            if answer.key.encode() != key:
                raise ValueError(f"filed under key {key[:80]!r}, not its own")
        except (ValidationError, ValueError) as exc:
            self.malformed += 1
            log.warning(
                "cache: ignoring a malformed record on %s (%s): %r",
                self.topic,
                type(exc).__name__,
                raw[:200],
            )
            return
        if self.cache.keep(answer, len(raw)):
            self.kept += 1
        else:
            self.skipped += 1  # expired, too large, or the cache is off
