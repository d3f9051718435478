"""Spend alerts in and out of `tierline.alerts`: the alert sink, and the cost sink's anomaly feed.

`AlertSink` is the loop of `streams.batch_sink` for `tierline.alerts` into the
ClickHouse `alerts` table. Within a batch an alert is keyed by its `alert_id`, the
table's identity, so a redelivered alert is inserted once per batch and collapsed
by the table otherwise (read it with FINAL). After each successful insert the
batch goes to the webhook, when `alerts.webhook_url` is set (`streams.webhook`):
it posts from a queue of its own, so a slow or failing receiver never holds up
the sink, and an insert that failed (and will be retried) posts nothing.

`AnomalyFeed` is the cost sink's hook: every cost record it reads goes through the
spend-rate anomaly detector (`processors.spend.anomaly`), and the alerts it raises
are produced to `tierline.alerts`, keyed by tenant, like the router's budget
alerts. The detector's state is in memory: a restarted cost sink, or one that is
handed a tenant's partition by a rebalance, starts cold for it (no spike alert for
its warm-up, 6 h; no drift alert for a day), which is fine for alerts. Costs are
keyed by tenant, so one sink sees all of a tenant's spend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from tierline.processors.spend.anomaly import AnomalyConfig, SpendAnomalyDetector
from tierline.processors.store.clickhouse import insert_alerts
from tierline.schemas import Alert, CostRecord, encode
from tierline.streams.batch_sink import BatchSink
from tierline.streams.config import Settings
from tierline.streams.outgoing import Outgoing
from tierline.streams.sender import Sender
from tierline.streams.topics import Topics
from tierline.streams.webhook import AlertWebhook

#: a cost stamped further ahead of this clock is left out of the detector: a worker with
#: a skewed clock must not move the detector's time (which closes every scope's buckets)
MAX_AHEAD = timedelta(minutes=5)


class AlertSink(BatchSink[Alert]):
    model = Alert
    what = "alert"
    log = logging.getLogger("tierline.alert_sink")

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        bootstrap: str,
        producer: AIOKafkaProducer,
        webhook: AlertWebhook | None = None,
    ) -> None:
        super().__init__(settings, topics, bootstrap, producer)
        #: where alerts are posted after they are stored (None: nowhere)
        self.webhook = webhook if webhook else AlertWebhook.from_settings(settings.alerts)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def topic(self) -> str:
        return self.topics.alerts

    @property
    def group_id(self) -> str:
        return f"{self.settings.kafka.topic_prefix}alert-sink"

    def key(self, record: Alert) -> str:
        return record.alert_id

    def insert(self, client: Client, records: Sequence[Alert]) -> None:
        """Store the batch; then (from the insert's thread) hand it to the webhook's queue."""
        insert_alerts(client, records)
        if self.webhook is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.webhook.submit_all, list(records))

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        if self.webhook is None:
            await super().run(stop)
            return
        self.webhook.start()
        try:
            await super().run(stop)
        finally:
            await self.webhook.close()


class AnomalyFeed:
    """Cost records into the spend anomaly detector; its alerts onto `tierline.alerts`."""

    log = logging.getLogger("tierline.anomaly")

    def __init__(
        self,
        detector: SpendAnomalyDetector,
        sender: Sender,
        topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.detector = detector
        self.sender = sender
        self.topic = topic
        self.clock = clock
        #: costs left out for a time too far ahead of the clock
        self.ahead = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, sender: Sender, topics: Topics
    ) -> AnomalyFeed | None:
        """The feed as `[alerts]` configures it; None when anomaly detection is off."""
        alerts = settings.alerts
        if not alerts.anomaly_enabled:
            return None
        config = AnomalyConfig(
            bucket_s=alerts.anomaly_bucket_s, k=alerts.anomaly_k, floor_usd=alerts.anomaly_floor_usd
        )
        return cls(SpendAnomalyDetector(config), sender, topics.alerts)

    async def observe(self, record: CostRecord) -> None:
        """Count one cost; publish the alerts of the buckets its time closed."""
        at = record.created_at
        if (at if at.tzinfo else at.replace(tzinfo=UTC)) > self.clock() + MAX_AHEAD:
            self.ahead += 1
            return
        try:
            alerts = self.detector.observe(
                record.tenant, record.feature, record.model, record.cost_usd, at
            )
        except Exception:  # the bills must land whatever the detector does
            self.log.exception("anomaly detector failed on cost %s", record.record_id)
            return
        if alerts:
            await self.publish(alerts)

    async def publish(self, alerts: Sequence[Alert]) -> None:
        """Log and produce `alerts`, keyed by tenant (waits for the acks, as every send)."""
        for alert in alerts:
            self.log.warning("spend anomaly (%s): %s", alert.alert_id, alert.detail)
        await self.sender.send([Outgoing(self.topic, a.tenant.encode(), encode(a)) for a in alerts])
