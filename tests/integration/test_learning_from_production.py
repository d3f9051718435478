"""The quality loop on real parts: the router's feature records through Kafka into chDB,
joined to costs and feedback, `tierline train --from-clickhouse` fitting the classifier on
them, and `tierline eval --from-clickhouse` comparing it with the deployed router.

The synthetic production: two features with prompts of the same shape; the economy
tier's answers for `contracts` are judged poor, for `faq` good. The deployed router
(rules) cannot tell them apart; a classifier trained on the recorded features can,
through the feature's metadata term and the words each feature uses.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import sink_settings, wait_until
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.routing.classifiers.learned import LearnedClassifier
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.processors.routing.tier_rules import TierRules
from tierline.processors.store.clickhouse import (
    insert_costs,
    insert_features,
    insert_feedback,
    migrate,
)
from tierline.schemas import CostRecord, FeatureRecord, Feedback, RouteRequest, Tier
from tierline.streams.cli import main
from tierline.streams.config import Settings
from tierline.streams.feature_sink import FeatureSink
from tierline.streams.router import RequestRouter
from tierline.streams.topic_directory import TopicDirectory
from tierline.streams.topics import Topics, ensure_topics

NOW = datetime.now(UTC).replace(microsecond=0)
TOPICS = ["indemnity", "liability", "termination", "warranty", "assignment", "governing law"]
ASKS = ["refund", "password", "shipping", "invoice", "login", "opening hours"]


def prompt(feature: str, rng: random.Random) -> str:
    if feature == "contracts":
        return f"Summarise the {rng.choice(TOPICS)} clause of this agreement for a client."
    return f"Summarise our {rng.choice(ASKS)} policy for a customer in one line."


async def recorded(
    router: RequestRouter, rid: str, tenant: str, feature: str, text: str
) -> FeatureRecord:
    """What the real router step records for the request."""
    body = orjson.dumps(
        {
            "id": rid,
            "tenant": tenant,
            "messages": [{"role": "user", "content": text}],
            "metadata": {"feature": feature},
        }
    )
    sends = await router.decide(body, ("t.requests", 0, 0))
    (features,) = [s for s in sends if s.topic.endswith("features")]
    return FeatureRecord.model_validate_json(features.value)


def cost(
    rid: str, tenant: str, feature: str, tier: Tier, usd: str, reasons: list[str]
) -> CostRecord:
    return CostRecord(
        record_id=CostRecord.make_id(rid, 1),
        request_id=rid,
        attempt=1,
        tenant=tenant,
        feature=feature,
        task="summarize",
        tier=tier,
        model="m",
        provider="openai",
        status="ok",
        cost_usd=Decimal(usd),
        reasons=reasons,
        created_at=NOW,
    )


async def production(clickhouse: Client, tenant: str, n: int, seed: int) -> None:
    """`n` requests per feature served by economy and scored, a cascade escalation per ten
    contracts, and a few premium answers (the strong tier's quality)."""
    migrate(clickhouse)
    rng = random.Random(seed)
    topics = Topics("t.")
    router = RequestRouter(
        Settings(), topics, RulesClassifier(), TierRules(), load_catalog(),
        TopicDirectory.fixed(topics.all()),
    )  # fmt: skip
    features, costs, signals = [], [], []
    for i in range(n):
        for feature in ("contracts", "faq"):
            rid = f"{tenant}-{feature}-{i}"
            features.append(await recorded(router, rid, tenant, feature, prompt(feature, rng)))
            if feature == "contracts" and i % 10 == 0:
                reasons = ["cascade: economy answer failed its check (empty): escalated to premium"]
                costs.append(cost(rid, tenant, feature, Tier.PREMIUM, "0.01", reasons))
                continue
            costs.append(cost(rid, tenant, feature, Tier.ECONOMY, "0.001", []))
            good = rng.random() < (0.1 if feature == "contracts" else 0.9)
            signals.append(
                Feedback(request_id=rid, tenant=tenant, source="thumbs", score=float(good))
            )
    for i in range(10):
        rid = f"{tenant}-premium-{i}"
        features.append(await recorded(router, rid, tenant, "contracts", prompt("contracts", rng)))
        costs.append(cost(rid, tenant, "contracts", Tier.PREMIUM, "0.01", []))
        signals.append(Feedback(request_id=rid, tenant=tenant, source="thumbs", score=0.9))
    insert_features(clickhouse, features)
    insert_costs(clickhouse, costs)
    insert_feedback(clickhouse, signals)


async def test_train_from_clickhouse_learns_what_the_deployed_router_misses(
    chdb_url: str, clickhouse: Client, tmp_path: Path
) -> None:
    await production(clickhouse, "prod-t", 60, seed=1)
    out = tmp_path / "router.json"
    trained = CliRunner().invoke(
        main,
        ["train", "--from-clickhouse", chdb_url, "--tenant", "prod-t", "--out", str(out), "--json"],
    )
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.output.strip().splitlines()[-1])
    assert summary["source"] == "production" and summary["weak_tier"] == "economy"
    # 60 faq + 54 contracts scored on economy, 6 contracts escalated by the cascade
    assert summary["examples_by_kind"] == {"weak tier scored": 114, "cascade escalated": 6}
    artifact = LearnedClassifier.load(out)
    assert artifact.hashed
    # it scores new requests at route time: contracts are hard for economy, faq is not
    rng = random.Random(7)

    def score(feature: str) -> float:
        request = RouteRequest.model_validate(
            {
                "id": "new",
                "tenant": "prod-t",
                "messages": [{"role": "user", "content": prompt(feature, rng)}],
                "metadata": {"feature": feature},
            }
        )
        return artifact.classify(request).score

    assert min(score("contracts") for _ in range(5)) > 0.5 > max(score("faq") for _ in range(5))

    compared = CliRunner().invoke(
        main,
        [
            "eval", "--from-clickhouse", chdb_url, "--tenant", "prod-t",
            "--router", str(out), "--json",
        ],
    )  # fmt: skip
    assert compared.exit_code == 0, compared.output
    report = json.loads(compared.output.strip().splitlines()[-1])
    assert report["labelled"] == 120 and report["strong_scored"] == 10
    deployed, candidate = report["routers"]["deployed"], report["routers"]["candidate"]
    assert candidate["auc"] > 0.8 > deployed["auc"]
    assert candidate["brier"] < deployed["brier"]
    assert candidate["apgr"] > deployed["apgr"]


async def test_too_little_signal_is_a_clear_error(
    chdb_url: str, clickhouse: Client, tmp_path: Path
) -> None:
    await production(clickhouse, "thin-t", 5, seed=2)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--from-clickhouse",
            chdb_url,
            "--tenant",
            "thin-t",
            "--out",
            str(tmp_path / "r.json"),
        ],
    )
    assert result.exit_code != 0
    assert "at least 30 are needed" in result.output and "experiment" in result.output


async def test_the_feature_sink_lands_each_record_once(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, clickhouse: Client, tmp_path: Path
) -> None:
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_url, tmp_path)
    topics = await ensure_topics(settings.kafka, kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    sink = FeatureSink(settings, topics, kafka_bootstrap, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    router = RequestRouter(
        Settings(), Topics("t."), RulesClassifier(), TierRules(), load_catalog(),
        TopicDirectory.fixed(Topics("t.").all()),
    )  # fmt: skip
    try:
        await asyncio.wait_for(sink.ready.wait(), timeout=30)
        for i in range(10):
            rid = f"{topic_prefix}fs-{i}"
            record = await recorded(router, rid, "fs-t", "faq", f"What is {i} plus {i}?")
            await producer.send(
                topics.features, record.model_dump_json().encode(), key=rid.encode()
            )
            await producer.send(
                topics.features, record.model_dump_json().encode(), key=rid.encode()
            )
        await producer.send(topics.features, b'{"request_id": "x"}', key=b"x")  # unreadable
        await producer.flush()

        async def landed() -> bool:
            rows = clickhouse.query(
                "SELECT count() FROM request_features FINAL "
                f"WHERE request_id LIKE '{topic_prefix}fs-%'"
            ).result_rows
            return int(rows[0][0]) == 10 and sink.stats.dead_letters == 1

        assert await wait_until(landed, timeout_s=60)
        stored = clickhouse.query(
            "SELECT length(term_ids) > 0, prompt FROM request_features FINAL "
            f"WHERE request_id = '{topic_prefix}fs-3'"
        ).result_rows
        assert stored == [(True, "")]  # ids, and no text
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await producer.stop()
