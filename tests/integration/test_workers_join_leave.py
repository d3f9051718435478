"""Tier-worker processes joining and leaving the consumer groups under load: every request
answered once, billed once, none lost.

One `tierline run --role workers` process serves a steady stream; a second one joins
(every tier's group rebalances), the first leaves on SIGTERM, as a rolling deploy or a
scale-down stops it (the groups rebalance again, onto the second alone), and a third joins.
Each step waits for a count of requests sent, so it happens while requests are arriving and
provider calls are in the air; the steps that change a group wait until the new member has
its partitions, so each rebalance really happens under load, not after it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    Trickle,
    answered_once,
    assert_running,
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
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import Tier
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

PROMPTS = (
    "Translate 'hello {i}' to French",
    "Classify ticket {i}: 'refund not received'",
    "Summarize this incident report #{i} in two sentences",
    "Prove step by step that the sum of the first {i} odd numbers is a square",
)


@pytest.fixture
async def slow_simulator() -> AsyncIterator[RunningSimulator]:
    # 250 ms calls at 20 requests/s: a handful of calls in the air at every rebalance
    sim = await start_simulator(SimulatorProfile(seed=13, latency_ms=250, latency_jitter=0.5))
    yield sim
    await sim.stop()


#: "workers economy+...: assigned economy 1 partitions, standard 2 partitions, ..."
ASSIGNED = re.compile(rf"({'|'.join(t.value for t in Tier)}) [1-9]\d* partitions")


def tiers_with_partitions(log: Path) -> set[str]:
    """The tiers whose topic the workers process logging to `log` got partitions of."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return {m.group(1) for m in ASSIGNED.finditer(text)}


async def has_partitions(log: Path, timeout_s: float) -> bool:
    """Whether that process has joined every tier's group and holds partitions in each."""

    async def joined() -> bool:
        return tiers_with_partitions(log) >= {str(t) for t in Tier}

    return await wait_until(joined, timeout_s)


async def test_workers_join_and_leave_under_load_lose_and_double_nothing(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    slow_simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, slow_simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "sink"))

    def workers(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        env = role_env(
            kafka_bootstrap,
            topic_prefix,
            tmp_path / name,
            slow_simulator.url,
            worker_max_in_flight="40",
            worker_commit_interval_s="0.2",
            worker_call_timeout_s="5",
        )
        log = tmp_path / f"{name}.log"
        return start_role("workers", env, log), log

    first, first_log = workers("workers-1")
    second: subprocess.Popen[bytes] | None = None
    third: subprocess.Popen[bytes] | None = None
    sending: asyncio.Task[None] | None = None
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        n = 400
        ids = [f"{topic_prefix}jl-{i}" for i in range(n)]
        bodies = [
            request_body(rid, PROMPTS[i % len(PROMPTS)].format(i=i)) for i, rid in enumerate(ids)
        ]
        trickle = Trickle(kafka_bootstrap, pipeline.topics.requests, bodies, every_s=0.5)
        sending = asyncio.create_task(trickle.run())
        before = await collect(responses, 20, timeout_s=120)
        assert len(before) >= 20, log_tail(first_log)

        # join: a second process; every tier's group rebalances across the two
        await trickle.until_sent(100, timeout_s=120)
        second, second_log = workers("workers-2")
        assert await has_partitions(second_log, timeout_s=120), log_tail(second_log)
        joined_at = trickle.sent

        # leave: the first stops gracefully (finishes its calls, commits, leaves the groups)
        await trickle.until_sent(max(200, joined_at + 20), timeout_s=120)
        first.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, 90) == 0, log_tail(first_log)
        left_at = trickle.sent

        # join again: a third process, beside the second
        await trickle.until_sent(max(300, left_at + 20), timeout_s=120)
        third, third_log = workers("workers-3")
        assert await has_partitions(third_log, timeout_s=120), log_tail(third_log)
        print(f"of {n}: second joined at {joined_at} sent, first left at {left_at}")

        await asyncio.wait_for(sending, timeout=120)
        await sent_once(kafka_bootstrap, pipeline.topics.requests, ids)
        after = await collect(responses, n - len(before), timeout_s=180, settle_s=5)
        got = answered_once(before + after, ids)
        await billed_once(clickhouse, f"{topic_prefix}jl-", got)
        await responses.stop()

        assert_running({"workers-2": (second, second_log), "workers-3": (third, third_log)})
        assert pipeline.failed_roles() == [], pipeline.failed_roles()
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
        stop_roles(first, second, third)
        await asyncio.wait_for(pipeline.stop(), timeout=60)
