"""Fixtures for tests against a real Apache Kafka broker.

One broker serves the whole test session: starting it takes seconds (a JVM, a KRaft
controller), so tests share it and keep apart by topic name (`topic_prefix`).

The broker is the one deploy/kafka/kafka.sh runs from jars Maven fetches (no Docker
needed). To use a broker of your own instead, set TIERLINE_TEST_KAFKA to its bootstrap
address, e.g. `TIERLINE_TEST_KAFKA=localhost:9092 pytest tests/integration`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (see below)
import pytest
from clickhouse_connect.driver.client import Client

from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.processors.store.clickhouse import connect

# hypothesis is imported at collection, not late: when no test here imports it, its pytest
# plugin imports it at the session's end, and under CPython 3.11.7 pytest's assertion
# rewriting of it can then fail with "SystemError: AST constructor recursion depth
# mismatch" after every test passed (seen with test_partition_outbox.py run alone)

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"

# Generous: the first run on a machine also fetches the jars with Maven; kafka.sh itself
# gives up after 60 s of waiting for the broker.
START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the broker `kafka`, so `-m "not kafka"` leaves them out."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _kafka_sh(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # PYTHON: kafka.sh's readiness check and port picking use this interpreter (stdlib only).
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(KAFKA_SH), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _output(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    def text(s: str | bytes | None) -> str:
        return s.decode(errors="replace") if isinstance(s, bytes) else (s or "")

    return f"--- stdout ---\n{text(stdout)}\n--- stderr ---\n{text(stderr)}"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address ("127.0.0.1:PORT") of a real Kafka broker for this session.

    A broker that cannot start fails the tests that need it (never a skip): a missing
    broker must not pass for a green run.
    """
    external = os.environ.get("TIERLINE_TEST_KAFKA")
    if external:
        yield external
        return

    run_dir = tmp_path_factory.mktemp("kafka")  # kept by pytest: its logs/ helps after a failure
    # The port is free when picked but could be taken before the broker binds it; kafka.sh
    # says so before starting anything, and then another port is tried.
    for _attempt in range(3):
        port = _free_loopback_port()
        try:
            started = _kafka_sh(
                "start", "--port", str(port), "--dir", str(run_dir), timeout=START_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            _kafka_sh("stop", "--dir", str(run_dir), timeout=STOP_TIMEOUT_S)
            pytest.fail(
                f"kafka.sh start did not finish within {START_TIMEOUT_S}s\n"
                + _output(exc.stdout, exc.stderr),
                pytrace=False,
            )
        if started.returncode == 0 or "already in use" not in started.stderr:
            break
    if started.returncode != 0:
        pytest.fail(
            f"could not start Kafka: kafka.sh start exited {started.returncode} "
            f"(run dir {run_dir})\n" + _output(started.stdout, started.stderr),
            pytrace=False,
        )
    bootstrap = started.stdout.strip().splitlines()[-1]
    try:
        yield bootstrap
    finally:
        stopped = _kafka_sh("stop", "--dir", str(run_dir), timeout=STOP_TIMEOUT_S)
        if stopped.returncode != 0:
            # A broker left running holds memory and a port: an error at teardown, not silence.
            pytest.fail(
                f"kafka.sh stop exited {stopped.returncode}\n"
                + _output(stopped.stdout, stopped.stderr),
                pytrace=False,
            )


@pytest.fixture
def topic_prefix() -> str:
    """A prefix unique to this test, e.g. "t1a2b3c4d.", for topic and group names on the
    shared broker."""
    return f"t{uuid.uuid4().hex[:8]}."


# --- ClickHouse and the provider simulator -------------------------------------------------
# chDB opens one on-disk engine per process, so the whole session shares one; tests keep
# their rows apart by request-id prefix. Defined here, once: a fixture imported into several
# test modules would be several fixtures, and open several engines.


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def clickhouse(chdb_url: str) -> Client:
    return connect(chdb_url)


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(
        SimulatorProfile(seed=11, latency_ms=20, latency_jitter=0.3, output_tokens=(8, 64))
    )
    yield sim
    await sim.stop()
