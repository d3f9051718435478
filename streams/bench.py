"""The throughput benchmark: requests at a fixed rate through Kafka, against a direct baseline.

Two measurements in one run, on the same machine, against the same simulator
(its latency fixed at L ms):

- baseline: the bench calls the simulator directly over HTTP at the same rate;
  overhead = measured latency - L (the cost of the HTTP stack alone);
- tierline: the bench produces requests to Kafka and reads the responses; the
  router and the tier workers run in their own processes, as in production;
  overhead = end-to-end latency - L.

Each request is timed from the moment it is handed to the producer to the
moment its response is read, in the bench process, with one monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from tierline.processors.providers.http_client import provider_client
from tierline.processors.simulator import SimulatorProfile, spawn_simulator
from tierline.schemas import RouteRequest, encode
from tierline.streams.config import KafkaSettings
from tierline.streams.tail import tail_consumer
from tierline.streams.topics import ensure_topics
from tierline.streams.workload import demo_requests


@dataclass
class Measurement:
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ids: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    started: float = 0.0
    finished: float = 0.0

    def overhead(self, provider_latency_ms: float) -> dict[str, float]:
        if not self.latencies_ms:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
        ordered = sorted(x - provider_latency_ms for x in self.latencies_ms)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)}

    @property
    def throughput_rps(self) -> float:
        span = self.finished - self.started
        return round(len(self.latencies_ms) / span, 1) if span > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.sent - len(self.ids)

    @property
    def duplicates(self) -> int:
        return sum(self.ids.values()) - len(self.ids)


async def _paced(n: int, rate: float, send: Callable[[int], Any]) -> None:
    """Call `send(i)` for i in 0..n-1 at `rate` per second, catching up if late."""
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def measure_direct(url: str, requests: list[RouteRequest], rate: float) -> Measurement:
    """The baseline: the same requests, straight to the simulator's OpenAI endpoint."""
    m = Measurement(sent=len(requests))
    tasks: list[asyncio.Task[None]] = []
    async with provider_client(2000, 60) as client:

        async def one(request: RouteRequest) -> None:
            body = orjson.dumps(
                {
                    "model": "gpt-4.1-nano",
                    "messages": [x.model_dump(exclude_none=True) for x in request.messages],
                }
            )
            t0 = time.monotonic()
            reply = await client.post(
                f"{url}/v1/chat/completions",
                content=body,
                headers={"authorization": "Bearer sim-key", "content-type": "application/json"},
            )
            m.finished = time.monotonic()
            if reply.status_code == 200:
                m.latencies_ms.append((m.finished - t0) * 1000)
                m.ids[request.id] += 1
            else:
                m.errors += 1

        async def send(i: int) -> None:
            tasks.append(asyncio.create_task(one(requests[i])))

        m.started = time.monotonic()
        await _paced(len(requests), rate, send)
        await asyncio.gather(*tasks)
    return m


async def measure_pipeline(
    bootstrap: str, prefix: str, requests: list[RouteRequest], rate: float, timeout_s: float
) -> Measurement:
    m = Measurement(sent=len(requests))
    responses = await tail_consumer(bootstrap, prefix + "responses")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await producer.start()
    sent_at: dict[str, float] = {}
    done = asyncio.Event()

    async def read() -> None:
        while not done.is_set():
            batch = await responses.getmany(timeout_ms=50)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    data = orjson.loads(record.value)
                    rid = data["id"]
                    if rid not in sent_at:
                        continue
                    m.ids[rid] += 1
                    if m.ids[rid] == 1:
                        if data["status"] == "ok":
                            m.latencies_ms.append((now - sent_at[rid]) * 1000)
                        else:
                            m.errors += 1
                        m.finished = now
            if len(m.ids) >= len(requests):
                done.set()

    reader = asyncio.create_task(read())

    async def send(i: int) -> None:
        request = requests[i]
        sent_at[request.id] = time.monotonic()
        await producer.send(prefix + "requests", encode(request), key=request.tenant.encode())

    try:
        m.started = time.monotonic()
        await _paced(len(requests), rate, send)
        await producer.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=timeout_s)
        await asyncio.sleep(1.0)  # late duplicates, if any, show up here
        done.set()
        await reader
    finally:
        await producer.stop()
        await responses.stop()
    return m


class RoleProcesses:
    """`tierline run` subprocesses, one per role, on the bench's topics and simulator."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        simulator_url: str,
        state_dir: str,
        embedded: bool = False,
    ) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "TIERLINE_KAFKA_BOOTSTRAP": bootstrap,
            "TIERLINE_KAFKA_TOPIC_PREFIX": prefix,
            "TIERLINE_SIMULATOR_URL": simulator_url,
            "TIERLINE_STATE_DIR": state_dir,
            "TIERLINE_CLICKHOUSE_URL": f"chdb://{state_dir}/chdb",
            "TIERLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "TIERLINE_KAFKA_EMBEDDED": "true" if embedded else "false",
        }
        self.state_dir = state_dir

    def start(self, roles: list[str]) -> None:
        for role in roles:
            log = open(os.path.join(self.state_dir, f"{role}.log"), "ab")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tierline.streams.cli",
                        "run",
                        "--role",
                        role,
                        "--status-every",
                        "3600",
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"a role process exited with {proc.returncode}; logs in {self.state_dir}"
                )

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def run_bench(
    bootstrap: str,
    n: int,
    rate: float,
    provider_latency_ms: float,
    *,
    embedded: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(KafkaSettings(topic_prefix=prefix), bootstrap)
    profile = SimulatorProfile(seed=7, latency_ms=provider_latency_ms, output_tokens=(16, 64))
    requests = [
        r.model_copy(update={"id": f"{prefix}{i}"}) for i, r in enumerate(demo_requests(n, seed=3))
    ]
    warmup = [
        r.model_copy(update={"id": f"{prefix}warm{i}"})
        for i, r in enumerate(demo_requests(40, seed=4))
    ]
    with (
        tempfile.TemporaryDirectory(prefix="tierline-bench-") as state_dir,
        spawn_simulator(profile) as sim,
    ):
        say(f"simulator at {sim.url}, provider latency {provider_latency_ms} ms")
        say(f"baseline: {n} direct calls at {rate}/s")
        direct = await measure_direct(sim.url, requests, rate)
        roles = RoleProcesses(bootstrap, prefix, sim.url, state_dir, embedded)
        roles.start(["router", "workers", "sink"])
        try:
            say("tierline: warming up (group joins)")
            await measure_pipeline(bootstrap, prefix, warmup, 20, timeout_s=90)
            roles.check()
            say(f"tierline: {n} requests at {rate}/s through Kafka")
            piped = await measure_pipeline(
                bootstrap, prefix, requests, rate, timeout_s=n / rate + 60
            )
            roles.check()
        finally:
            roles.stop()
    return {
        "throughput_rps": piped.throughput_rps,
        "overhead_ms": piped.overhead(provider_latency_ms),
        "lost": piped.lost,
        "duplicates": piped.duplicates,
        "errors": piped.errors,
        "requests": n,
        "rate": rate,
        "provider_latency_ms": provider_latency_ms,
        "baseline": {
            "throughput_rps": direct.throughput_rps,
            "overhead_ms": direct.overhead(provider_latency_ms),
            "lost": direct.lost,
            "errors": direct.errors,
        },
    }
