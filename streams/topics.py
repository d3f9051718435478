"""Topic names and creation: every topic tierline reads or writes, derived from one prefix."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tierline.schemas import Tier
from tierline.streams.config import KafkaSettings


@dataclass(frozen=True)
class Topics:
    prefix: str = "tierline."

    @property
    def requests(self) -> str:
        return self.prefix + "requests"

    @property
    def responses(self) -> str:
        return self.prefix + "responses"

    @property
    def costs(self) -> str:
        return self.prefix + "costs"

    @property
    def dlq(self) -> str:
        return self.prefix + "dlq"

    @property
    def feedback(self) -> str:
        return self.prefix + "feedback"

    @property
    def features(self) -> str:
        """Per routed request, its decision and hashed features (`FeatureRecord`)."""
        return self.prefix + "features"

    @property
    def attempts(self) -> str:
        """Every provider call, `started` before it and `settled` with its answer."""
        return self.prefix + "attempts"

    @property
    def health(self) -> str:
        """Compacted, keyed `provider/model`: each model's newest `HealthSnapshot`."""
        return self.prefix + "health"

    @property
    def dlq_replays(self) -> str:
        """Compacted, keyed by dead letter: which ones `tierline dlq replay` has sent again."""
        return self.prefix + "dlq.replays"

    @property
    def alerts(self) -> str:
        """Budget and anomaly alerts (`Alert`), keyed by tenant."""
        return self.prefix + "alerts"

    @property
    def settlements(self) -> str:
        """What each budgeted request cost (`Settlement`), on its router's partition."""
        return self.prefix + "settlements"

    @property
    def budget_changelog(self) -> str:
        """Compacted: the router's budget ledger, partition for partition with requests."""
        return self.prefix + "budget.changelog"

    @property
    def cache(self) -> str:
        """Compacted, keyed by cache key: the response cache's answers (`CachedAnswer`)."""
        return self.prefix + "cache"

    @property
    def batches(self) -> str:
        """Compacted, keyed by batch key: the provider batches still open (`OpenBatch`)."""
        return self.prefix + "batches"

    def tier(self, tier: Tier) -> str:
        return f"{self.prefix}tier.{tier}"

    def done(self, tier: Tier) -> str:
        """Per-tier log of finished requests, partition for partition with the tier topic."""
        return f"{self.prefix}tier.{tier}.done"

    def all(self) -> list[str]:
        names = [self.requests, self.responses, self.costs, self.dlq, self.feedback, self.attempts]
        names += [self.health, self.dlq_replays, self.alerts, self.settlements]
        names += [self.budget_changelog, self.features, self.cache, self.batches]
        for tier in Tier:
            names += [self.tier(tier), self.done(tier)]
        return names


async def ensure_topics(settings: KafkaSettings, bootstrap: str) -> Topics:
    """Create every topic that does not exist yet; existing ones are left as they are."""
    topics = Topics(settings.topic_prefix)
    big = {"max.message.bytes": str(settings.max_message_bytes)}
    configs = {topics.requests: big, topics.dlq: big, topics.responses: big}
    compacted = {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000)}
    configs[topics.health] = compacted | {"min.cleanable.dirty.ratio": "0.1"}
    configs[topics.dlq_replays] = compacted
    configs[topics.budget_changelog] = compacted
    # answers as large as responses; a week at most (the compaction alone would keep every
    # key ever answered, expired or not), past which a restarted worker misses them
    week = {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 86400 * 1000)}
    configs[topics.cache] = big | compacted | week
    configs[topics.batches] = big | compacted
    for tier in Tier:
        configs[topics.tier(tier)] = big
        configs[topics.done(tier)] = {"retention.ms": str(6 * 3600 * 1000)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=configs.get(name, {}),
            )
            for name in topics.all()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another role won the race
                await admin.create_topics(wanted)
    finally:
        await admin.close()
    return topics


async def partition_ids(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of `topic` (empty when it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"] for t in described if t.get("error_code") == 0 for p in t["partitions"]
    )
