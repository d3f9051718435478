"""The simulator's HTTP server: one aiohttp app that answers as OpenAI, Anthropic and Gemini.

Routes (all on one port):

    POST /v1/chat/completions                  OpenAI Chat Completions
    POST /chat/completions                     (the same, for a base URL without /v1)
    POST /v1/messages                          Anthropic Messages
    POST /v1beta/models/{model}:generateContent   Gemini (also under /v1/models/...)
    GET  /health                               {"status": "ok"}
    GET  /_sim/stats                           request counts, as JSON

Each request: read the body, check auth, parse it with the provider's wire
module, read `[sim:...]` directives, count how often this exact body was seen,
`decide()` the outcome from (seed, body digest, attempt), wait the drawn
latency, and answer in the provider's format. Auth and validation errors and a
429 answer at once; success, drawn or forced errors and garbage answer after the
latency; a hung request waits until `hang_s` passes, the client disconnects or
the server stops (then 504). Every answer carries `x-simulator-outcome`
(ok, error, rate_limit, hang, garbage, refusal or rejected),
`x-simulator-latency-ms` (the wait drawn; 0 for a 429) and `x-simulator-attempt`
headers, which real clients ignore and tests may read.

The hot path is kept cheap for a 1,000 req/s benchmark: no access log, no
pydantic, orjson, one blake2b per body and one per draw.

Three ways to run it:

* `start_simulator()` in the current event loop (tests): returns a
  `RunningSimulator` with `.url`, `.port`, `.stats` and `await .stop()`;
* `run_simulator_forever()` blocking until SIGINT/SIGTERM (the CLI);
* `spawn_simulator()` in a child process (`python -m processors.simulator`) so a
  benchmark does not share the simulator's event loop or core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import orjson
from aiohttp import web

from tierline.processors.simulator.anthropic_wire import AnthropicWire
from tierline.processors.simulator.gemini_wire import GeminiWire
from tierline.processors.simulator.openai_wire import OpenAIWire
from tierline.processors.simulator.profile import (
    Behaviour,
    DirectiveError,
    Reply,
    SimRequest,
    SimulatorProfile,
    body_digest,
    compose_reply,
    decide,
    estimate_tokens,
    parse_directives,
)

__all__ = [
    "ROUTES",
    "READY_PREFIX",
    "RunningSimulator",
    "SimulatorProcess",
    "SimulatorStats",
    "run_simulator_forever",
    "spawn_simulator",
    "start_simulator",
]

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("OpenAI", "POST", "/v1/chat/completions"),
    ("OpenAI", "POST", "/chat/completions"),
    ("Anthropic", "POST", "/v1/messages"),
    ("Gemini", "POST", "/v1beta/models/{model}:generateContent"),
    ("Gemini", "POST", "/v1/models/{model}:generateContent"),
    ("health", "GET", "/health"),
    ("stats", "GET", "/_sim/stats"),
)
READY_PREFIX = "SIMULATOR_READY "
"""The line `python -m processors.simulator` prints once it listens: prefix + URL."""

_MAX_REMEMBERED = 1_000_000
"""Distinct bodies (and cached prefixes) remembered before the memory is reset."""
_GARBAGE_HTML = (
    b"<html><head><title>upstream connect error</title></head><body>"
    b"upstream connect error or disconnect/reset before headers</body></html>"
)


class Wire(Protocol):
    """What each `*_wire` module's class offers the server."""

    name: str
    error_statuses: tuple[int, ...]

    def auth_error(
        self, request: web.Request, invalid_keys: frozenset[str], rid: str
    ) -> web.Response | None: ...

    def bad_json(self, rid: str) -> web.Response: ...

    def invalid(self, message: str, rid: str) -> web.Response: ...

    def parse(self, body: Any, request: web.Request, rid: str) -> SimRequest | web.Response: ...

    def unknown_model(self, model: str, rid: str) -> web.Response: ...

    def context_exceeded(
        self, req: SimRequest, tokens: int, window: int, rid: str
    ) -> web.Response: ...

    def rate_limited(self, model: str, retry_after_s: float, rid: str) -> web.Response: ...

    def error(self, status: int, model: str, rid: str) -> web.Response: ...

    def success(self, req: SimRequest, reply: Reply, rid: str, latency_ms: int) -> web.Response: ...


_OPENAI = OpenAIWire()
_ANTHROPIC = AnthropicWire()
_GEMINI = GeminiWire()


@dataclass
class SimulatorStats:
    """Counts since the server started. `.stats` on a running simulator returns a copy."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    hanging: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)

    def copy(self) -> SimulatorStats:
        return SimulatorStats(
            requests=self.requests,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            hanging=self.hanging,
            by_status=dict(self.by_status),
            by_route=dict(self.by_route),
            by_outcome=dict(self.by_outcome),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "hanging": self.hanging,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_route": dict(self.by_route),
            "by_outcome": dict(self.by_outcome),
        }


class _Simulator:
    """The state behind the routes: the profile, seen-body counters, cached prefixes, stats."""

    def __init__(self, profile: SimulatorProfile) -> None:
        self.profile = profile
        self.stats = SimulatorStats()
        self.stopping = asyncio.Event()
        self._seed = profile.seed
        self._invalid_keys = profile.invalid_api_keys
        self._known = profile.known_models
        self._cache_min = profile.cache_min_tokens
        self._seen: dict[bytes, int] = {}
        self._prefixes: set[bytes] = set()
        self._behaviours: dict[str, Behaviour] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/chat/completions", self.openai)
        app.router.add_post("/v1/messages", self.anthropic)
        app.router.add_post("/v1beta/models/{model}:generateContent", self.gemini)
        app.router.add_post("/v1/models/{model}:generateContent", self.gemini)
        app.router.add_get("/health", self.health)
        app.router.add_get("/_sim/stats", self.stats_route)
        return app

    # ------------------------------------------------------------------ routes

    async def openai(self, request: web.Request) -> web.Response:
        return await self._serve(request, _OPENAI)

    async def anthropic(self, request: web.Request) -> web.Response:
        return await self._serve(request, _ANTHROPIC)

    async def gemini(self, request: web.Request) -> web.Response:
        return await self._serve(request, _GEMINI)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats_route(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.stats.to_dict()), content_type="application/json"
        )

    # ------------------------------------------------------------------ the request

    async def _serve(self, request: web.Request, wire: Wire) -> web.Response:
        stats = self.stats
        stats.requests += 1
        route = wire.name
        stats.by_route[route] = stats.by_route.get(route, 0) + 1
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        status = 0
        try:
            response = await self._answer(request, wire)
            status = response.status
            return response
        except asyncio.CancelledError:
            stats.by_outcome["client_gone"] = stats.by_outcome.get("client_gone", 0) + 1
            raise
        finally:
            stats.in_flight -= 1
            if status:
                stats.by_status[status] = stats.by_status.get(status, 0) + 1

    def _count(self, outcome: str) -> None:
        by = self.stats.by_outcome
        by[outcome] = by.get(outcome, 0) + 1

    def _rejected(self, response: web.Response) -> web.Response:
        self._count("rejected")
        response.headers["x-simulator-outcome"] = "rejected"
        return response

    def _behaviour(self, model: str) -> Behaviour:
        b = self._behaviours.get(model)
        if b is None:
            b = self._behaviours[model] = self.profile.resolve(model)
        return b

    async def _answer(self, request: web.Request, wire: Wire) -> web.Response:
        body = await request.read()
        digest = body_digest(wire.name, body)
        rid = digest.hex()
        response = wire.auth_error(request, self._invalid_keys, rid)
        if response is not None:
            return self._rejected(response)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._rejected(wire.bad_json(rid))
        parsed = wire.parse(data, request, rid)
        if isinstance(parsed, web.Response):
            return self._rejected(parsed)
        req = parsed
        try:
            directives = parse_directives(req.last_user_text)
        except DirectiveError as exc:
            return self._rejected(wire.invalid(str(exc), rid))
        if self._known is not None and req.model not in self._known:
            return self._rejected(wire.unknown_model(req.model, rid))
        behaviour = self._behaviour(req.model)
        input_tokens = estimate_tokens(req.text_chars, req.n_messages)
        window = behaviour.context_window
        if window is not None and input_tokens > window:
            return self._rejected(wire.context_exceeded(req, input_tokens, window, rid))

        seen = self._seen
        if len(seen) >= _MAX_REMEMBERED:
            seen.clear()
        attempt = seen.get(digest, 0)
        seen[digest] = attempt + 1
        oc = decide(behaviour, directives, self._seed, digest, attempt, wire.error_statuses)
        kind = oc.kind
        self._count(kind)
        rid = oc.request_id
        latency_ms = oc.latency_s * 1000.0

        if kind == "rate_limit":
            latency_ms = 0.0
            response = wire.rate_limited(req.model, oc.retry_after_s, rid)
        elif kind == "hang":
            await self._hang()
            response = wire.error(504, req.model, rid)
        elif kind == "error":
            if oc.latency_s > 0.0:
                await asyncio.sleep(oc.latency_s)
            response = wire.error(oc.status, req.model, rid)
        else:
            cache_read, cache_write = self._cache(wire, req, input_tokens)
            reply = compose_reply(req, oc, behaviour, input_tokens, cache_read, cache_write)
            if oc.latency_s > 0.0:
                await asyncio.sleep(oc.latency_s)
            response = wire.success(req, reply, rid, int(latency_ms))
            if kind == "garbage":
                response = _garble(response, oc.garbage)
        headers = response.headers
        headers["x-simulator-outcome"] = kind
        headers["x-simulator-latency-ms"] = f"{latency_ms:.3f}"
        headers["x-simulator-attempt"] = str(oc.attempt)
        return response

    def _cache(self, wire: Wire, req: SimRequest, input_tokens: int) -> tuple[int, int]:
        """(cache read, cache write) tokens: the first message is cached once seen."""
        if input_tokens < self._cache_min or not req.first_text:
            return 0, 0
        explicit = wire.name == "anthropic"
        if explicit and not req.cache_marked:
            return 0, 0
        h = blake2b(req.model.encode(), digest_size=16)
        h.update(b"\0")
        h.update(req.first_text.encode())
        key = h.digest()
        first_tokens = min(estimate_tokens(len(req.first_text), 1), input_tokens)
        if key in self._prefixes:
            return first_tokens, 0
        if len(self._prefixes) >= _MAX_REMEMBERED:
            self._prefixes.clear()
        self._prefixes.add(key)
        return 0, (first_tokens if explicit else 0)

    async def _hang(self) -> None:
        stats = self.stats
        stats.hanging += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.profile.hang_s)
        finally:
            stats.hanging -= 1


def _garble(response: web.Response, kind: str) -> web.Response:
    """A 200 whose body no JSON parser accepts: empty, cut in half, or an HTML page."""
    body = response.body
    if kind == "empty":
        garbage = b""
    elif kind == "truncated" and isinstance(body, bytes):
        garbage = body[: len(body) // 2]
    else:
        garbage = _GARBAGE_HTML
    headers = dict(response.headers)
    headers.pop("Content-Length", None)
    return web.Response(status=200, body=garbage, headers=headers)


# --------------------------------------------------------------------------- in-process


class RunningSimulator:
    """A simulator listening in the current event loop. Stop it with `await .stop()`."""

    def __init__(self, sim: _Simulator, runner: web.AppRunner, host: str, port: int) -> None:
        self._sim = sim
        self._runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        """The base URL, e.g. "http://127.0.0.1:8900" (OpenAI SDKs want url + "/v1")."""

    @property
    def profile(self) -> SimulatorProfile:
        return self._sim.profile

    @property
    def stats(self) -> SimulatorStats:
        """A snapshot of the counts so far."""
        return self._sim.stats.copy()

    async def stop(self) -> None:
        """Release hung requests, stop listening and close every connection."""
        self._sim.stopping.set()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_simulator(
    profile: SimulatorProfile | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = 1.0,
) -> RunningSimulator:
    """Start the simulator in the running event loop; port 0 picks a free port."""
    sim = _Simulator(profile or SimulatorProfile())
    runner = web.AppRunner(
        sim.app(),
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return RunningSimulator(sim, runner, host, int(bound))


def run_simulator_forever(
    profile: SimulatorProfile | None = None,
    host: str = "127.0.0.1",
    port: int = 8900,
    *,
    on_ready: Callable[[RunningSimulator], None] | None = None,
) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM; `on_ready` runs once the port is bound."""

    async def serve() -> None:
        sim = await start_simulator(profile, host, port)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, done.set)
        try:
            if on_ready is not None:
                on_ready(sim)
            await done.wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# --------------------------------------------------------------------------- child process


class SimulatorProcess:
    """A simulator in a child process (`python -m processors.simulator`)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self._proc = proc
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self._proc.pid

    def fetch_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The child's counts, read from `GET /_sim/stats`."""
        with urllib.request.urlopen(f"{self.url}/_sim/stats", timeout=timeout) as r:
            data: dict[str, Any] = orjson.loads(r.read())
            return data

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the child, wait for it (SIGKILL after `timeout`), return its exit code."""
        proc = self._proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spawn_simulator(
    profile: SimulatorProfile | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 15.0,
) -> SimulatorProcess:
    """Start the simulator in its own process and wait until it listens (POSIX only)."""
    profile = profile or SimulatorProfile()
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [
        sys.executable,
        "-m",
        "tierline.processors.simulator",
        "--host",
        host,
        "--port",
        str(port),
        "--profile-json",
        profile.model_dump_json(),
        "--exit-with-parent",
    ]
    # its own session: a Ctrl-C meant for the parent must not stop the simulator before the
    # parent has finished its in-flight calls; the parent stops it (and --exit-with-parent)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    loop_deadline = time.monotonic() + startup_timeout
    buf = b""
    while b"\n" not in buf:
        remaining = loop_deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"simulator did not start within {startup_timeout} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                code = proc.wait()
                raise RuntimeError(f"simulator exited with code {code} before it was ready")
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode().strip()
    if not line.startswith(READY_PREFIX):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"unexpected first line from the simulator: {line!r}")
    return SimulatorProcess(proc, line[len(READY_PREFIX) :])
