"""The attempt sink: `tierline.attempts` into ClickHouse `attempts`, in batches, losing nothing.

The loop of `streams.batch_sink`. An attempt arrives twice, `started` and then
`settled`; within a batch the later row is kept, and the table keeps the later
one otherwise, so an attempt still `started` there was cut off by a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from tierline.processors.store.clickhouse import insert_attempts
from tierline.schemas import Attempt
from tierline.schemas.request import request_key
from tierline.streams.batch_sink import BatchSink


class AttemptSink(BatchSink[Attempt]):
    model = Attempt
    what = "attempt"
    log = logging.getLogger("tierline.attempt_sink")

    @property
    def topic(self) -> str:
        return self.topics.attempts

    @property
    def group_id(self) -> str:
        return f"{self.settings.kafka.topic_prefix}attempt-sink"

    def key(self, record: Attempt) -> str:
        return request_key(record.tenant, record.attempt_id)

    def keep(self, held: Attempt, arriving: Attempt) -> bool:
        """`settled` wins over `started`, whatever order they arrive in."""
        return arriving.state == "settled" or held.state == "started"

    def insert(self, client: Client, records: Sequence[Attempt]) -> None:
        insert_attempts(client, list(records))
