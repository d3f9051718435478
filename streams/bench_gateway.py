"""`tierline bench --gateway`: what the OpenAI-compatible gateway adds over calling the
provider directly, side by side in one run.

One simulator (its latency fixed at L ms), tierline's roles in their own processes (router,
workers, sink, as `tierline bench` runs them, plus `tierline run --role gateway` on a free
loopback port and a key generated for the run), and at each rate two open-loop passes of
the same request bodies, back to back:

- direct:  `POST /v1/chat/completions` straight to the simulator's OpenAI route, the
  floor: what calling the provider costs;
- gateway: the same bodies to the gateway's `POST /v1/chat/completions`, with the model
  pinned to the same OpenAI model (`gpt-4.1-nano`), so the provider and its wire format
  are the direct call's; the answer goes gateway -> Kafka -> router -> worker ->
  simulator -> Kafka -> gateway.

Then, at the same rate, two more open-loop passes of streamed calls (`"stream": true`,
the first `stream_requests` bodies, default min(n, 300)): direct to the simulator,
which sends its first content chunk after L ms and the next every `stream_chunk_ms`, and
through the gateway, which relays each chunk the worker publishes as OpenAI's
`chat.completion.chunk` events, then `data: [DONE]`.

Each call is timed in this process, from the request handed to the HTTP client to its
whole answer read, with one monotonic clock and one shared client (`provider_client`, an
httpx `AsyncClient` on aiohttp's pool) for both paths. A streamed call is read with
`client.stream` as its bytes arrive (`EventScan`): its time to first token (TTFT) is the
time to the first event whose `choices[0].delta.content` is not empty (the role-only
opening chunk carries none: it is not what a user sees), its total the time to
`[DONE]`; it counts as answered only with a content event and `[DONE]`, and without an
`error` event. Per rate: sent, ok, errors, p50/p95/p99 of each path, and overhead =
gateway - direct at p50 and p99, in ms and as the ratio gateway / direct; the same for
the streamed calls' TTFT (`ttft_ms`), with their counts and times to `[DONE]`
(`streamed`). Speed is measured here, never asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from tierline.processors.providers.http_client import ProviderClient, provider_client
from tierline.processors.simulator import SimulatorProfile, spawn_simulator
from tierline.streams.bench import RoleProcesses, _per_answer
from tierline.streams.config import KafkaSettings
from tierline.streams.topics import ensure_topics
from tierline.streams.workload import demo_requests

#: the model both paths ask for: an OpenAI catalog model, so the gateway's answer comes
#: from the same simulated provider, in the same wire format, as the direct call's
MODEL = "gpt-4.1-nano"
#: the tenant the run's generated API key speaks for
TENANT = "bench"
#: streamed calls per rate each way when not told: at most this many
DEFAULT_STREAM_REQUESTS = 300
#: what the human output says when no streamed calls were asked for
TTFT_NOT_MEASURED = "not measured (no streamed calls)"
#: how long one HTTP call may take before it counts as an error
CALL_TIMEOUT_S = 60.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ANNOUNCED = re.compile(r"gateway: OpenAI API at (http://\S+/v1)")


# ------------------------------------------------------------------ the arithmetic


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99 of `values` in ms (2 decimals), by the rule `tierline bench` uses (the
    value at index floor(q * n) of the sorted list); None for each when there are none."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None}

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)}


def overhead(
    direct: Mapping[str, float | None], gateway: Mapping[str, float | None]
) -> dict[str, float | None]:
    """What the gateway adds at p50 and p99: gateway - direct in ms, and gateway / direct;
    None where a side has no figure (or the direct figure is 0, for the ratio)."""
    out: dict[str, float | None] = {}
    for q in ("p50", "p99"):
        d, g = direct.get(q), gateway.get(q)
        out[f"{q}_ms"] = round(g - d, 2) if d is not None and g is not None else None
        out[f"{q}_ratio"] = round(g / d, 2) if d and g is not None else None
    return out


def schedule(n: int, rate: float) -> list[float]:
    """When each of `n` calls is due, in seconds from the start, at `rate` per second
    (open loop: a call is due at its time whether or not earlier ones were answered)."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    return [i / rate for i in range(n)]


async def paced(
    n: int,
    rate: float,
    send: Callable[[int], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Call `send(i)` for i in 0..n-1 at its time in `schedule(n, rate)`; a late call is
    sent at once (catching up), never skipped. `send` starts the call and returns."""
    start = clock()
    for i, due in enumerate(schedule(n, rate)):
        delay = start + due - clock()
        if delay > 0:
            await sleep(delay)
        send(i)


class EventScan:
    """An OpenAI chat-completions event stream, read as its bytes arrive, split anywhere:
    whether an event with content, `[DONE]`, or a failure (an `error` event, an event
    that is not JSON) has come. Events are framed as server-sent events: `data:` lines
    (their values joined by newlines) up to a blank line; other fields and `:` comments
    are skipped; a line ends with LF or CRLF."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._data: list[bytes] = []
        self.events = 0
        #: an event whose `choices[0].delta.content` is a non-empty string has come
        self.content = False
        #: `data: [DONE]` has come
        self.done = False
        #: what went wrong first, if anything: "error event" or "malformed event"
        self.failure: str | None = None

    def feed(self, piece: bytes) -> bool:
        """Read `piece`; True when it completed the stream's first event with content."""
        had = self.content
        self._pending += piece
        start = 0
        while (end := self._pending.find(b"\n", start)) >= 0:
            line = bytes(self._pending[start:end])
            self._line(line[:-1] if line.endswith(b"\r") else line)
            start = end + 1
        del self._pending[:start]
        return self.content and not had

    @property
    def answered(self) -> bool:
        """The stream is a whole answer: content, then `[DONE]`, and nothing failed."""
        return self.content and self.done and self.failure is None

    def _line(self, line: bytes) -> None:
        if not line:
            if self._data:
                data, self._data = b"\n".join(self._data), []
                self._event(data)
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)

    def _event(self, data: bytes) -> None:
        self.events += 1
        if data == b"[DONE]":
            self.done = True
            return
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.failure = self.failure or "malformed event"
            return
        if not isinstance(body, dict):
            self.failure = self.failure or "malformed event"
        elif "error" in body:
            self.failure = self.failure or "error event"
        elif not self.content:
            self.content = _has_content(body)


def _has_content(chunk: dict[str, Any]) -> bool:
    """Whether a `chat.completion.chunk`'s first choice's delta carries text."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return isinstance(content, str) and content != ""


def announced_url(log_text: str) -> str | None:
    """The gateway's base URL as its process logs it (`gateway: OpenAI API at <url>`)."""
    found = _ANNOUNCED.search(log_text)
    return found.group(1) if found else None


# ------------------------------------------------------------------ one path


@dataclass
class PathResult:
    """One pass of calls: how many were sent, answered 200, and how long each took."""

    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> dict[str, Any]:
        span = self.finished - self.started
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors.most_common(5)),
            "throughput_rps": round(self.ok / span, 1) if span > 0 else 0.0,
            "latency_ms": percentiles(self.latencies_ms),
        }


@dataclass
class StreamResult(PathResult):
    """One pass of streamed calls: `latencies_ms` is each answered call's time to
    `[DONE]`, `ttfts_ms` (in the same order) its time to the first content event."""

    ttfts_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        figures = super().summary()
        del figures["latency_ms"]
        return figures | {
            "ttft_ms": percentiles(self.ttfts_ms),
            "total_ms": percentiles(self.latencies_ms),
        }


async def measure(
    client: ProviderClient,
    url: str,
    bodies: list[bytes],
    rate: float,
    headers: list[dict[str, str]],
) -> PathResult:
    """POST each body, with its headers, to `url` at `rate` (open loop). A call is bounded
    by the client's `CALL_TIMEOUT_S` (and the gateway's own wait, the same), so a pass
    ends about len(bodies) / rate + that at most; a call that fails counts as an error."""
    result = PathResult(sent=len(bodies))
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        t0 = time.monotonic()
        try:
            reply = await client.post(url, content=bodies[i], headers=headers[i])
        except httpx.HTTPError as exc:
            result.errors[type(exc).__name__] += 1
            return
        finally:
            result.finished = time.monotonic()
        if reply.status_code == 200:
            result.latencies_ms.append((result.finished - t0) * 1000)
        else:
            result.errors[str(reply.status_code)] += 1

    def send(i: int) -> None:
        tasks.append(asyncio.create_task(one(i)))

    result.started = time.monotonic()
    await paced(len(bodies), rate, send)
    await asyncio.gather(*tasks)
    return result


async def measure_stream(
    client: ProviderClient,
    url: str,
    bodies: list[bytes],
    rate: float,
    headers: list[dict[str, str]],
) -> StreamResult:
    """POST each streamed body, with its headers, to `url` at `rate` (open loop, as
    `measure`), reading each answer as it arrives: its time to the first content event
    and to `[DONE]`. A call is bounded as a whole by `CALL_TIMEOUT_S`; one that fails,
    or whose stream is not a whole answer (`EventScan.answered`), counts as an error."""
    result = StreamResult(sent=len(bodies))
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        scan = EventScan()
        t0 = time.monotonic()
        first = done = 0.0
        try:
            async with (
                asyncio.timeout(CALL_TIMEOUT_S),
                client.stream("POST", url, content=bodies[i], headers=headers[i]) as reply,
            ):
                if reply.status_code != 200:
                    await reply.aread()
                    result.errors[str(reply.status_code)] += 1
                    return
                # read to the end (the server closes the answer right after [DONE]), so
                # the connection goes back to the pool
                async for piece in reply.aiter_bytes():
                    now, was_done = time.monotonic(), scan.done
                    if scan.feed(piece):
                        first = now
                    if scan.done and not was_done:
                        done = now
        except (httpx.HTTPError, TimeoutError) as exc:
            result.errors[type(exc).__name__] += 1
            return
        finally:
            result.finished = time.monotonic()
        if scan.answered:
            result.ttfts_ms.append((first - t0) * 1000)
            result.latencies_ms.append((done - t0) * 1000)
        else:
            result.errors[stream_fault(scan)] += 1

    def send(i: int) -> None:
        tasks.append(asyncio.create_task(one(i)))

    result.started = time.monotonic()
    await paced(len(bodies), rate, send)
    await asyncio.gather(*tasks)
    return result


def stream_fault(scan: EventScan) -> str:
    """What kind of error a stream that is not a whole answer counts as."""
    if scan.failure is not None:
        return scan.failure
    if not scan.done:
        return "no [DONE]"
    return "no content"


def chat_bodies(n: int, seed: int, *, stream: bool = False) -> list[bytes]:
    """`n` chat-completions bodies from the demo workload: `MODEL` and the messages, and
    `"stream": true` when `stream`."""
    extra = {"stream": True} if stream else {}
    return [
        orjson.dumps(
            {
                "model": MODEL,
                "messages": [m.model_dump(exclude_none=True) for m in r.messages],
                **extra,
            }
        )
        for r in demo_requests(n, seed=seed)
    ]


# ------------------------------------------------------------------ the run


async def run_gateway_bench(
    bootstrap: str,
    n: int,
    rates: list[float],
    provider_latency_ms: float,
    *,
    workers_processes: int = 1,
    stream_requests: int | None = None,
    embedded: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Direct and through the gateway at each rate, unstreamed then streamed (the first
    `stream_requests` bodies, default min(n, `DEFAULT_STREAM_REQUESTS`); 0 streams
    none); `{"runs": [one result per rate]}`."""
    m = min(n, DEFAULT_STREAM_REQUESTS) if stream_requests is None else stream_requests
    if m < 0:
        raise ValueError(f"stream_requests must be >= 0, got {m}")
    prefix = f"benchgw{uuid.uuid4().hex[:6]}."
    await ensure_topics(KafkaSettings(topic_prefix=prefix), bootstrap)
    profile = SimulatorProfile(seed=7, latency_ms=provider_latency_ms, output_tokens=(16, 64))
    key = f"sk-bench-{secrets.token_hex(16)}"
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="tierline-bench-gateway-") as state_dir,
        spawn_simulator(profile) as sim,
    ):
        say(f"simulator at {sim.url}, provider latency {provider_latency_ms} ms")
        roles = RoleProcesses(bootstrap, prefix, sim.url, state_dir, embedded)
        roles.env.update(gateway_env(key))
        roles.start(["router", *(["workers"] * workers_processes), "sink", "gateway"])
        try:
            gateway = await gateway_url(roles, timeout_s=120)
            say(f"gateway at {gateway}")
            async with provider_client(2000, CALL_TIMEOUT_S) as client:
                direct_url = f"{sim.url}/v1/chat/completions"
                gateway_chat = f"{gateway}/chat/completions"
                direct_headers = {
                    "authorization": "Bearer sim-key",
                    "content-type": "application/json",
                }
                say("warming up (group joins)")
                await warm_up(client, gateway_chat, key, prefix, roles, timeout_s=120)
                for rate in rates:
                    tag = f"{prefix}r{rate:g}-"
                    bodies = chat_bodies(n, seed=3)
                    streamed = chat_bodies(m, seed=3, stream=True)
                    say(f"direct: {n} calls at {rate}/s to the simulator")
                    direct = await measure(client, direct_url, bodies, rate, [direct_headers] * n)
                    say(f"gateway: the same {n} calls at {rate}/s through the gateway")
                    before = roles.cpu()
                    through = await measure(
                        client,
                        gateway_chat,
                        bodies,
                        rate,
                        [gateway_headers(key, f"{tag}{i}") for i in range(n)],
                    )
                    roles.check()
                    cpu = _per_answer(before, roles.cpu(), through.ok)
                    direct_s = through_s = None
                    if m:
                        say(f"direct, streamed: {m} calls at {rate}/s to the simulator")
                        direct_s = await measure_stream(
                            client, direct_url, streamed, rate, [direct_headers] * m
                        )
                        say(f"gateway, streamed: the same {m} calls at {rate}/s")
                        through_s = await measure_stream(
                            client,
                            gateway_chat,
                            streamed,
                            rate,
                            [gateway_headers(key, f"{tag}s{i}") for i in range(m)],
                        )
                        roles.check()
                    runs.append(
                        rate_result(
                            rate, n, provider_latency_ms, direct, through, direct_s, through_s
                        )
                        | {"cpu_ms_per_request": cpu}
                    )
        finally:
            roles.stop()
    if embedded:
        for run in runs:
            run["note"] = "EMBEDDED broker: not representative; use Apache Kafka for figures"
    return {"runs": runs}


def rate_result(
    rate: float,
    n: int,
    provider_latency_ms: float,
    direct: PathResult,
    through: PathResult,
    direct_streamed: StreamResult | None = None,
    through_streamed: StreamResult | None = None,
) -> dict[str, Any]:
    """One rate's figures: both paths and the gateway's overhead; with streamed passes,
    `ttft_ms` (each path's TTFT p50/p95/p99 and the gateway's TTFT overhead) and
    `streamed` (each streamed path's counts, TTFT and time to `[DONE]`); without, both
    None."""
    d, g = direct.summary(), through.summary()
    result: dict[str, Any] = {
        "rate": rate,
        "requests": n,
        "model": MODEL,
        "provider_latency_ms": provider_latency_ms,
        "direct": d,
        "gateway": g,
        "overhead": overhead(d["latency_ms"], g["latency_ms"]),
        "ttft_ms": None,
        "streamed": None,
    }
    if direct_streamed is not None and through_streamed is not None:
        ds, gs = direct_streamed.summary(), through_streamed.summary()
        result["ttft_ms"] = {
            "direct": ds["ttft_ms"],
            "gateway": gs["ttft_ms"],
            "overhead": overhead(ds["ttft_ms"], gs["ttft_ms"]),
        }
        result["streamed"] = {"requests": direct_streamed.sent, "direct": ds, "gateway": gs}
    return result


def gateway_env(key: str) -> dict[str, str]:
    """The gateway role's settings: loopback only, any free port (it logs which), the
    run's key (as its digest) for the bench tenant, and a bounded wait per call."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return {
        "TIERLINE_GATEWAY_HTTP_HOST": "127.0.0.1",
        "TIERLINE_GATEWAY_HTTP_PORT": "0",
        "TIERLINE_HTTP_PORT": "0",  # `tierline run --http-port`'s variable, if set outside
        "TIERLINE_GATEWAY_KEYS": orjson.dumps({f"sha256:{digest}": TENANT}).decode(),
        "TIERLINE_GATEWAY_TIMEOUT_S": str(CALL_TIMEOUT_S),
    }


def gateway_headers(key: str, request_id: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {key}",
        "content-type": "application/json",
        "idempotency-key": request_id,
    }


async def gateway_url(roles: RoleProcesses, timeout_s: float) -> str:
    """The base URL the gateway process logged, once it serves; a loopback URL only."""
    log = os.path.join(roles.state_dir, "gateway.0.log")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        roles.check()
        url = announced_url(await asyncio.to_thread(Path(log).read_text, errors="replace"))
        if url is not None:
            host = urlsplit(url).hostname
            if host not in LOOPBACK:
                raise RuntimeError(f"the gateway serves on {host}, not a loopback address")
            return url
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the gateway did not start within {timeout_s:g}s; its log: {log}")


async def warm_up(
    client: ProviderClient,
    url: str,
    key: str,
    prefix: str,
    roles: RoleProcesses,
    timeout_s: float,
) -> None:
    """One call at a time until one is answered (the router and workers have joined their
    groups), then 20 at 20/s, and 10 streamed at 20/s (the chunks' topic in use); an
    error after `timeout_s` says where the logs are."""
    body = chat_bodies(1, seed=4)[0]
    deadline = time.monotonic() + timeout_s
    for attempt in range(10_000):
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"no answer through the gateway in {timeout_s:g}s; logs in {roles.state_dir}"
            )
        roles.check()
        try:
            reply = await client.post(
                url, content=body, headers=gateway_headers(key, f"{prefix}warm{attempt}")
            )
            if reply.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    await measure(
        client,
        url,
        chat_bodies(20, seed=4),
        20,
        [gateway_headers(key, f"{prefix}warm-{i}") for i in range(20)],
    )
    await measure_stream(
        client,
        url,
        chat_bodies(10, seed=4, stream=True),
        20,
        [gateway_headers(key, f"{prefix}warm-s{i}") for i in range(10)],
    )


# ------------------------------------------------------------------ the human output


def describe(result: Mapping[str, Any]) -> list[str]:
    """Lines for a terminal: per rate, both paths and the overhead, unstreamed, then the
    streamed calls' TTFT and time to `[DONE]` both ways and the TTFT overhead."""

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:,.1f}"

    def ratio(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}x"

    lines: list[str] = []
    for run in result["runs"]:
        lines.append(
            f"rate {run['rate']:g}/s: {run['requests']} calls each way, back to back "
            f"(model {run['model']}, provider latency {run['provider_latency_ms']:g} ms)"
        )
        for name in ("direct", "gateway"):
            p = run[name]
            lat = p["latency_ms"]
            kinds = f" {p['error_kinds']}" if p["errors"] else ""
            lines.append(
                f"  {name:<8} sent {p['sent']} ok {p['ok']} errors {p['errors']}{kinds}  "
                f"p50 {ms(lat['p50'])} p95 {ms(lat['p95'])} p99 {ms(lat['p99'])} ms  "
                f"({p['throughput_rps']} rps)"
            )
        o = run["overhead"]
        lines.append(
            f"  overhead p50 {ms(o['p50_ms'])} ms ({ratio(o['p50_ratio'])})  "
            f"p99 {ms(o['p99_ms'])} ms ({ratio(o['p99_ratio'])})"
        )
        cpu = run.get("cpu_ms_per_request") or {}
        if cpu:
            parts = ", ".join(f"{role} {v}" for role, v in cpu.items() if role != "total")
            lines.append(f"  CPU ms per gateway call: {cpu['total']} ({parts})")
        streamed, ttft = run.get("streamed"), run.get("ttft_ms")
        if not streamed or not ttft:
            lines.append(f"  TTFT: {TTFT_NOT_MEASURED}")
        else:
            lines.append(
                f"  streamed: {streamed['requests']} calls each way (stream: true), "
                "TTFT = time to the first content event"
            )
            for name in ("direct", "gateway"):
                p = streamed[name]
                t, total = p["ttft_ms"], p["total_ms"]
                kinds = f" {p['error_kinds']}" if p["errors"] else ""
                lines.append(
                    f"  {name:<8} sent {p['sent']} ok {p['ok']} errors {p['errors']}{kinds}  "
                    f"TTFT p50 {ms(t['p50'])} p95 {ms(t['p95'])} p99 {ms(t['p99'])} ms  "
                    f"to [DONE] p50 {ms(total['p50'])} p99 {ms(total['p99'])} ms"
                )
            o = ttft["overhead"]
            lines.append(
                f"  TTFT overhead p50 {ms(o['p50_ms'])} ms ({ratio(o['p50_ratio'])})  "
                f"p99 {ms(o['p99_ms'])} ms ({ratio(o['p99_ratio'])})"
            )
        if run.get("note"):
            lines.append(f"  note: {run['note']}")
    return lines
