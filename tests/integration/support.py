"""Shared pieces of the integration tests: one chDB per test process, settings, Kafka I/O.

chDB opens one on-disk engine per process, so every test of the session shares
one, and tests keep their rows apart by request-id prefix.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from clickhouse_connect.driver.client import Client

from tierline.schemas import RouteResponse
from tierline.streams.config import (
    ClickHouseSettings,
    KafkaSettings,
    Settings,
    SinkSettings,
    WorkerSettings,
)


def make_settings(
    bootstrap: str, prefix: str, chdb_url: str, simulator_url: str, state_dir: Path, **worker: Any
) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap=bootstrap, topic_prefix=prefix, partitions=3, session_timeout_ms=6000
        ),
        clickhouse=ClickHouseSettings(url=chdb_url),
        worker=WorkerSettings(call_timeout_s=5, **worker),
        simulator_url=simulator_url,
        state_dir=state_dir,
        metrics_port=0,  # tests run side by side: any free port
    )


def sink_settings(bootstrap: str, prefix: str, chdb_url: str, state_dir: Path) -> Settings:
    """Settings for a sink under test: small batches, flushed fast."""
    return Settings(
        kafka=KafkaSettings(
            bootstrap=bootstrap, topic_prefix=prefix, partitions=2, session_timeout_ms=6000
        ),
        clickhouse=ClickHouseSettings(url=chdb_url),
        sink=SinkSettings(batch_size=50, flush_interval_s=0.2),
        state_dir=state_dir,
        metrics_port=0,
    )


def request_body(rid: str, text: str, tenant: str = "acme", **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "id": rid,
        "tenant": tenant,
        "messages": [{"role": "user", "content": text}],
        "metadata": {"feature": "tests"},
    }
    body.update(extra)
    return orjson.dumps(body)


async def produce(
    bootstrap: str, topic: str, values: list[bytes], key: bytes | None = b"acme"
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def collect(
    consumer: AIOKafkaConsumer, want: int, timeout_s: float, settle_s: float = 0.0
) -> list[Any]:
    """Records until `want` arrived (then `settle_s` more, to catch duplicates) or the timeout."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    while time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        for part in batch.values():
            records.extend(part)
        if len(records) >= want and settle_until is None:
            settle_until = time.monotonic() + settle_s
        if settle_until is not None and time.monotonic() >= settle_until:
            break
    return records


async def wait_until(check: Any, timeout_s: float, every_s: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(every_s)
    return False


async def group_member(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    """A consumer of `topic` in `group`, started and holding its partitions (no auto commit:
    only what a test commits moves the group's offsets)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    return consumer


async def create_topic(bootstrap: str, name: str, partitions: int = 2) -> str:
    """Create a topic the way an operator would, and wait until its partitions have leaders."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = await admin.describe_topics([name])
            ready = [p for t in described if t.get("error_code") == 0 for p in t["partitions"]]
            if len(ready) == partitions and all(p["leader"] >= 0 for p in ready):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return name


async def list_topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


REPO = Path(__file__).resolve().parents[2]


def start_role(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`tierline run --role ROLE` in a process of its own, as a deployment runs it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tierline.streams.cli", "run", "--role", role]
            + ["--status-every", "1", "--log-level", "info"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def answered_once(records: list[Any], ids: list[str]) -> list[RouteResponse]:
    """The responses in `records`, asserted to be exactly one ok answer per id in `ids`."""
    got = [RouteResponse.model_validate(orjson.loads(r.value)) for r in records]
    ok_per_id = Counter(r.id for r in got if r.status == "ok")
    assert set(ok_per_id) == set(ids), f"lost {len(set(ids) - set(ok_per_id))}"
    assert max(ok_per_id.values()) == 1, [i for i, c in ok_per_id.items() if c > 1][:5]
    assert len(got) == len(ids)  # and nothing else: no error answers
    return got


async def billed_once(clickhouse: Client, id_prefix: str, answers: list[RouteResponse]) -> None:
    """ClickHouse holds one bill per answer, and its sum is the answers' sum, exactly."""
    where = f"request_id LIKE '{id_prefix}%'"

    async def billed() -> bool:
        rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
        return int(rows[0][0]) >= len(answers)

    assert await wait_until(billed, timeout_s=60)
    count, distinct, spent = clickhouse.query(
        f"SELECT count(), uniqExact(request_id), sum(cost_usd) FROM costs FINAL WHERE {where}"
    ).result_rows[0]
    assert (count, distinct) == (len(answers), len(answers))
    assert Decimal(spent) == sum((r.cost_usd for r in answers), Decimal(0))


# --- role processes under faults (broker restart, workers joining and leaving) -------------


def role_env(
    bootstrap: str, prefix: str, state_dir: Path, simulator_url: str = "", **extra: str
) -> dict[str, str]:
    """The environment of a `tierline run --role ...` process under test: this broker and
    prefix, 3 partitions, short sessions; `extra` as TIERLINE_<NAME> (upper-cased)."""
    env = {
        **os.environ,
        "TIERLINE_KAFKA_BOOTSTRAP": bootstrap,
        "TIERLINE_KAFKA_TOPIC_PREFIX": prefix,
        "TIERLINE_KAFKA_PARTITIONS": "3",
        "TIERLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "TIERLINE_STATE_DIR": str(state_dir),
        "TIERLINE_METRICS_PORT": "0",
    }
    if simulator_url:
        env["TIERLINE_SIMULATOR_URL"] = simulator_url
    env.update({f"TIERLINE_{name.upper()}": value for name, value in extra.items()})
    return env


def log_tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else f"({log} is missing)"


def assert_running(procs: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Every named role process is still alive; else its exit code and its log's end."""
    for name, (proc, log) in procs.items():
        code = proc.poll()
        assert code is None, f"{name} exited with {code}:\n{log_tail(log)}"


def stop_roles(*procs: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM each process still running (a graceful stop), SIGKILL one that hangs."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Trickle:
    """Sends `bodies` to `topic` at a steady pace: `chunk` records, their acks, a pause.

    One idempotent producer for the whole stream, patient enough (`request_timeout_ms`) to
    wait out a broker restart: a send the broker was slow to acknowledge is retried, never
    written twice. `sent` counts the acknowledged records.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        bodies: list[bytes],
        chunk: int = 10,
        every_s: float = 0.2,
        key: bytes = b"acme",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.bodies = bodies
        self.chunk = chunk
        self.every_s = every_s
        self.key = key
        self.sent = 0

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=5,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=120_000,
        )
        await producer.start()
        try:
            for start in range(0, len(self.bodies), self.chunk):
                part = self.bodies[start : start + self.chunk]
                acks = [await producer.send(self.topic, v, key=self.key) for v in part]
                await asyncio.gather(*acks)
                self.sent += len(part)
                await asyncio.sleep(self.every_s)
        finally:
            await producer.stop()

    async def until_sent(self, n: int, timeout_s: float) -> None:
        async def enough() -> bool:
            return self.sent >= n

        assert await wait_until(enough, timeout_s, every_s=0.05), (self.sent, n)


async def sent_once(bootstrap: str, topic: str, ids: list[str]) -> None:
    """The request topic holds each of `ids` exactly once: a count of answers then measures
    tierline, not a test producer that wrote a request twice (or never)."""
    from tierline.streams.tail import tail_consumer

    consumer = await tail_consumer(bootstrap, topic, from_start=True)
    try:
        records = await collect(consumer, len(ids), timeout_s=60, settle_s=1)
    finally:
        await consumer.stop()
    per_id = Counter(orjson.loads(r.value)["id"] for r in records)
    assert per_id == Counter(ids), (len(records), len(ids))


# --- the gateway as a process of its own ----------------------------------------------------


async def gateway_url(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> str:
    """The base URL (`http://127.0.0.1:PORT/v1`) a `start_role("gateway", ...)` process logs
    once it serves; started with port 0, this is how its port is known."""
    from tierline.streams.bench_gateway import announced_url

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = proc.poll()
        assert code is None, f"the gateway exited with {code}:\n{log_tail(log)}"
        url = announced_url(log_tail(log, chars=1_000_000))
        if url is not None:
            return url
        await asyncio.sleep(0.2)
    raise AssertionError(f"the gateway did not serve within {timeout_s:g}s:\n{log_tail(log)}")
