"""The simulator's HTTP server: one aiohttp app that answers as OpenAI, Anthropic and Gemini.

Routes (all on one port):

    POST /v1/chat/completions                  OpenAI Chat Completions
    POST /chat/completions                     (the same, for a base URL without /v1)
    POST /v1/messages                          Anthropic Messages
    POST /v1beta/models/{model}:generateContent   Gemini (also under /v1/models/...)
    POST /v1beta/models/{model}:streamGenerateContent   Gemini, streamed: `?alt=sse`
                                               for server-sent events, else a JSON
                                               array (also under /v1/models/...)
    GET  /health                               {"status": "ok"}
    GET  /_sim/stats                           request counts, as JSON (and "down")
    POST /_sim/down                            start an outage: JSON body
                                               {"seconds": float | null,
                                                "mode": "reset" | "503"}, both optional
                                               (defaults null and "reset")
    POST /_sim/up                              end the outage
    POST /_sim/models                          change models' knobs while running: JSON
                                               {"<model>": {"latency_ms": 50, ...}}, each
                                               a ModelOverride replacing that model's

The batch APIs, on the same port and with each format's auth (`openai_batch`,
`anthropic_batch`, `gemini_batch` give the shapes):

    POST /v1/files                             OpenAI: upload a JSONL batch input
                                               (multipart: purpose=batch, file)
    GET  /v1/files/{id}                        OpenAI: the file object
    GET  /v1/files/{id}/content                OpenAI: a file's bytes (input, output
                                               or error file of a batch)
    POST /v1/batches                           OpenAI: create a batch over an input file
    GET  /v1/batches/{id}                      OpenAI: the batch (also Gemini's
                                               batches/{id} under /v1, told apart by id)
    POST /v1/batches/{id}/cancel               OpenAI: cancel it
    POST /v1/messages/batches                  Anthropic: create a message batch
    GET  /v1/messages/batches/{id}             Anthropic: the batch
    GET  /v1/messages/batches/{id}/results     Anthropic: its results, JSONL
    POST /v1/messages/batches/{id}/cancel      Anthropic: cancel it
    POST /v1beta/models/{model}:batchGenerateContent   Gemini: create a batch (an
                                               Operation); also under /v1/models/...
    GET  /v1beta/batches/{id}                  Gemini: the Operation, with the answers
                                               once done (also /v1/batches/{id})
    POST /v1beta/batches/{id}:cancel           Gemini: cancel it (also under /v1)

A batch ends `batch_delay_s` after its creation (its status calls say it is in
progress before); the first look after that answers all its items, each exactly
as the synchronous route answers the same body (`answer_item`: the same auth, as
the batch call passed it, the same `decide()` fate from the seed and the item
body's digest, the same reply and error bodies), without the latency wait or the
rate-limit window; `batch_expire_rate` of them, and any that draw a hang, expire
instead. The store and each batch's life are in `batches`, what the three
formats' batch routes share in `batch_desk`.

Each request: read the body, check auth and parse it with the provider's wire
module, read `[sim:...]` directives, check the model's rate limits, count how
often this exact body was seen, `decide()` its fate from (seed, body digest,
attempt), wait the drawn latency, and answer in the provider's format. Auth and
validation errors and a 429 answer at once; success, drawn or forced errors and
garbage answer after the latency; a hung request waits until `hang_s` passes,
the client disconnects or the server stops (then 504). Every answer carries
`x-simulator-outcome` (ok, error, rate_limit, over_limit, hang, garbage,
refusal, rejected or outage), `x-simulator-latency-ms` (the wait drawn; 0 for a
429) and `x-simulator-attempt` headers, which real clients ignore and tests may
read.

Streaming: an OpenAI or Anthropic body with `"stream": true`, or Gemini's
`streamGenerateContent` route, asks for the answer as the format's event stream
(each wire module's docstring gives its events). Its fate is the one the same
request asked unstreamed gets: it is drawn from the digest of the body less
`stream` and `stream_options`, re-encoded as compact JSON in the order sent
(Gemini's body, which has no stream field, as it is): the very bytes tierline's
adapters send unstreamed, so the concatenated deltas are the unstreamed reply's
content and tool calls, with the same usage. Streamed tries of a body count their
attempts apart from its unstreamed tries, so try k of either kind has the same
fate. Auth and validation errors, 429s, drawn or forced errors, hangs and garbage
answer exactly as unstreamed (status and JSON, before any event); a success or a
refusal streams: the first chunk after the drawn latency (the time to first
token), the next every `stream_chunk_ms`, `stream_chunk_tokens` a chunk. A cut
(`stream_cut_rate`, `[sim:stream_cut]`, `draw.cuts`) stops after the first content
chunk without the final events (OpenAI, Gemini: the body ends and the connection
closes; Anthropic: an `overloaded_error` event first). A streamed answer carries
`x-simulator-stream: whole` or `cut`.

Rate limits: a model with `rpm_limit` or `tpm_limit` has a sliding one-minute
window (`limits.RateWindow`). A request over it gets the provider's real 429 at
once, with a Retry-After of the wait until the window has room (outcome
`over_limit`, apart from the `rate_limit` faults `rate_limit_rate` draws); it
takes no draw and no attempt, so the fates of a body's tries do not depend on
how often it was throttled. Every answer of a limited model, 429 or not,
carries the provider's rate-limit headers with the budget left (`limit_headers`
of the wire module: OpenAI's `x-ratelimit-*`, Anthropic's
`anthropic-ratelimit-*`; Gemini has none). A model without a limit sends none.

Outage: after `POST /_sim/down` every provider request is refused until
`POST /_sim/up` or until `seconds` have passed: in mode `reset` the connection
is dropped without any HTTP answer (the client sees a reset or a closed
connection, as when a provider's edge goes away), in mode `503` the wire
format's 503 error answers. Such requests count in `requests`, `by_route`,
`during_outage` and outcome `outage`, and take no draw. The batch routes are
refused the same way (counted in `during_outage` and outcome `outage` only: a
batch call is no model request). `/health` and `/_sim/*` keep answering.

Stats (`SimulatorStats`, `GET /_sim/stats`): `requests` counts model requests,
every call of a synchronous route and every batch item once its batch is
processed, so `by_route`, `by_model`, `by_outcome` (a batch item adds the outcome
`expired`) and `by_status` show what the models were asked, synchronously or
not; a canceled item never reaches a model and is in `batch_items` only. The
batch calls themselves count in `batches` (created, by route), `batch_items`
(items of the batches that run), `batch_items_resubmitted` (items whose custom id
their route had in an earlier batch) and `batch_polls` (status calls). Streamed
requests count in `requests`, `by_route` and `by_model` as any other, and in
`streams` (by route: every request that asked for a stream, whatever its answer)
and `streams_cut` (streams cut short). `with_traceparent` counts the synchronous model
requests that came with a W3C `traceparent` header, and `traceparents` holds the trace
ids (32 hex digits) of the last `TRACE_IDS_KEPT` of them, oldest first: how a test sees
that a trace reached the provider.

The hot path is kept cheap for a 1,000 req/s benchmark: no access log, no
pydantic, orjson, one blake2b per body and one per draw. The ways to run the
server are in `launch`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Literal

import orjson
from aiohttp import web

from tierline.processors.simulator.anthropic_batch import AnthropicBatches
from tierline.processors.simulator.anthropic_wire import AnthropicWire
from tierline.processors.simulator.batch_desk import BatchDesk
from tierline.processors.simulator.batches import EXPIRED, ItemAnswer
from tierline.processors.simulator.directives import DirectiveError, Directives, parse_directives
from tierline.processors.simulator.draw import (
    Behaviour,
    Fate,
    body_digest,
    cuts,
    decide,
    expires,
)
from tierline.processors.simulator.gemini_batch import GeminiBatches
from tierline.processors.simulator.gemini_wire import GeminiWire
from tierline.processors.simulator.knobs import ModelOverride, SimulatorProfile
from tierline.processors.simulator.limits import Admission, RateWindow
from tierline.processors.simulator.openai_batch import OpenAIBatches
from tierline.processors.simulator.openai_wire import OpenAIWire
from tierline.processors.simulator.replies import Reply, compose_reply
from tierline.processors.simulator.request import SimRequest, estimate_tokens
from tierline.processors.simulator.wire import StreamAsk, WireFormat

__all__ = ["OUTAGE_MODES", "ROUTES", "OutageMode", "SimulatorServer", "SimulatorStats"]

OutageMode = Literal["reset", "503"]
"""How an outage refuses a request: drop the connection, or the provider's 503."""
OUTAGE_MODES: tuple[OutageMode, ...] = ("reset", "503")

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("OpenAI", "POST", "/v1/chat/completions"),
    ("OpenAI", "POST", "/chat/completions"),
    ("Anthropic", "POST", "/v1/messages"),
    ("Gemini", "POST", "/v1beta/models/{model}:generateContent"),
    ("Gemini", "POST", "/v1/models/{model}:generateContent"),
    ("Gemini", "POST", "/v1beta/models/{model}:streamGenerateContent"),
    ("Gemini", "POST", "/v1/models/{model}:streamGenerateContent"),
    ("OpenAI", "POST", "/v1/files"),
    ("OpenAI", "GET", "/v1/files/{id}"),
    ("OpenAI", "GET", "/v1/files/{id}/content"),
    ("OpenAI", "POST", "/v1/batches"),
    ("OpenAI", "GET", "/v1/batches/{id}"),
    ("OpenAI", "POST", "/v1/batches/{id}/cancel"),
    ("Anthropic", "POST", "/v1/messages/batches"),
    ("Anthropic", "GET", "/v1/messages/batches/{id}"),
    ("Anthropic", "GET", "/v1/messages/batches/{id}/results"),
    ("Anthropic", "POST", "/v1/messages/batches/{id}/cancel"),
    ("Gemini", "POST", "/v1beta/models/{model}:batchGenerateContent"),
    ("Gemini", "GET", "/v1beta/batches/{id}"),
    ("Gemini", "POST", "/v1beta/batches/{id}:cancel"),
    ("health", "GET", "/health"),
    ("stats", "GET", "/_sim/stats"),
    ("down", "POST", "/_sim/down"),
    ("up", "POST", "/_sim/up"),
)
_MAX_REMEMBERED = 1_000_000
"""Distinct bodies (and cached prefixes) remembered before the memory is reset."""
_STREAMED = b"\x01"
"""Appended to a streamed request's digest in the seen-body counter (a 17-byte key)."""
_ABORT_GRACE_S = 5.0
"""How long a dropped request's handler waits to be cancelled by the lost connection."""
_GARBAGE_HTML = (
    b"<html><head><title>upstream connect error</title></head><body>"
    b"upstream connect error or disconnect/reset before headers</body></html>"
)


_OPENAI = OpenAIWire()
_ANTHROPIC = AnthropicWire()
_GEMINI = GeminiWire()
#: how many of the last trace ids seen the stats keep
TRACE_IDS_KEPT = 100
_HEX = frozenset("0123456789abcdef")


@dataclass
class SimulatorStats:
    """Counts since the server started. `.stats` on a running simulator returns a copy."""

    requests: int = 0
    """Model requests: calls of the synchronous routes, and batch items once processed."""
    in_flight: int = 0
    max_in_flight: int = 0
    hanging: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    """Requests per model name, for every request the simulator parsed a model from
    (so not those refused before: auth, unparseable body, outage); batch items too."""
    during_outage: int = 0
    """Provider calls (synchronous or batch) received while the simulator was down."""
    down: bool = False
    """Whether an outage is on (as of the copy)."""
    batches: dict[str, int] = field(default_factory=dict)
    """Batches created, by route ("openai", "anthropic", "gemini"), failed ones too."""
    batch_items: int = 0
    """Items submitted in the batches that run (not those of a batch that failed)."""
    batch_items_resubmitted: int = 0
    """Items whose (route, custom id) was submitted in an earlier batch."""
    batch_polls: int = 0
    """Status calls on a batch (OpenAI's and Anthropic's retrieve, Gemini's get)."""
    streams: dict[str, int] = field(default_factory=dict)
    """Requests that asked for a streamed answer, by route, whatever they were answered
    (also counted in `requests`, `by_route`, `by_model`); not those an outage refused."""
    streams_cut: int = 0
    """Streamed answers cut after their first content chunk."""
    with_traceparent: int = 0
    """Synchronous model requests that came with a `traceparent` header."""
    traceparents: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=TRACE_IDS_KEPT)
    )
    """The trace ids of the last `TRACE_IDS_KEPT` of them (a malformed header: "")."""

    def copy(self) -> SimulatorStats:
        return SimulatorStats(
            requests=self.requests,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            hanging=self.hanging,
            by_status=dict(self.by_status),
            by_route=dict(self.by_route),
            by_outcome=dict(self.by_outcome),
            by_model=dict(self.by_model),
            during_outage=self.during_outage,
            down=self.down,
            batches=dict(self.batches),
            batch_items=self.batch_items,
            batch_items_resubmitted=self.batch_items_resubmitted,
            batch_polls=self.batch_polls,
            streams=dict(self.streams),
            streams_cut=self.streams_cut,
            with_traceparent=self.with_traceparent,
            traceparents=collections.deque(self.traceparents, maxlen=TRACE_IDS_KEPT),
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
            "by_model": dict(self.by_model),
            "during_outage": self.during_outage,
            "down": self.down,
            "batches": dict(self.batches),
            "batch_items": self.batch_items,
            "batch_items_resubmitted": self.batch_items_resubmitted,
            "batch_polls": self.batch_polls,
            "streams": dict(self.streams),
            "streams_cut": self.streams_cut,
            "with_traceparent": self.with_traceparent,
            "traceparents": list(self.traceparents),
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
        self._windows: dict[str, RateWindow | None] = {}
        self._outage: OutageMode | None = None
        self._outage_until: float | None = None
        self.desk = BatchDesk(self, profile.seed)
        self._openai_batches = OpenAIBatches(self.desk, _OPENAI)
        self._anthropic_batches = AnthropicBatches(self.desk, _ANTHROPIC)
        self._gemini_batches = GeminiBatches(self.desk, _GEMINI)

    @property
    def invalid_keys(self) -> frozenset[str]:
        """The API keys every route refuses as invalid."""
        return self._invalid_keys

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/chat/completions", self.openai)
        app.router.add_post("/v1/messages", self.anthropic)
        app.router.add_post("/v1beta/models/{model}:generateContent", self.gemini)
        app.router.add_post("/v1/models/{model}:generateContent", self.gemini)
        app.router.add_post("/v1beta/models/{model}:streamGenerateContent", self.gemini_stream)
        app.router.add_post("/v1/models/{model}:streamGenerateContent", self.gemini_stream)
        self._add_batch_routes(app)
        app.router.add_get("/health", self.health)
        app.router.add_get("/_sim/stats", self.stats_route)
        app.router.add_post("/_sim/down", self.down_route)
        app.router.add_post("/_sim/up", self.up_route)
        app.router.add_post("/_sim/models", self.models_route)
        return app

    def _add_batch_routes(self, app: web.Application) -> None:
        add_get, add_post = app.router.add_get, app.router.add_post
        openai, anthropic, gemini = (
            self._openai_batches,
            self._anthropic_batches,
            self._gemini_batches,
        )
        add_post("/v1/files", openai.upload)
        add_get("/v1/files/{id}", openai.file)
        add_get("/v1/files/{id}/content", openai.content)
        add_post("/v1/batches", openai.create)
        add_get("/v1/batches/{id}", self._v1_batch)
        add_post("/v1/batches/{id}/cancel", openai.cancel)
        add_post("/v1/messages/batches", anthropic.create)
        add_get("/v1/messages/batches/{id}", anthropic.retrieve)
        add_get("/v1/messages/batches/{id}/results", anthropic.results)
        add_post("/v1/messages/batches/{id}/cancel", anthropic.cancel)
        for version in ("v1beta", "v1"):
            add_post(f"/{version}/models/{{model}}:batchGenerateContent", gemini.create)
            add_post(f"/{version}/batches/{{id}}:cancel", gemini.cancel)
        add_get("/v1beta/batches/{id}", gemini.retrieve)

    async def _v1_batch(self, request: web.Request) -> web.Response:
        """`GET /v1/batches/{id}`: OpenAI's retrieve, or Gemini's under /v1: the batch's own
        route says which; an unknown id is Gemini's when the call carries a Gemini key."""
        batch = self.desk.store.get(request.match_info["id"])
        if batch is not None:
            gemini = batch.route == _GEMINI.name
        else:
            gemini = "x-goog-api-key" in request.headers or "key" in request.query
        if gemini:
            return await self._gemini_batches.retrieve(request)
        return await self._openai_batches.retrieve(request)

    def batch_delay(self, models: Iterable[str]) -> float:
        """How long a batch of these models runs: the slowest model's `batch_delay_s` (the
        profile's when the items name none)."""
        delays = [self._behaviour(m).batch_delay_s for m in models]
        return max(delays) if delays else self.profile.batch_delay_s

    def count_batch(self, route: str, items: int, resubmitted: int) -> None:
        """A new batch of `route` with `items` items (0 for one that failed validation), of
        which `resubmitted` had their custom id in an earlier batch of the route."""
        stats = self.stats
        stats.batches[route] = stats.batches.get(route, 0) + 1
        stats.batch_items += items
        stats.batch_items_resubmitted += resubmitted

    def count_poll(self) -> None:
        self.stats.batch_polls += 1

    async def refusal(self, request: web.Request, wire: WireFormat) -> web.Response | None:
        """The outage's answer to a batch call (the format's 503, or a dropped connection
        raised), or None when no outage is on."""
        if self._outage is None:
            return None
        mode = self.outage()
        return None if mode is None else await self._refuse(request, wire, mode)

    # ------------------------------------------------------------------ outage

    def go_down(self, seconds: float | None = None, mode: OutageMode = "reset") -> None:
        """Refuse every provider request from now on, for `seconds` (None = until `go_up`)."""
        if mode not in OUTAGE_MODES:
            raise ValueError(f"outage mode must be one of {', '.join(OUTAGE_MODES)}")
        if seconds is not None and not seconds >= 0:  # also refuses NaN
            raise ValueError("outage seconds must be >= 0 or None")
        self._outage = mode
        self._outage_until = None if seconds is None else time.monotonic() + seconds
        self.stats.down = True

    def go_up(self) -> None:
        """End the outage, if one is on."""
        self._outage = None
        self._outage_until = None
        self.stats.down = False

    def outage(self) -> OutageMode | None:
        """The mode of the outage in force, or None; an outage past its `seconds` ends here."""
        mode, until = self._outage, self._outage_until
        if mode is not None and until is not None and time.monotonic() >= until:
            self.go_up()
            return None
        return mode

    def snapshot(self) -> SimulatorStats:
        """A copy of the stats, `down` brought up to date."""
        self.outage()
        return self.stats.copy()

    # ------------------------------------------------------------------ routes

    async def openai(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _OPENAI)

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _ANTHROPIC)

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _GEMINI)

    async def gemini_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _GEMINI, routed_stream=True)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats_route(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.snapshot().to_dict()), content_type="application/json"
        )

    async def down_route(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            return _admin_error("the body must be JSON")
        if not isinstance(data, dict):
            return _admin_error('the body must be {"seconds": ..., "mode": ...}')
        seconds = data.get("seconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float)
        ):
            return _admin_error("seconds must be a number or null")
        raw_mode = str(data.get("mode", "reset"))
        mode = next((m for m in OUTAGE_MODES if m == raw_mode), None)
        if mode is None:
            return _admin_error(f"mode must be one of {', '.join(OUTAGE_MODES)}")
        try:
            self.go_down(None if seconds is None else float(seconds), mode)
        except ValueError as exc:
            return _admin_error(str(exc))
        return web.json_response({"down": True, "mode": mode, "seconds": seconds})

    async def models_route(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
            overrides = {str(k): ModelOverride.model_validate(v) for k, v in dict(data).items()}
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _admin_error(f'the body must be {{"<model>": {{knobs}}}}: {exc}')
        self.set_models(overrides)
        return web.json_response({"models": sorted(overrides)})

    def set_models(self, overrides: dict[str, ModelOverride]) -> None:
        """Replace these models' overrides from now on (a slow model recovers, say)."""
        models = {**self.profile.models, **overrides}
        self.profile = self.profile.model_copy(update={"models": models})
        for name in overrides:
            self._behaviours.pop(name, None)
            self._windows.pop(name, None)

    async def up_route(self, request: web.Request) -> web.Response:
        self.go_up()
        return web.json_response({"down": False})

    # ------------------------------------------------------------------ the request

    async def _serve(
        self, request: web.Request, wire: WireFormat, *, routed_stream: bool = False
    ) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        route = wire.name
        stats.by_route[route] = stats.by_route.get(route, 0) + 1
        traceparent = request.headers.get("traceparent")
        if traceparent is not None:
            stats.with_traceparent += 1
            stats.traceparents.append(_trace_id(traceparent))
        if self._outage is not None:
            mode = self.outage()
            if mode is not None:
                return await self._refuse(request, wire, mode)
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        status = 0
        try:
            response = await self._answer(request, wire, routed_stream)
            status = response.status
            return response
        except asyncio.CancelledError:
            stats.by_outcome["client_gone"] = stats.by_outcome.get("client_gone", 0) + 1
            raise
        finally:
            stats.in_flight -= 1
            if status:
                stats.by_status[status] = stats.by_status.get(status, 0) + 1

    async def _refuse(
        self, request: web.Request, wire: WireFormat, mode: OutageMode
    ) -> web.Response:
        """A request during an outage: the wire format's 503, or a dropped connection."""
        stats = self.stats
        stats.during_outage += 1
        self._count("outage")
        if mode == "503":
            rid = body_digest(wire.name, await request.read()).hex()
            response = wire.error(503, request.match_info.get("model", ""), rid)
            response.headers["x-simulator-outcome"] = "outage"
            stats.by_status[503] = stats.by_status.get(503, 0) + 1
            return response
        transport = request.transport
        if transport is not None:
            transport.abort()
        # the lost connection cancels this handler (aiohttp's handler_cancellation), so no
        # answer is ever written; the bounded wait only matters where cancellation is off
        await asyncio.sleep(_ABORT_GRACE_S)
        raise ConnectionResetError("simulated outage: connection dropped")

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

    def _window(self, model: str, behaviour: Behaviour) -> RateWindow | None:
        try:
            return self._windows[model]
        except KeyError:
            rpm, tpm = behaviour.rpm_limit, behaviour.tpm_limit
            window = None if rpm is None and tpm is None else RateWindow(rpm, tpm)
            self._windows[model] = window
            return window

    async def _answer(
        self, request: web.Request, wire: WireFormat, routed_stream: bool
    ) -> web.StreamResponse:
        body = await request.read()
        ask = wire.stream_ask(request, body, routed=routed_stream)
        if ask is None:
            digest = body_digest(wire.name, body)
            seen_key = digest
        else:
            digest = body_digest(wire.name, ask.identity)
            seen_key = digest + _STREAMED  # streamed tries count apart from unstreamed ones
            streams = self.stats.streams
            streams[wire.name] = streams.get(wire.name, 0) + 1
        rid = digest.hex()
        parsed = wire.parse_request(request, body, self._invalid_keys, rid)
        if isinstance(parsed, web.Response):
            return self._rejected(parsed)
        req = parsed
        by_model = self.stats.by_model
        by_model[req.model] = by_model.get(req.model, 0) + 1
        vetted = self._vet(wire, req, rid)
        if isinstance(vetted, web.Response):
            return self._rejected(vetted)
        behaviour, directives, input_tokens = vetted

        seen = self._seen
        if len(seen) >= _MAX_REMEMBERED:
            seen.clear()
        attempt = seen.get(seen_key, 0)

        admission: Admission | None = None
        limiter = self._window(req.model, behaviour)
        if limiter is not None:
            most_out = req.max_tokens if req.max_tokens is not None else behaviour.output_max
            now = time.monotonic()
            admission = limiter.admit(now, input_tokens + most_out)
            if not admission.admitted:
                self._count("over_limit")
                response = wire.rate_limited(
                    req.model, admission.retry_after_s, rid, breach=admission.breach
                )
                headers = response.headers
                headers.update(wire.limit_headers(admission, admission.reset_at - now))
                headers["x-simulator-outcome"] = "over_limit"
                headers["x-simulator-latency-ms"] = "0.000"
                headers["x-simulator-attempt"] = str(attempt)
                return response

        seen[seen_key] = attempt + 1
        fate = decide(behaviour, directives, self._seed, digest, attempt, wire.error_statuses)
        kind = fate.kind
        self._count(kind)
        latency_ms = 0.0 if kind == "rate_limit" else fate.latency_s * 1000.0

        if ask is not None and kind in ("ok", "refusal"):
            cut = cuts(behaviour, directives, self._seed, digest, attempt)
            return await self._stream(
                request, wire, req, fate, behaviour, input_tokens, ask, admission, cut
            )
        if kind == "hang":
            await self._hang()
            response = wire.error(504, req.model, fate.request_id)
        else:
            # rendered before the wait, so a cached prefix counts from when it arrived
            response = self._render(wire, req, fate, behaviour, input_tokens, int(latency_ms))
            if latency_ms > 0.0:
                await asyncio.sleep(fate.latency_s)
        headers = response.headers
        if admission is not None:
            reset_s = max(0.0, admission.reset_at - time.monotonic())
            headers.update(wire.limit_headers(admission, reset_s))
        headers["x-simulator-outcome"] = kind
        headers["x-simulator-latency-ms"] = f"{latency_ms:.3f}"
        headers["x-simulator-attempt"] = str(fate.attempt)
        return response

    def answer_item(self, wire: WireFormat, body: Any, path_model: str) -> ItemAnswer:
        """One batch item, answered as the synchronous route answers the same body.

        The item's identity is its body as compact JSON (`orjson.dumps`, keys in the
        order sent), so a synchronous request of exactly those bytes has the same digest,
        attempt count and fate. It takes no latency wait and no rate-limit window (the
        providers queue batches apart from their per-minute limits); a drawn or forced
        429 is still that item's answer. An item expires when `expires()` says so, or when
        its fate is a hang. It counts as a request of its route and model, like a
        synchronous one.
        """
        digest = body_digest(wire.name, orjson.dumps(body))
        rid = digest.hex()
        stats = self.stats
        stats.requests += 1
        stats.by_route[wire.name] = stats.by_route.get(wire.name, 0) + 1
        parsed = wire.parse_item(body, path_model, rid)
        if isinstance(parsed, web.Response):
            self._count("rejected")
            return self._item(parsed)
        req = parsed
        stats.by_model[req.model] = stats.by_model.get(req.model, 0) + 1
        vetted = self._vet(wire, req, rid)
        if isinstance(vetted, web.Response):
            self._count("rejected")
            return self._item(vetted)
        behaviour, directives, input_tokens = vetted
        seen = self._seen
        if len(seen) >= _MAX_REMEMBERED:
            seen.clear()
        attempt = seen.get(digest, 0)
        seen[digest] = attempt + 1
        if expires(behaviour, self._seed, digest, attempt):
            self._count("expired")
            return EXPIRED
        fate = decide(behaviour, directives, self._seed, digest, attempt, wire.error_statuses)
        if fate.kind == "hang":
            self._count("expired")
            return EXPIRED
        self._count(fate.kind)
        return self._item(self._render(wire, req, fate, behaviour, input_tokens, 0))

    def _vet(
        self, wire: WireFormat, req: SimRequest, rid: str
    ) -> tuple[Behaviour, Directives, int] | web.Response:
        """What the route refuses before any draw (a bad directive, an unknown model, tools
        to a model without them, a prompt over the window), or the request's knobs,
        directives and input tokens."""
        try:
            directives = parse_directives(req.last_user_text)
        except DirectiveError as exc:
            return wire.invalid(str(exc), rid)
        if self._known is not None and req.model not in self._known:
            return wire.unknown_model(req.model, rid)
        behaviour = self._behaviour(req.model)
        if req.tools is not None and not behaviour.tools:
            return wire.tools_unsupported(req.model, rid)
        input_tokens = estimate_tokens(req.text_chars, req.n_messages)
        window = behaviour.context_window
        if window is not None and input_tokens > window:
            return wire.context_exceeded(req, input_tokens, window, rid)
        return behaviour, directives, input_tokens

    def _render(
        self,
        wire: WireFormat,
        req: SimRequest,
        fate: Fate,
        behaviour: Behaviour,
        input_tokens: int,
        latency_ms: int,
    ) -> web.Response:
        """The answer to a drawn fate other than a hang: the 429, the error, or the reply
        (refused or garbled as the fate says)."""
        kind = fate.kind
        rid = fate.request_id
        if kind == "rate_limit":
            return wire.rate_limited(req.model, fate.retry_after_s, rid)
        if kind == "error":
            return wire.error(fate.status, req.model, rid)
        reply = self._reply(wire, req, fate, behaviour, input_tokens)
        response = wire.success(req, reply, rid, latency_ms)
        if kind == "garbage":
            response = _garble(response, fate.garbage)
        return response

    def _reply(
        self, wire: WireFormat, req: SimRequest, fate: Fate, behaviour: Behaviour, input_tokens: int
    ) -> Reply:
        cache_read, cache_write = self._cache(wire, req, input_tokens)
        return compose_reply(req, fate, behaviour, input_tokens, cache_read, cache_write)

    async def _stream(
        self,
        request: web.Request,
        wire: WireFormat,
        req: SimRequest,
        fate: Fate,
        behaviour: Behaviour,
        input_tokens: int,
        ask: StreamAsk,
        admission: Admission | None,
        cut: bool,
    ) -> web.StreamResponse:
        """A success or refusal as the format's stream: the drawn latency, then the first
        write, then one every `stream_chunk_s`; a cut stream is its first write and the
        format's cut tail, on a connection closed after it."""
        rid = fate.request_id
        # composed before the wait, so a cached prefix counts from when it arrived
        reply = self._reply(wire, req, fate, behaviour, input_tokens)
        chunk_chars = 4 * behaviour.stream_chunk_tokens
        writes = wire.stream_writes(req, reply, rid, ask, chunk_chars)
        if cut:
            writes = [writes[0], wire.stream_cut_tail(rid)]
            self.stats.streams_cut += 1
        latency_ms = fate.latency_s * 1000.0
        if latency_ms > 0.0:
            await asyncio.sleep(fate.latency_s)
        response = web.StreamResponse(
            status=200, headers=wire.stream_headers(rid, ask, int(latency_ms))
        )
        headers = response.headers
        if admission is not None:
            reset_s = max(0.0, admission.reset_at - time.monotonic())
            headers.update(wire.limit_headers(admission, reset_s))
        headers["x-simulator-outcome"] = fate.kind
        headers["x-simulator-latency-ms"] = f"{latency_ms:.3f}"
        headers["x-simulator-attempt"] = str(fate.attempt)
        headers["x-simulator-stream"] = "cut" if cut else "whole"
        if cut:
            response.force_close()
        gap = behaviour.stream_chunk_s
        try:
            await response.prepare(request)
            for n, data in enumerate(writes):
                if n and gap > 0.0:
                    await asyncio.sleep(gap)
                if data:
                    await response.write(data)
            await response.write_eof()
        except ConnectionResetError:  # the client left mid-stream (before its cancellation)
            self._count("client_gone")
        return response

    def _item(self, response: web.Response) -> ItemAnswer:
        """A rendered answer as a batch item's: its status and body, with the request id."""
        status = response.status
        by_status = self.stats.by_status
        by_status[status] = by_status.get(status, 0) + 1
        headers = response.headers
        request_id = headers.get("x-request-id") or headers.get("request-id") or ""
        raw = response.body if isinstance(response.body, bytes) else b""
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:  # a garbled body, or OpenAI's HTML 502: as a string
            body = raw.decode("utf-8", "replace")
        return ItemAnswer("answered", status, body, request_id)

    def _cache(self, wire: WireFormat, req: SimRequest, input_tokens: int) -> tuple[int, int]:
        """(cache read, cache write) tokens: the first message is cached once seen; its first
        sighting is a write where the format bills writes (`WireFormat.reports_cache_writes`)."""
        if input_tokens < self._cache_min or not req.first_text:
            return 0, 0
        if wire.explicit_cache and not req.cache_marked:
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
        return 0, (first_tokens if wire.reports_cache_writes(req.model) else 0)

    async def _hang(self) -> None:
        stats = self.stats
        stats.hanging += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.profile.hang_s)
        finally:
            stats.hanging -= 1


def _trace_id(traceparent: str) -> str:
    """The trace id of a `traceparent` (version-traceid-parentid-flags), "" if it has none."""
    parts = traceparent.strip().split("-")
    trace_id = parts[1].lower() if len(parts) >= 4 else ""
    return trace_id if len(trace_id) == 32 and set(trace_id) <= _HEX else ""


def _admin_error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


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
