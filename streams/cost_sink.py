"""The cost sink: `tierline.costs` into ClickHouse `costs`, through the batching loop of
`streams.batch_sink.BatchSink`. A record's identity is its `record_id`, so a redelivered
record is inserted once per batch and collapsed by the table otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from tierline.processors.store.clickhouse import insert_costs
from tierline.schemas import CostRecord
from tierline.schemas.request import request_key
from tierline.streams.batch_sink import BatchSink, SinkStats

__all__ = ["CostSink", "SinkStats"]


class CostSink(BatchSink[CostRecord]):
    model = CostRecord
    what = "cost record"
    log = logging.getLogger("tierline.sink")

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
