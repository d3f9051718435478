"""The feedback sink: `tierline.feedback` into ClickHouse `feedback`, in batches, losing nothing.

The same loop as the cost sink (`streams.batch_sink`): batches bounded by size
and age, offsets committed only after the insert, unreadable signals to the
DLQ with the reason. Within a batch a signal is keyed by (request id, source),
the table's identity, so a redelivered or corrected signal is kept once; the
table collapses the rest (the newest `created_at` wins).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from tierline.processors.store.clickhouse import insert_feedback
from tierline.schemas import Feedback
from tierline.schemas.request import request_key
from tierline.streams.batch_sink import BatchSink


class FeedbackSink(BatchSink[Feedback]):
    model = Feedback
    what = "feedback signal"
    log = logging.getLogger("tierline.feedback_sink")

    @property
    def topic(self) -> str:
        return self.topics.feedback

    @property
    def group_id(self) -> str:
        return f"{self.settings.kafka.topic_prefix}feedback-sink"

    def key(self, record: Feedback) -> str:
        return f"{request_key(record.tenant, record.request_id)}\x00{record.source}"

    def keep(self, held: Feedback, arriving: Feedback) -> bool:
        """The newest signal per request and source wins, whatever order they arrive in."""
        return arriving.created_at >= held.created_at

    def insert(self, client: Client, records: Sequence[Feedback]) -> None:
        insert_feedback(client, list(records))
