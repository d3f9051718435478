"""The policy file through the whole pipeline: cascades billed twice, sensitive data kept to
approved providers, experiment arms recorded, feedback joined to costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from tests.integration.support import collect, make_settings, produce, request_body, wait_until
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import Feedback, RouteResponse, encode
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

POLICY = """
[cascade]
tasks = ["classification"]

[sensitivity]
unlisted = "allow"
pii = ["openai"]

[[experiments]]
name = "tr"
task = "translation"
share = 1.0
arms = [
    { name = "nano", models = ["gpt-4.1-nano"] },
    { name = "lite", models = ["gemini-2.5-flash-lite"] },
]
"""


async def test_policy_file_end_to_end(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.router.policy = str(policy)
    pipeline = await start_pipeline(settings)
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        p = topic_prefix
        bodies = [
            request_body(
                f"{p}cas",
                "Classify the sentiment: great!",
                hints={"task": "classification"},
                params={"max_tokens": 2},
            ),
            request_body(f"{p}pii", "Summarize the mail from jane.doe@example.com about invoices."),
            *[
                request_body(
                    f"{p}tr-{i}",
                    f"Translate 'hello {i}' into French.",
                    hints={"task": "translation"},
                )
                for i in range(10)
            ],
        ]
        await produce(kafka_bootstrap, pipeline.topics.requests, bodies)
        records = await collect(responses, len(bodies), timeout_s=120, settle_s=1)
        await responses.stop()
        got = {
            r.id: r for r in (RouteResponse.model_validate(orjson.loads(x.value)) for x in records)
        }
        assert len(got) == len(bodies)
        cascade = got[f"{p}cas"]
        assert cascade.decision is not None
        assert any("escalated" in r for r in cascade.decision.reasons), cascade.decision.reasons
        assert cascade.attempts >= 2
        assert got[f"{p}pii"].provider == "openai", got[f"{p}pii"]
        arms = {r.model for k, r in got.items() if "tr-" in k}
        assert arms <= {"gpt-4.1-nano", "gemini-2.5-flash-lite"} and len(arms) == 2

        await produce(
            kafka_bootstrap,
            pipeline.topics.feedback,
            [
                encode(Feedback(request_id=f"{p}tr-{i}", tenant="acme", score=1.0, source="t"))
                for i in range(10)
            ],
        )

        async def joined() -> bool:
            rows = clickhouse.query(
                "SELECT count() FROM decisions "
                f"WHERE request_id LIKE '{p}tr-%' AND feedback_score = 1"
            ).result_rows
            return int(rows[0][0]) == 10

        assert await wait_until(joined, timeout_s=60)
        calls, spent = clickhouse.query(
            f"SELECT calls, cost_usd FROM decisions WHERE request_id = '{p}cas'"
        ).result_rows[0]
        assert calls == 2 and Decimal(spent) == cascade.cost_usd
    finally:
        await pipeline.stop()
