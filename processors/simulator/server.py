"""The simulator's HTTP server: one aiohttp app that answers as OpenAI, Anthropic and Gemini.

Routes (all on one port):

    POST /v1/chat/completions                  OpenAI Chat Completions
    POST /chat/completions                     (the same, for a base URL without /v1)
    POST /v1/messages                          Anthropic Messages
    POST /v1beta/models/{model}:generateContent   Gemini (also under /v1/models/...)
    GET  /health                               {"status": "ok"}
    GET  /_sim/stats                           request counts, as JSON

Each request: read the body, check auth and parse it with the provider's wire
module, read `[sim:...]` directives, count how often this exact body was seen,
`decide()` its fate from (seed, body digest, attempt), wait the drawn
latency, and answer in the provider's format. Auth and validation errors and a
429 answer at once; success, drawn or forced errors and garbage answer after the
latency; a hung request waits until `hang_s` passes, the client disconnects or
the server stops (then 504). Every answer carries `x-simulator-outcome`
(ok, error, rate_limit, hang, garbage, refusal or rejected),
`x-simulator-latency-ms` (the wait drawn; 0 for a 429) and `x-simulator-attempt`
headers, which real clients ignore and tests may read.

The hot path is kept cheap for a 1,000 req/s benchmark: no access log, no
pydantic, orjson, one blake2b per body and one per draw. The ways to run the
server are in `launch`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.anthropic_wire import AnthropicWire
from tierline.processors.simulator.directives import DirectiveError, parse_directives
from tierline.processors.simulator.draw import Behaviour, body_digest, decide
from tierline.processors.simulator.gemini_wire import GeminiWire
from tierline.processors.simulator.knobs import SimulatorProfile
from tierline.processors.simulator.openai_wire import OpenAIWire
from tierline.processors.simulator.replies import compose_reply
from tierline.processors.simulator.request import SimRequest, estimate_tokens
from tierline.processors.simulator.wire import WireFormat

__all__ = ["ROUTES", "SimulatorServer", "SimulatorStats"]

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("OpenAI", "POST", "/v1/chat/completions"),
    ("OpenAI", "POST", "/chat/completions"),
    ("Anthropic", "POST", "/v1/messages"),
    ("Gemini", "POST", "/v1beta/models/{model}:generateContent"),
    ("Gemini", "POST", "/v1/models/{model}:generateContent"),
    ("health", "GET", "/health"),
    ("stats", "GET", "/_sim/stats"),
)
_MAX_REMEMBERED = 1_000_000
"""Distinct bodies (and cached prefixes) remembered before the memory is reset."""
_GARBAGE_HTML = (
    b"<html><head><title>upstream connect error</title></head><body>"
    b"upstream connect error or disconnect/reset before headers</body></html>"
)


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


class SimulatorServer:
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

    async def _serve(self, request: web.Request, wire: WireFormat) -> web.Response:
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

    async def _answer(self, request: web.Request, wire: WireFormat) -> web.Response:
        body = await request.read()
        digest = body_digest(wire.name, body)
        rid = digest.hex()
        parsed = wire.parse_request(request, body, self._invalid_keys, rid)
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
        fate = decide(behaviour, directives, self._seed, digest, attempt, wire.error_statuses)
        kind = fate.kind
        self._count(kind)
        rid = fate.request_id
        latency_ms = fate.latency_s * 1000.0

        if kind == "rate_limit":
            latency_ms = 0.0
            response = wire.rate_limited(req.model, fate.retry_after_s, rid)
        elif kind == "hang":
            await self._hang()
            response = wire.error(504, req.model, rid)
        elif kind == "error":
            if fate.latency_s > 0.0:
                await asyncio.sleep(fate.latency_s)
            response = wire.error(fate.status, req.model, rid)
        else:
            cache_read, cache_write = self._cache(wire, req, input_tokens)
            reply = compose_reply(req, fate, behaviour, input_tokens, cache_read, cache_write)
            if fate.latency_s > 0.0:
                await asyncio.sleep(fate.latency_s)
            response = wire.success(req, reply, rid, int(latency_ms))
            if kind == "garbage":
                response = _garble(response, fate.garbage)
        headers = response.headers
        headers["x-simulator-outcome"] = kind
        headers["x-simulator-latency-ms"] = f"{latency_ms:.3f}"
        headers["x-simulator-attempt"] = str(fate.attempt)
        return response

    def _cache(self, wire: WireFormat, req: SimRequest, input_tokens: int) -> tuple[int, int]:
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
