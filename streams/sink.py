"""The cost sink: `tierline.costs` into ClickHouse `costs`, in batches, losing nothing.

Records gather until the batch is full or old enough, then go in one insert.
Offsets are committed only after the insert succeeded; while ClickHouse is
down, the sink stops fetching and retries the same batch with backoff, so
records wait in Kafka and none is dropped. A record that appears twice (a
redelivery) is inserted once per batch and collapsed by the table otherwise.
The loop itself is `streams.batch_sink.BatchSink`, shared with the feedback sink.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from schemas import CostRecord
from streams.batch_sink import BatchSink, SinkStats
from streams.clickhouse import insert_costs

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
        return record.record_id

    def insert(self, client: Client, records: Sequence[CostRecord]) -> None:
        insert_costs(client, records)
