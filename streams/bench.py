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
import itertools
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
from tierline.streams.cpu_clock import cpu_seconds, listening_pid
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
    #: CPU seconds the measuring process spent (the direct baseline's client), if taken
    cpu_s: float | None = None

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
    endpoint = f"{url}/v1/chat/completions"
    headers = {"authorization": "Bearer sim-key", "content-type": "application/json"}
    # the bodies are made before the CPU clock starts: its figure is the call's cost alone
    bodies = [
        orjson.dumps(
            {
                "model": "gpt-4.1-nano",
                "messages": [x.model_dump(exclude_none=True) for x in request.messages],
            }
        )
        for request in requests
    ]
    async with provider_client(2000, 60) as client:

        async def one(request: RouteRequest, body: bytes) -> None:
            t0 = time.monotonic()
            # the workers' own call path: the cheapest way tierline knows to make the call
            reply = await client.post_bytes(endpoint, body, headers)
            m.finished = time.monotonic()
            if reply.status_code == 200:
                m.latencies_ms.append((m.finished - t0) * 1000)
                m.ids[request.id] += 1
            else:
                m.errors += 1

        async def send(i: int) -> None:
            tasks.append(asyncio.create_task(one(requests[i], bodies[i])))

        m.started, cpu_before = time.monotonic(), time.process_time()
        await _paced(len(requests), rate, send)
        await asyncio.gather(*tasks)
        m.cpu_s = time.process_time() - cpu_before
    return m


async def measure_pipeline(
    bootstrap: str,
    prefix: str,
    requests: list[RouteRequest],
    rate: float,
    timeout_s: float,
    *,
    stage: str = "",
    embedded: bool = False,
) -> Measurement:
    """Send `requests` to `<prefix><stage>requests` at `rate`; time each answer on
    `<prefix><stage>responses` (tierline's answers, or the floor's relayed requests),
    read as a client should: committed transactions only (the embedded broker has none)."""
    m = Measurement(sent=len(requests))
    isolation = "read_uncommitted" if embedded else "read_committed"
    responses = await tail_consumer(
        bootstrap, f"{prefix}{stage}responses", isolation_level=isolation
    )
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
                        if data.get("status", "ok") == "ok":  # the floor relays requests
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
        await producer.send(
            f"{prefix}{stage}requests", encode(request), key=request.tenant.encode()
        )

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
        self.roles: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.embedded = embedded
        self.env = {
            **os.environ,
            "TIERLINE_KAFKA_BOOTSTRAP": bootstrap,
            "TIERLINE_KAFKA_TOPIC_PREFIX": prefix,
            "TIERLINE_SIMULATOR_URL": simulator_url,
            "TIERLINE_STATE_DIR": state_dir,
            "TIERLINE_CLICKHOUSE_URL": f"chdb://{state_dir}/chdb",
            "TIERLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "TIERLINE_KAFKA_EMBEDDED": "true" if embedded else "false",
            "TIERLINE_METRICS_PORT": "0",  # one endpoint per role process, any free port
            # the hot path is what is measured: the workload's batch-latency requests are
            # called synchronously, not held minutes for a provider batch
            "TIERLINE_BATCH_ENABLED": "false",
        }
        self.state_dir = state_dir

    def start(self, roles: list[str]) -> None:
        cli = [sys.executable, "-m", "tierline.streams.cli", "run", "--status-every", "3600"]
        for role in roles:
            self.spawn(role, [*cli, "--role", role])

    def spawn(self, role: str, command: list[str]) -> None:
        """Start `command` as one of `role`'s processes, its output in the state dir."""
        index = sum(1 for r, _ in self.roles if r == role)
        log = open(os.path.join(self.state_dir, f"{role}.{index}.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.roles.append((role, proc))

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        return [proc for _, proc in self.roles]

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far, summed per role."""
        used: dict[str, float] = {}
        for role, proc in self.roles:
            seconds = cpu_seconds(proc.pid)
            if seconds is not None:
                used[role] = used.get(role, 0.0) + seconds
        return used

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


FLOOR_STAGES = ("requests", "middle", "responses")
#: the floors' topic (and role) names under the bench's prefix: plain, and exactly once
FLOOR, FLOOR_TXN = "floor", "floortxn"


async def run_bench(
    bootstrap: str,
    n: int,
    rates: list[float],
    provider_latency_ms: float,
    *,
    workers_processes: int = 1,
    embedded: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The baseline, the floor and tierline at each rate; one result per rate."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    kafka = KafkaSettings(topic_prefix=prefix)
    await ensure_topics(kafka, bootstrap)
    await _create_floor_topics(bootstrap, prefix, kafka.partitions)
    profile = SimulatorProfile(seed=7, latency_ms=provider_latency_ms, output_tokens=(16, 64))
    warmup = _requests(prefix, "warm", 40, seed=4)
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="tierline-bench-") as state_dir,
        spawn_simulator(profile) as sim,
    ):
        say(f"simulator at {sim.url}, provider latency {provider_latency_ms} ms")
        roles = RoleProcesses(bootstrap, prefix, sim.url, state_dir, embedded)
        floor = RoleProcesses(bootstrap, prefix, sim.url, state_dir, embedded)
        # the floor of the same guarantee: exactly once on transactions, as tierline runs
        floor_txn = None if embedded else RoleProcesses(bootstrap, prefix, sim.url, state_dir)
        broker = BrokerClock.near(bootstrap, embedded)
        say(broker.describe())
        wait_ms = "5" if embedded else "100"
        floors: list[tuple[RoleProcesses, str, list[str]]] = [(floor, FLOOR, [])]
        if floor_txn is not None:
            floors.append((floor_txn, FLOOR_TXN, ["--transactional"]))
        for processes, stage_prefix, extra in floors:
            for stage, (source, target) in enumerate(itertools.pairwise(FLOOR_STAGES)):
                processes.spawn(
                    stage_prefix,
                    [sys.executable, "-m", "tierline.streams.bench_floor"]
                    + [f"{prefix}{stage_prefix}.{source}", f"{prefix}{stage_prefix}.{target}"]
                    + ["--bootstrap", bootstrap, "--group", f"{prefix}{stage_prefix}{stage}"]
                    + ["--fetch-max-wait-ms", wait_ms, *extra],
                )
        roles.start(["router", *(["workers"] * workers_processes), "sink"])
        try:
            say("warming up (group joins)")
            for _, stage_prefix, _ in floors:
                await measure_pipeline(
                    bootstrap,
                    prefix,
                    warmup,
                    20,
                    timeout_s=90,
                    stage=f"{stage_prefix}.",
                    embedded=embedded,
                )
            await measure_pipeline(bootstrap, prefix, warmup, 20, timeout_s=90, embedded=embedded)
            roles.check()
            for rate in rates:
                run = await _one_rate(
                    bootstrap,
                    prefix,
                    sim.url,
                    n,
                    rate,
                    (roles, floor, broker),
                    say,
                    provider_latency_ms,
                    floor_txn,
                )
                runs.append(run | {"provider_latency_ms": provider_latency_ms})
        finally:
            roles.stop()
            for processes, _, _ in floors:
                processes.stop()
    if embedded:
        for run in runs:
            run["note"] = "EMBEDDED broker: not representative; use Apache Kafka for figures"
    if len(runs) == 1:
        return runs[0]
    return {"runs": runs, "overload": overload(runs)}


def _requests(prefix: str, tag: str, n: int, seed: int) -> list[RouteRequest]:
    return [
        r.model_copy(update={"id": f"{prefix}{tag}{i}"})
        for i, r in enumerate(demo_requests(n, seed=seed))
    ]


async def _one_rate(
    bootstrap: str,
    prefix: str,
    simulator_url: str,
    n: int,
    rate: float,
    processes: tuple[RoleProcesses, RoleProcesses, BrokerClock],
    say: Callable[[str], None],
    latency: float,
    floor_txn: RoleProcesses | None = None,
) -> dict[str, Any]:
    """Baseline, floor(s) and tierline at one rate; overhead = latency - the provider's
    `latency` (the floor calls no provider: its overhead is its whole latency). The
    broker's CPU is reported apart from the totals, for the floors and tierline alike."""
    roles, floor, broker = processes
    tag = f"r{rate:g}-"
    say(f"baseline: {n} direct calls at {rate}/s")
    direct = await measure_direct(simulator_url, _requests(prefix, tag + "d", n, 3), rate)
    say(f"floor: {n} messages at {rate}/s through two bare aiokafka stages")
    bare = await _measure_floor(bootstrap, prefix, n, rate, floor, broker, FLOOR, tag + "f")
    bare_txn = None
    if floor_txn is not None:
        say(f"transactional floor: {n} messages at {rate}/s, each stage exactly once")
        bare_txn = await _measure_floor(
            bootstrap, prefix, n, rate, floor_txn, broker, FLOOR_TXN, tag + "x"
        )
    say(f"tierline: {n} requests at {rate}/s through Kafka")
    before, broker_before = roles.cpu(), broker.seconds()
    piped = await measure_pipeline(
        bootstrap,
        prefix,
        _requests(prefix, tag + "t", n, 3),
        rate,
        n / rate + 60,
        embedded=roles.embedded,
    )
    roles.check()
    tierline_cpu = _per_answer(before, roles.cpu(), len(piped.ids))
    tierline_broker = broker.per_answer(broker_before, len(piped.ids))
    result: dict[str, Any] = {
        "rate": rate,
        "requests": n,
        "throughput_rps": piped.throughput_rps,
        "overhead_ms": piped.overhead(latency),
        "lost": piped.lost,
        "duplicates": piped.duplicates,
        "errors": piped.errors,
        "cpu_ms_per_request": tierline_cpu,
        "broker_cpu_ms_per_request": tierline_broker,
        "floor": bare,
        "baseline": {
            "throughput_rps": direct.throughput_rps,
            "overhead_ms": direct.overhead(latency),
            "lost": direct.lost,
            "errors": direct.errors,
            "cpu_ms_per_call": _per_call(direct),
        },
    }
    result["vs_floor"] = _ratios(result)
    if bare_txn is not None:
        result["floor_transactional"] = bare_txn
        result["vs_floor_transactional"] = _ratios(result, "floor_transactional")
    same_work = _same_work(result)
    if same_work is not None:
        result["floor_same_work"], result["vs_floor_same_work"] = same_work
    return result


def _per_call(direct: Measurement) -> float | None:
    """The direct baseline's client CPU milliseconds per answered call."""
    answered = len(direct.ids)
    if direct.cpu_s is None or answered == 0:
        return None
    return round(direct.cpu_s * 1000 / answered, 3)


def _same_work(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float | None]] | None:
    """The floor for the same work as tierline's: the floor of its guarantee (the
    transactional one where measured) plus one direct provider call's client CPU. The
    floors call no provider, so their CPU alone leaves out the HTTP call every request
    makes; this is what two bare stages and a bare call cost together, and tierline's
    CPU over it is what routing, serving, billing and recording add."""
    key = "floor_transactional" if "floor_transactional" in result else "floor"
    floor_cpu = result[key]["cpu_ms_per_message"].get("total")
    call_cpu = result["baseline"]["cpu_ms_per_call"]
    if floor_cpu is None or call_cpu is None:
        return None
    cpu = round(floor_cpu + call_cpu, 3)
    floor = {"of": f"{key} + baseline call", "cpu_ms_per_request": cpu}
    return floor, {"cpu": _ratio(result["cpu_ms_per_request"].get("total"), cpu)}


def overload(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Whether throughput levels off past saturation: the peak throughput of a sweep, and
    the throughput at its highest offered rate as a share of that peak (the issue's bar:
    >= 0.9 at twice the sustainable rate). None for fewer than two rates."""
    if len(runs) < 2:
        return None
    peak = max(run["throughput_rps"] for run in runs)
    top = max(runs, key=lambda run: run["rate"])
    share = round(top["throughput_rps"] / peak, 3) if peak else 0.0
    return {
        "peak_rps": peak,
        "top_rate": top["rate"],
        "top_rps": top["throughput_rps"],
        "top_vs_peak": share,
    }


async def _measure_floor(
    bootstrap: str,
    prefix: str,
    n: int,
    rate: float,
    processes: RoleProcesses,
    broker: BrokerClock,
    stage_prefix: str,
    tag: str,
) -> dict[str, Any]:
    """One floor's figures at `rate`: throughput, overhead, lost, CPU of its stages and of
    the broker per message."""
    before, broker_before = processes.cpu(), broker.seconds()
    measured = await measure_pipeline(
        bootstrap,
        prefix,
        _requests(prefix, tag, n, 3),
        rate,
        n / rate + 60,
        stage=f"{stage_prefix}.",
        embedded=processes.embedded,
    )
    return {
        "throughput_rps": measured.throughput_rps,
        "overhead_ms": measured.overhead(0.0),
        "lost": measured.lost,
        "cpu_ms_per_message": _per_answer(before, processes.cpu(), len(measured.ids)),
        "broker_cpu_ms_per_message": broker.per_answer(broker_before, len(measured.ids)),
    }


@dataclass(frozen=True)
class BrokerClock:
    """The CPU clock of the Kafka broker when it runs on this machine (found by the port it
    listens on), so the bench can charge the broker's work per request too."""

    pid: int | None
    where: str

    @classmethod
    def near(cls, bootstrap: str, embedded: bool) -> BrokerClock:
        first = bootstrap.split(",")[0]
        host, _, port = first.rpartition(":")
        if embedded or host not in ("127.0.0.1", "localhost", "::1", "[::1]") or not port.isdigit():
            return cls(None, first)
        return cls(listening_pid(int(port)), first)

    def describe(self) -> str:
        if self.pid is None:
            return f"broker {self.where}: not a local process of this user; its CPU is not measured"
        return f"broker {self.where}: local pid {self.pid}; its CPU is measured apart"

    def seconds(self) -> float | None:
        return None if self.pid is None else cpu_seconds(self.pid)

    def per_answer(self, before: float | None, answered: int) -> float | None:
        """Broker CPU milliseconds per answered message since `before`; None if unmeasured."""
        after = self.seconds()
        if before is None or after is None or answered == 0:
            return None
        return round((after - before) * 1000 / answered, 3)


def _per_answer(
    before: dict[str, float], after: dict[str, float], answered: int
) -> dict[str, float]:
    """CPU milliseconds per answered message, per role and in total."""
    if answered == 0:
        return {}
    used = {role: (after[role] - before.get(role, 0.0)) * 1000 / answered for role in after}
    used["total"] = sum(used.values())
    return {role: round(ms, 3) for role, ms in used.items()}


def _ratio(a: float | None, b: float | None) -> float | None:
    """a over b, to two places; None when either is unmeasured (or b is 0)."""
    return round(a / b, 2) if a is not None and b else None


def _ratios(result: dict[str, Any], floor_key: str = "floor") -> dict[str, float | None]:
    """tierline over a floor: latency added (p50, p99) and CPU per message."""
    floor = result[floor_key]
    return {
        "overhead_p50": _ratio(result["overhead_ms"]["p50"], floor["overhead_ms"]["p50"]),
        "overhead_p99": _ratio(result["overhead_ms"]["p99"], floor["overhead_ms"]["p99"]),
        "cpu": _ratio(
            result["cpu_ms_per_request"].get("total"), floor["cpu_ms_per_message"].get("total")
        ),
    }


async def _create_floor_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(f"{prefix}{floor}.{stage}", partitions, 1)
                for floor in (FLOOR, FLOOR_TXN)
                for stage in FLOOR_STAGES
            ]
        )
    finally:
        await admin.close()
