"""Context trimming through the whole pipeline on real Kafka: a history too long for the cheap
model's window is answered by it, trimmed, and billed on what was sent; with `hints.trim =
false` the same request goes to a bigger model, or fails `no_candidate` when pinned to the
small one. The simulator refuses any prompt over the small model's window, as a provider
would, so an answer from it is proof it was sent the trimmed history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from tests.integration.support import collect, make_settings, produce, request_body, wait_until
from tierline.processors.simulator import ModelOverride, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

WINDOW = 1500
CATALOG = f"""
[models.tiny]
provider = "anthropic"
price = {{ input = "0.10", output = "0.40" }}
context_window = {WINDOW}

[models.roomy]
provider = "gemini"
price = {{ input = "1.00", output = "4.00" }}
context_window = 1000000

[tiers]
economy = ["tiny", "roomy"]
standard = ["roomy"]
premium = ["roomy"]
batch = ["roomy"]
"""
POLICY = "[trimming]\nmin_turns = 2\nheadroom_tokens = 128\n"
WORDS = "the migration plan moves billing, search and the mobile backend off the old cluster "


def history() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Answer in one line."}]
    for n in range(12):
        messages.append({"role": "user", "content": f"step {n}: {WORDS * 3}"})
        messages.append({"role": "assistant", "content": f"noted {n}: {WORDS * 3}"})
    messages.append({"role": "user", "content": "So what moves first?"})
    return messages


async def test_a_long_history_is_trimmed_for_the_cheap_model_unless_the_request_opts_out(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    tmp_path: Path,
) -> None:
    simulator = await start_simulator(
        SimulatorProfile(seed=3, models={"tiny": ModelOverride(context_window=WINDOW)})
    )
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.catalog = str(catalog)
    settings.router.policy = str(policy)
    pipeline = await start_pipeline(settings)
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        p = topic_prefix
        # the same long conversation three times; `messages` replaces request_body's own
        common: dict[str, Any] = {"messages": history(), "params": {"max_tokens": 64}}
        bodies = [
            request_body(f"{p}trimmed", "", hints={"max_tier": "economy"}, **common),
            request_body(f"{p}whole", "", hints={"max_tier": "economy", "trim": False}, **common),
            request_body(f"{p}pinned", "", hints={"model": "tiny", "trim": False}, **common),
        ]
        await produce(kafka_bootstrap, pipeline.topics.requests, bodies)
        records = await collect(responses, len(bodies), timeout_s=120, settle_s=1)
        await responses.stop()
        got = {
            r.id: r for r in (RouteResponse.model_validate(orjson.loads(x.value)) for x in records)
        }
        assert set(got) == {f"{p}trimmed", f"{p}whole", f"{p}pinned"}

        trimmed = got[f"{p}trimmed"]
        assert trimmed.status == "ok", trimmed.error
        assert (trimmed.model, trimmed.tier) == ("tiny", "economy")
        assert trimmed.trimmed_messages > 0
        assert trimmed.decision is not None
        said = f"trimmed {trimmed.trimmed_messages} oldest messages to fit tiny's"
        assert any(r.startswith(said) for r in trimmed.decision.reasons), trimmed.decision.reasons
        assert 0 < trimmed.usage.input_tokens <= WINDOW - 64 - 128

        whole = got[f"{p}whole"]
        assert whole.status == "ok", whole.error
        assert whole.model == "roomy" and whole.trimmed_messages == 0
        assert whole.usage.input_tokens > WINDOW  # the whole history, to the bigger model

        pinned = got[f"{p}pinned"]
        assert pinned.status == "error" and pinned.error is not None
        assert pinned.error.type == ErrorType.NO_CANDIDATE, pinned.error
        assert f"{WINDOW}-token window" in pinned.error.message

        stats = simulator.stats
        assert stats.by_model.get("tiny") == 1  # only the trimmed request reached it
        assert 400 not in stats.by_status  # and it was not over the window

        # billed on what was sent: the cost row has the trimmed prompt's tokens
        where = f"request_id = '{p}trimmed'"

        async def billed() -> bool:
            rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
            return int(rows[0][0]) >= 1

        assert await wait_until(billed, timeout_s=60)
        tokens, cost = clickhouse.query(
            f"SELECT input_tokens, cost_usd FROM costs FINAL WHERE {where}"
        ).result_rows[0]
        assert tokens == trimmed.usage.input_tokens
        assert cost == trimmed.cost_usd
    finally:
        await pipeline.stop()
        await simulator.stop()
