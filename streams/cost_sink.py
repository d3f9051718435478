"""The cost sink: `tierline.costs` into ClickHouse `costs`, through the batching loop of
`streams.batch_sink.BatchSink`. A record's identity is its `record_id`, so a redelivered
record is inserted once per batch and collapsed by the table otherwise.

Every record read also goes through the spend-rate anomaly detector
(`streams.alert_sink.AnomalyFeed`, unless `alerts.anomaly_enabled` is off), whose
alerts go to `tierline.alerts`. Its state is in memory: cold after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from clickhouse_connect.driver.client import Client

from tierline.processors.store.clickhouse import insert_costs
from tierline.schemas import CostRecord
from tierline.schemas.request import request_key
from tierline.streams.alert_sink import AnomalyFeed
from tierline.streams.batch_sink import BatchSink, SinkStats
from tierline.streams.config import Settings
from tierline.streams.topics import Topics

__all__ = ["CostSink", "SinkStats"]


class CostSink(BatchSink[CostRecord]):
    model = CostRecord
    what = "cost record"
    log = logging.getLogger("tierline.sink")

    def __init__(
        self, settings: Settings, topics: Topics, bootstrap: str, producer: AIOKafkaProducer
    ) -> None:
        super().__init__(settings, topics, bootstrap, producer)
        #: spend-rate anomalies of what this sink reads (None: detection off)
        self.anomalies = AnomalyFeed.from_settings(settings, self.sender, topics)

    @property
    def topic(self) -> str:
        return self.topics.costs

    @property
    def group_id(self) -> str:
        return f"{self.settings.kafka.topic_prefix}sink"

    def key(self, record: CostRecord) -> str:
        # record ids repeat across tenants (request ids are the clients'): key by both
        return request_key(record.tenant, record.record_id)

    def insert(self, client: Client, records: Sequence[CostRecord]) -> None:
        insert_costs(client, records)

    # ------------------------------------------------------------------ the anomaly hook

    async def _read(self, tp: TopicPartition, offset: int, raw: bytes | None) -> CostRecord | None:
        """The loop's read of one record, which the anomaly detector then counts."""
        record = await super()._read(tp, offset, raw)
        if record is not None and self.anomalies is not None:
            await self.anomalies.observe(record)
        return record
