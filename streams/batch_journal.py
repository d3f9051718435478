"""The batch lane's journal on the compacted `tierline.batches`: open provider batches.

`opened` produces the batch's record (`OpenBatch`, keyed by its key) and returns
once the broker has it; `closed` produces a tombstone. Every workers process
reads the whole topic from the start with no consumer group (`run`), feeding each
record to its lane (`BatchLane.learned` / `forgot`), so a process that starts, or
takes over partitions, knows which requests already sit in a provider batch.
`catch_up` waits until the reader has read everything produced before the call:
the lane calls it before submitting, so a request another process had journaled
is waited for, not submitted again.

The records go out on the process's plain (idempotent) producer, outside the
answers' transactions: a batch is journaled before any of its answers exists,
and must stay journaled whether or not the transaction that answers it commits.
A record that does not parse is logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from tierline.processors.serving.batch_lane import BatchLane
from tierline.schemas import OpenBatch
from tierline.streams.tail import caught_up, tail_consumer

log = logging.getLogger("tierline.batch")

_FETCH_WAIT_MS = 200
#: how long `catch_up` waits for the reader before submitting anyway
CATCH_UP_S = 10.0


class KafkaBatchJournal:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        bootstrap: str,
        topic: str,
        isolation_level: str,
    ) -> None:
        self.producer = producer
        self.bootstrap = bootstrap
        self.topic = topic
        self.isolation_level = isolation_level
        self.lane: BatchLane | None = None
        self.malformed = 0
        #: set once the topic has been read up to where it ended at start (or cannot be)
        self.warm = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._read = asyncio.Event()

    async def opened(self, batch: OpenBatch) -> None:
        value = batch.model_dump_json().encode()
        while True:  # the provider has the batch: its record must land, whatever it takes
            try:
                await (await self.producer.send(self.topic, value, key=batch.key.encode()))
                return
            except KafkaError as exc:
                log.warning("batch %s: journal write failed (%s); retrying", batch.key, exc)
                await asyncio.sleep(1.0)

    async def closed(self, key: str) -> None:
        try:
            await (await self.producer.send(self.topic, None, key=key.encode()))
        except KafkaError as exc:  # an open record left behind is closed later by age
            log.warning("batch %s: could not close it in the journal (%s)", key, exc)

    async def catch_up(self) -> None:
        consumer = self._consumer
        if consumer is None:
            await asyncio.wait_for(self.warm.wait(), timeout=CATCH_UP_S)
            return
        ends = await consumer.end_offsets(list(consumer.assignment()))
        async with asyncio.timeout(CATCH_UP_S):
            while not await caught_up(consumer, ends):
                self._read.clear()
                await self._read.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Read the journal into the lane from the start, then as it grows, until `stop`."""
        try:
            consumer = await tail_consumer(
                self.bootstrap,
                self.topic,
                from_start=True,
                wait_s=20,
                isolation_level=self.isolation_level,
                fetch_max_wait_ms=_FETCH_WAIT_MS,
            )
        except (RuntimeError, KafkaError) as exc:
            log.warning("batch: cannot read %s (%s); batches are not resumed", self.topic, exc)
            self.warm.set()
            return
        self._consumer = consumer
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=_FETCH_WAIT_MS, max_records=500)
                for records in batch.values():
                    for record in records:
                        self.merge(record.key, record.value)
                self._read.set()
                if not self.warm.is_set() and await caught_up(consumer, ends):
                    open_now = self.lane.open_batches() if self.lane is not None else 0
                    log.info("batch: %d open batches read from %s", open_now, self.topic)
                    self.warm.set()
        finally:
            self._consumer = None
            self.warm.set()
            self._read.set()
            await consumer.stop()

    def merge(self, key: bytes | None, raw: bytes | None) -> None:
        """One record into the lane: a batch opened, or (a tombstone) closed."""
        lane = self.lane
        if key is None or lane is None:
            self.malformed += key is None
            return
        if raw is None:
            lane.forgot(key.decode(errors="replace"))
            return
        try:
            record = OpenBatch.model_validate_json(raw)
            if record.key.encode() != key:
                raise ValueError(f"filed under key {key[:80]!r}, not its own")
        except (ValidationError, ValueError) as exc:
            self.malformed += 1
            log.warning("batch: ignoring a malformed record on %s (%s)", self.topic, exc)
            return
        lane.learned(record)
