"""The feature sink: `tierline.features` into ClickHouse `request_features`, losing nothing.

The loop of `streams.batch_sink` (batches by size and age, offsets committed
after the insert, unreadable records to the DLQ). One row per request: a
record the router published twice (a redelivery) is kept once in a batch, and
the table collapses the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from tierline.processors.store.clickhouse import insert_features
from tierline.schemas import FeatureRecord
from tierline.schemas.request import request_key
from tierline.streams.batch_sink import BatchSink


class FeatureSink(BatchSink[FeatureRecord]):
    model = FeatureRecord
    what = "feature record"
    table = "request_features"
    log = logging.getLogger("tierline.feature_sink")

    @property
    def topic(self) -> str:
        return self.topics.features

    @property
    def group_id(self) -> str:
        return f"{self.settings.kafka.topic_prefix}feature-sink"

    def key(self, record: FeatureRecord) -> str:
        return request_key(record.tenant, record.request_id)

    def keep(self, held: FeatureRecord, arriving: FeatureRecord) -> bool:
        return arriving.created_at >= held.created_at

    def insert(self, client: Client, records: Sequence[FeatureRecord]) -> None:
        insert_features(client, list(records))
