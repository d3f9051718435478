"""The provider health loop on real Kafka, with the simulator as an external process.

- an outage in the middle of a stream: every request held and answered once after it,
  billed once, and the provider called only a handful of times while it was down;
- a 429 storm on the cheapest model: traffic goes to the next candidate, and the
  model's call rate stays under the limit it announces;
- a slow model: the router skips it while its p95 is over the tier's limit, and sends
  to it again once it is fast;
- replicas: a circuit one board opens is seen by another through `tierline.health`, a
  malformed record there is ignored, and a late starter starts warm.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    Trickle,
    answered_once,
    billed_once,
    collect,
    log_tail,
    make_settings,
    request_body,
    role_env,
    sent_once,
    start_role,
    stop_roles,
    wait_until,
)
from tierline.processors.health.board import HealthBoard, HealthPolicy
from tierline.processors.health.breaker import BreakerPolicy
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.simulator import (
    ModelOverride,
    SimulatorProcess,
    SimulatorProfile,
    spawn_simulator,
)
from tierline.schemas import RouteResponse, Tier
from tierline.streams.cli import main
from tierline.streams.config import HealthSettings
from tierline.streams.health_feed import HealthFeed
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer
from tierline.streams.topics import ensure_topics


@pytest.fixture
def simulator() -> Iterator[SimulatorProcess]:
    with spawn_simulator(SimulatorProfile(seed=11, latency_ms=150, latency_jitter=0.2)) as sim:
        yield sim


async def test_an_outage_holds_every_request_and_loses_none(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    simulator: SimulatorProcess,
    tmp_path: Path,
) -> None:
    """2,000 requests at 100/s; the provider is down for 30 s in the middle."""
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "sink"))
    env = role_env(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "worker",
        simulator.url,
        worker_call_timeout_s="5",
        health_max_cooldown_s="8",
        # the calls an outage draws before circuits open grow with the requests in flight
        # when it starts; bound those (20 carry 100/s at 150 ms with room to spare) so the
        # count below depends on the breaker, not on how far behind a busy box runs
        worker_max_in_flight="20",
    )
    log = tmp_path / "worker.log"
    worker = start_role("workers", env, log)
    n, outage_s = 2000, 30.0
    ids = [f"{topic_prefix}out-{i}" for i in range(n)]
    bodies = [
        request_body(rid, f"Summarise ticket {i}: 'refund late'") for i, rid in enumerate(ids)
    ]
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        trickle = Trickle(kafka_bootstrap, pipeline.topics.requests, bodies, chunk=10, every_s=0.1)
        sending = asyncio.create_task(trickle.run())
        records = await collect(responses, 300, timeout_s=120)
        assert len(records) >= 300, log_tail(log)
        before = simulator.fetch_stats()["requests"]
        simulator.down(mode="reset")
        down_at = time.monotonic()
        while time.monotonic() - down_at < outage_s:
            records += await collect(responses, 10**9, timeout_s=1.0)
        during = simulator.fetch_stats()["during_outage"]
        simulator.up()
        await asyncio.wait_for(sending, 120)
        records += await collect(responses, n - len(records), timeout_s=180, settle_s=3)
        await sent_once(kafka_bootstrap, pipeline.topics.requests, ids)

        got = answered_once(records, ids)
        statuses = collections.Counter(r.status for r in got)
        assert statuses == {"ok": n}, statuses  # held through the outage, none failed
        await billed_once(clickhouse, f"{topic_prefix}out-", got)
        held = [r for r in got if r.decision and any("held " in x for x in r.decision.reasons)]
        assert held, "no answer was held"
        # without circuits every request would burn 6 attempts against the dead provider;
        # with them: a few failures per model open it, then one probe per cool-down
        assert during <= 120, f"{during} provider calls while it was down"
        print(
            f"outage: sent {n}, ok {statuses['ok']}, held {len(held)}, calls before the "
            f"outage {before}, calls during it {during}"
        )
        await responses.stop()
    finally:
        stop_roles(worker)
        await asyncio.wait_for(pipeline.stop(), timeout=60)


async def test_a_429_storm_shifts_traffic_and_keeps_under_the_announced_limit(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, tmp_path: Path
) -> None:
    """The standard tier's cheapest model answers half its calls with 429 and allows
    60 requests a minute; 240 standard requests at 8/s."""
    cheapest = "claude-haiku-4-5"
    profile = SimulatorProfile(
        seed=12,
        latency_ms=50,
        models={cheapest: ModelOverride(rate_limit_rate=0.5, retry_after_s=1.0, rpm_limit=60)},
    )
    with spawn_simulator(profile) as sim:
        settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, sim.url, tmp_path)
        pipeline = await start_pipeline(settings, roles=("router", "workers"))
        try:
            responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
            n = 240
            ids = [f"{topic_prefix}storm-{i}" for i in range(n)]
            hints = {"min_tier": "standard", "max_tier": "standard"}
            bodies = [
                request_body(rid, f"Draft reply {i}", hints=hints) for i, rid in enumerate(ids)
            ]
            started = time.monotonic()
            await Trickle(kafka_bootstrap, pipeline.topics.requests, bodies, 4, 0.5).run()
            records = await collect(responses, n, timeout_s=120, settle_s=2)
            elapsed = time.monotonic() - started
            got = answered_once(records, ids)
            assert all(r.status == "ok" for r in got)
            by_model = collections.Counter(r.model for r in got)
            assert by_model[cheapest] > 0 and by_model["gpt-4.1"] > 0, by_model
            stats = sim.fetch_stats()
            calls = stats["by_model"].get(cheapest, 0)
            # the announced limit is 60/min: the cheapest model is never called much over it
            assert calls <= 60 * (elapsed / 60) + 60 + 5, (calls, elapsed)
            assert stats["by_outcome"].get("over_limit", 0) <= 5, stats["by_outcome"]
            print(f"429 storm: {dict(by_model)}, {calls} calls to {cheapest} in {elapsed:.0f}s")
            await responses.stop()
        finally:
            await asyncio.wait_for(pipeline.stop(), timeout=60)


async def test_a_slow_model_is_skipped_and_comes_back(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, tmp_path: Path
) -> None:
    slow = "gemini-2.5-flash-lite"  # the economy tier's cheapest
    profile = SimulatorProfile(seed=13, latency_ms=20, models={slow: ModelOverride(latency_ms=900)})
    with spawn_simulator(profile) as sim:
        settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, sim.url, tmp_path)
        settings.health = HealthSettings(
            p95_limit_ms={Tier.ECONOMY: 500.0}, window_s=10.0, publish_interval_s=0.5
        )
        pipeline = await start_pipeline(settings, roles=("router", "workers"))
        try:
            responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
            hints = {"min_tier": "economy", "max_tier": "economy"}

            async def wave(tag: str, count: int) -> list[RouteResponse]:
                ids = [f"{topic_prefix}{tag}-{i}" for i in range(count)]
                bodies = [request_body(rid, "Say hi", hints=hints) for rid in ids]
                await Trickle(kafka_bootstrap, pipeline.topics.requests, bodies, 5, 0.5).run()
                got = answered_once(await collect(responses, count, timeout_s=60), ids)
                return sorted(got, key=lambda r: ids.index(r.id))  # in the order they were sent

            # the wave takes ~6 s: inside the 10 s window, so the slow model, once
            # judged on its first 10 calls, is not tried again during it
            first = await wave("slow", 60)
            judged = [r for r in first if _skipped(r, slow)]
            assert judged, collections.Counter(r.model for r in first)
            reason = _skipped(judged[-1], slow)
            assert reason.startswith(f"skipped {slow}: p95 ") and "over the 500 ms limit" in reason
            # once judged (10 slow calls), the rest of the wave goes to the next candidate
            assert all(r.model != slow for r in first[-30:]), [r.model for r in first]
            sim.set_models({slow: {"latency_ms": 20}})
            await asyncio.sleep(11)  # its window empties; it is no longer judged slow
            back = await wave("back", 30)
            assert any(r.model == slow for r in back), collections.Counter(r.model for r in back)
            assert not any(_skipped(r, slow) for r in back[-10:])
            await responses.stop()
        finally:
            await asyncio.wait_for(pipeline.stop(), timeout=60)


async def test_replicas_share_circuits_and_ignore_garbage(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, "", "", Path("."))
    topics = await ensure_topics(settings.kafka, kafka_bootstrap)
    model = load_catalog().model("gpt-4.1-nano")
    policy = HealthPolicy(breaker=BreakerPolicy(failures_to_open=2, cooldown_s=30))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    stop = asyncio.Event()
    a = HealthBoard(policy, replica="worker-a")
    b = HealthBoard(policy, replica="worker-b")
    feeds = [
        HealthFeed(a, kafka_bootstrap, topics, producer=producer, publish_interval_s=0.5),
        HealthFeed(b, kafka_bootstrap, topics, producer=producer, publish_interval_s=0.5),
    ]
    tasks = [asyncio.create_task(feed.run(stop)) for feed in feeds]
    late_tasks: list[asyncio.Task[Any]] = []
    try:
        await asyncio.gather(*(asyncio.wait_for(f.warm.wait(), 30) for f in feeds))
        await producer.send_and_wait(topics.health, b"{not json", key=b"openai/x")
        await producer.send_and_wait(topics.health, b'{"provider": "openai"}', key=b"openai/y")
        with caplog.at_level(logging.WARNING, logger="tierline.health"):
            for _ in range(2):
                a.observe(model, "connection", why="refused")
            assert a.blocked(model) is not None

            async def b_sees_it() -> bool:
                return b.blocked(model) is not None

            assert await wait_until(b_sees_it, 5, every_s=0.05), "b never saw a's circuit"
            assert "seen by worker-a" in (b.blocked(model) or "")
            assert feeds[1].malformed >= 2 and "malformed record" in caplog.text
        # a replica that starts now reads the compacted topic: warm, the circuit open
        late = HealthBoard(policy, replica="worker-c")
        late_feed = HealthFeed(late, kafka_bootstrap, topics)
        late_tasks.append(asyncio.create_task(late_feed.run(stop)))
        await asyncio.wait_for(late_feed.warm.wait(), 30)
        assert late.blocked(model) is not None
        # and the operator's view reads the same topic
        env = {
            "TIERLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "TIERLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
        }
        shown = await asyncio.to_thread(CliRunner().invoke, main, ["status", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        rows = [orjson.loads(line) for line in shown.output.splitlines() if line.startswith("{")]
        nano = next(r for r in rows if r["model"] == model.name)
        assert nano["circuit"] == "open" and nano["replica"] == "worker-a"
        table = await asyncio.to_thread(CliRunner().invoke, main, ["status"], env=env)
        assert table.exit_code == 0 and "openai/gpt-4.1-nano" in table.output
    finally:
        stop.set()
        await asyncio.gather(*tasks, *late_tasks, return_exceptions=True)
        await producer.stop()


def _skipped(response: RouteResponse, model: str) -> str:
    """The reason saying `model` was skipped, or ""."""
    reasons = response.decision.reasons if response.decision else []
    return next((r for r in reasons if r.startswith(f"skipped {model}:")), "")


async def test_a_circuit_one_workers_process_opens_is_seen_by_another(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, tmp_path: Path
) -> None:
    """Process A serves economy against a provider that is down; process B serves standard
    against a healthy one and calls no economy model, yet B's /metrics shows the economy
    model's circuit open: it learnt it from tierline.health."""
    with (
        spawn_simulator(SimulatorProfile(seed=14, latency_ms=20)) as dead,
        spawn_simulator(SimulatorProfile(seed=15, latency_ms=20)) as alive,
    ):
        dead.down(mode="reset")
        settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, alive.url, tmp_path)
        pipeline = await start_pipeline(settings, roles=("router",))
        ports = [_free_port(), _free_port()]
        procs = []
        try:
            for name, sim, tier, port in (
                ("a", dead, "economy", ports[0]),
                ("b", alive, "standard", ports[1]),
            ):
                env = role_env(
                    kafka_bootstrap,
                    topic_prefix,
                    tmp_path / name,
                    sim.url,
                    worker_tiers=tier,
                    metrics_port=str(port),
                )
                procs.append(start_role("workers", env, tmp_path / f"{name}.log"))
            hints = {"min_tier": "economy", "max_tier": "economy"}
            bodies = [
                request_body(f"{topic_prefix}share-{i}", "Say hi", hints=hints) for i in range(20)
            ]
            await Trickle(kafka_bootstrap, pipeline.topics.requests, bodies, 5, 0.2).run()
            cheapest = load_catalog().candidates(Tier.ECONOMY)[0]
            provider = load_catalog().model(cheapest).provider

            async def open_in(port: int) -> bool:
                text = await asyncio.to_thread(_metrics, port)
                return any(
                    line.startswith("tierline_circuit_state{")
                    and f'model="{cheapest}"' in line
                    and f'provider="{provider}"' in line
                    and line.endswith(" 2.0")
                    for line in text.splitlines()
                )

            assert await wait_until(lambda: open_in(ports[0]), 60), log_tail(tmp_path / "a.log")
            assert await wait_until(lambda: open_in(ports[1]), 10), _metrics(ports[1])[-3000:]
            assert alive.fetch_stats()["by_model"].get(cheapest, 0) == 0  # B never called it
        finally:
            stop_roles(*procs)
            await asyncio.wait_for(pipeline.stop(), timeout=60)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _metrics(port: int) -> str:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""
