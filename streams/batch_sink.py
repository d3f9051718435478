"""A topic into a ClickHouse table, in batches, losing nothing: the loop every sink shares.

Records gather until the batch is full or old enough, then go in one insert.
Offsets are committed only after the insert succeeded; while ClickHouse is
down, the sink stops fetching and retries the same batch with backoff, so
records wait in Kafka and none is dropped. A record that appears twice (a
redelivery) is inserted once per batch (the batch is keyed by the record's
identity) and collapsed by the table otherwise. A record that cannot be read
goes to the DLQ byte for byte, with the reason.

A sink is this loop plus four things: its topic, its consumer group, how to
read a record and its identity, and how to insert a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.client import Client
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from tierline.processors.store.clickhouse import connect, migrate
from tierline.processors.tracing import (
    DB_COLLECTION_NAME,
    DB_OPERATION_BATCH_SIZE,
    DB_OPERATION_NAME,
    DB_SYSTEM_NAME,
    failed,
    tracer,
)
from tierline.streams.config import Settings
from tierline.streams.outgoing import Source, unreadable
from tierline.streams.sender import Sender
from tierline.streams.topics import Topics

R = TypeVar("R", bound=BaseModel)


@dataclass
class SinkStats:
    inserted: int = 0
    batches: int = 0
    failures: int = 0
    dead_letters: int = 0


class BatchSink(Generic[R]):
    """Subclasses set `model`, `what` and `log`, and define `topic`, `group_id`, `key`, `insert`."""

    model: type[R]
    #: what a record is, for logs and dead-letter reasons ("cost record")
    what: str = "record"
    #: the ClickHouse table it fills, as traces name it; empty = the topic's name unprefixed
    table: str = ""
    log: logging.Logger = logging.getLogger("tierline.sink")

    def __init__(
        self, settings: Settings, topics: Topics, bootstrap: str, producer: AIOKafkaProducer
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.bootstrap = bootstrap
        self.producer = producer
        self.sender = Sender(producer, topics, "sink", self.log)
        self.stats = SinkStats()
        self.client: Client | None = None
        self.ready = asyncio.Event()

    # ------------------------------------------------------------------ what a sink defines

    @property
    def topic(self) -> str:
        raise NotImplementedError

    @property
    def group_id(self) -> str:
        raise NotImplementedError

    def key(self, record: R) -> str:
        """The record's identity: a later record with the same key replaces it in the batch."""
        raise NotImplementedError

    def keep(self, held: R, arriving: R) -> bool:
        """Whether a record replaces the one with the same key already in the batch."""
        return True

    def insert(self, client: Client, records: Sequence[R]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop

    async def _connect(self, stop: asyncio.Event) -> None:
        """Connect and migrate, retrying while ClickHouse is unreachable."""
        delay = 0.5
        while not stop.is_set():
            try:
                client = await asyncio.to_thread(connect, self.settings.clickhouse_url)
                await asyncio.to_thread(migrate, client)
                self.client = client
                self.ready.set()
                return
            except Exception as exc:  # noqa: BLE001 - unreachable or refusing: wait and retry
                self.log.warning("sink: ClickHouse not ready (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def run(self, stop: asyncio.Event) -> None:
        await self._connect(stop)
        if self.client is None:
            return
        kafka, sink = self.settings.kafka, self.settings.sink
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # bills and feedback are published in transactions: read only committed ones
            isolation_level=self.settings.isolation_level,
            # batches flush by age anyway: let the broker gather records (SinkSettings)
            fetch_max_wait_ms=sink.fetch_wait_ms,
            fetch_min_bytes=sink.fetch_min_bytes,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(300, kafka.session_timeout_ms // 5),
        )
        await consumer.start()
        batch: dict[str, R] = {}
        offsets: dict[TopicPartition, int] = {}
        oldest = time.monotonic()
        try:
            while not stop.is_set():
                polled = await consumer.getmany(
                    timeout_ms=100, max_records=sink.batch_size - len(batch)
                )
                for tp, messages in polled.items():
                    for message in messages:
                        record = await self._read(tp, message.offset, message.value)
                        if record is not None:
                            if not batch:
                                oldest = time.monotonic()
                            key = self.key(record)
                            if key not in batch or self.keep(batch[key], record):
                                batch[key] = record
                        offsets[tp] = message.offset + 1
                full = len(batch) >= sink.batch_size
                due = batch and time.monotonic() - oldest >= sink.flush_interval_s
                if full or due or (offsets and not batch):
                    await self._flush(consumer, batch, offsets, stop)
                    batch, offsets = {}, {}
        finally:
            if batch or offsets:
                await self._flush(consumer, batch, offsets, stop, attempts=3)
            await consumer.stop()

    async def _read(self, tp: TopicPartition, offset: int, raw: bytes | None) -> R | None:
        try:
            return self.model.model_validate(orjson.loads(raw or b""))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            source = Source(tp.topic, tp.partition, offset, raw)
            await self.sender.send([unreadable(self.topics.dlq, source, self.what, exc)])
            self.stats.dead_letters += 1
            return None

    async def _flush(
        self,
        consumer: AIOKafkaConsumer,
        batch: dict[str, R],
        offsets: dict[TopicPartition, int],
        stop: asyncio.Event,
        attempts: int | None = None,
    ) -> None:
        delay, tried = 0.5, 0
        table = self.table or self.topic.removeprefix(self.topics.prefix)
        while batch:
            try:
                assert self.client is not None
                with tracer.start_as_current_span(
                    f"sink insert {table}",
                    kind=SpanKind.CLIENT,
                    attributes={
                        DB_SYSTEM_NAME: "clickhouse",
                        DB_COLLECTION_NAME: table,
                        DB_OPERATION_NAME: "INSERT",
                        DB_OPERATION_BATCH_SIZE: len(batch),
                    },
                    record_exception=False,
                ) as span:
                    try:
                        await asyncio.to_thread(self.insert, self.client, list(batch.values()))
                    except Exception as exc:
                        failed(span, type(exc).__name__, str(exc))
                        raise
                self.stats.inserted += len(batch)
                self.stats.batches += 1
                break
            except Exception as exc:  # noqa: BLE001 - any ClickHouse failure means: wait, retry
                tried += 1
                self.stats.failures += 1
                if (attempts is not None and tried >= attempts) or (
                    stop.is_set() and attempts is None
                ):
                    self.log.error(
                        "sink: giving up on %d %ss for now (left in Kafka): %s",
                        len(batch),
                        self.what,
                        exc,
                    )
                    return
                self.log.warning(
                    "sink: insert of %d %ss failed (%s); retrying in %.1fs",
                    len(batch),
                    self.what,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        if offsets:
            try:
                await consumer.commit(offsets)  # type: ignore[arg-type]
            except KafkaError as exc:
                # a rebalance took the partitions: the next owner re-reads them and the
                # table collapses the repeated rows, so nothing is counted twice
                self.log.warning("sink: commit failed (%s); records will be re-read", exc)
