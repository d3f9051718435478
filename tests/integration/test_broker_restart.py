"""The Kafka broker stopped mid-stream and started again: every request answered once, billed
once, and every role rides it out (none exits).

The test runs a broker of its own (the session's must stay up for the other tests), stops it
while requests are in every stage of the pipeline (waiting in the request topic, on a tier
topic, in a provider call, on the cost topic), and starts it again on the same port and
data directory, as an operator restarting a broker would: the topics and committed offsets
survive. The router and the workers run as `tierline run` processes, the cost sink in this
process (chDB opens one engine per process, and `billed_once` reads it here).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    REPO,
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
)
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

pytestmark = pytest.mark.kafka

KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
START_TIMEOUT_S = 600  # the first start on a machine fetches the jars
STOP_TIMEOUT_S = 120
DOWN_S = 5.0  # how long the broker stays down


class OwnBroker:
    """A broker of this test's own, run by deploy/kafka/kafka.sh in `run_dir`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = 0
        self.bootstrap = ""

    def _kafka_sh(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHON": sys.executable}
        return subprocess.run(
            ["bash", str(KAFKA_SH), *args, "--dir", str(self.run_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        """Start on a free port (first start) or on the port it had (a restart)."""
        for _attempt in range(3):
            port = self.port or _free_loopback_port()
            started = self._kafka_sh("start", "--port", str(port), timeout=START_TIMEOUT_S)
            if started.returncode == 0 or self.port or "already in use" not in started.stderr:
                break
        assert started.returncode == 0, (
            f"kafka.sh start exited {started.returncode}\n{started.stdout}\n{started.stderr}"
        )
        self.port = port
        self.bootstrap = started.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        stopped = self._kafka_sh("stop", timeout=STOP_TIMEOUT_S)
        assert stopped.returncode == 0, (
            f"kafka.sh stop exited {stopped.returncode}\n{stopped.stdout}\n{stopped.stderr}"
        )


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "kafka")  # its logs/ stay in tmp_path after a failure
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()  # kafka.sh stop is a no-op when none is running


@pytest.fixture
async def slow_simulator() -> AsyncIterator[RunningSimulator]:
    # 200 ms calls at 50 requests/s: about ten calls in the air when the broker goes down
    sim = await start_simulator(SimulatorProfile(seed=7, latency_ms=200, latency_jitter=0.5))
    yield sim
    await sim.stop()


PROMPTS = (
    "Translate 'hello {i}' to French",
    "Classify ticket {i}: 'refund not received'",
    "Summarize this incident report #{i} in two sentences",
    "Prove step by step that the sum of the first {i} odd numbers is a square",
)


async def test_broker_restart_mid_stream_loses_and_doubles_nothing(
    own_broker: OwnBroker,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    slow_simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    bootstrap = own_broker.bootstrap
    settings = make_settings(bootstrap, topic_prefix, chdb_url, slow_simulator.url, tmp_path)
    sink = await start_pipeline(settings, roles=("sink",))  # creates the topics, 3 partitions
    router_log, workers_log = tmp_path / "router.log", tmp_path / "workers.log"
    router = start_role("router", role_env(bootstrap, topic_prefix, tmp_path / "r"), router_log)
    workers = start_role(
        "workers",
        role_env(
            bootstrap,
            topic_prefix,
            tmp_path / "w",
            slow_simulator.url,
            worker_max_in_flight="40",
            worker_commit_interval_s="0.2",
            worker_call_timeout_s="5",
        ),
        workers_log,
    )
    roles = {"router": (router, router_log), "workers": (workers, workers_log)}
    sending: asyncio.Task[None] | None = None
    try:
        responses = await tail_consumer(bootstrap, sink.topics.responses)
        n = 300
        ids = [f"{topic_prefix}br-{i}" for i in range(n)]
        bodies = [
            request_body(rid, PROMPTS[i % len(PROMPTS)].format(i=i)) for i, rid in enumerate(ids)
        ]
        trickle = Trickle(bootstrap, sink.topics.requests, bodies, chunk=10, every_s=0.2)
        sending = asyncio.create_task(trickle.run())

        # the pipeline is answering, half the stream is in: take the broker away
        before = await collect(responses, 40, timeout_s=120)
        assert len(before) >= 40, log_tail(workers_log)
        await trickle.until_sent(n // 2, timeout_s=120)
        # the stream goes on: sends made while the broker is down wait in the test's producer
        sent_at_stop, t0 = trickle.sent, time.monotonic()
        await asyncio.to_thread(own_broker.stop)
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(own_broker.start)  # same port, same data directory
        assert own_broker.bootstrap == bootstrap
        print(
            f"broker down {time.monotonic() - t0:.1f}s, stopped with {sent_at_stop} sent "
            f"and >= {len(before)} answered"
        )
        assert_running(roles)  # the outage itself killed no role

        await asyncio.wait_for(sending, timeout=180)
        await sent_once(bootstrap, sink.topics.requests, ids)
        after = await collect(responses, n - len(before), timeout_s=240, settle_s=5)
        got = answered_once(before + after, ids)
        await billed_once(clickhouse, f"{topic_prefix}br-", got)
        await responses.stop()

        assert_running(roles)
        assert sink.failed_roles() == [], sink.failed_roles()
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
        stop_roles(router, workers)
        await asyncio.wait_for(sink.stop(), timeout=60)
