"""`tierline run --role gateway`: OpenAI's chat-completions API in front of tierline's topics.

    POST /v1/chat/completions   the body becomes a `RouteRequest` (processors.gateway), is
                                produced to `tierline.requests` keyed by tenant, and the
                                call waits for its answer, read from `tierline.responses`
                                (streams.gateway_replies); the answer is a chat.completion
    GET  /v1/models             tierline/auto, tierline/<tier> and the catalog's models
    GET  /v1/models/{model}     one of them

The gateway is one more producer and consumer of the pipeline: it routes nothing and
calls no provider, so durability and billing stay the pipeline's. A call whose answer
is late gets a 504, while its request stays in Kafka and is still answered and
billed. Who calls is the API key's tenant (`[gateway.keys]`); the request id is the
caller's `Idempotency-Key` or `X-Request-Id`, else a new one, and every answer says
it in `X-Request-Id`.

A call with `stream: true` holds its ticket the same way and also listens for the
answer's chunks (`ResponseChunk`, which the workers publish as the provider writes
them): the gateway relays each as a `chat.completion.chunk` event as it comes, then
the finishing chunk from the response and `[DONE]` (`processors.gateway.openai_stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from tierline.processors.gateway.api_keys import KeyTable, bearer_key
from tierline.processors.gateway.hint_headers import header_hints
from tierline.processors.gateway.model_names import choose, model_list
from tierline.processors.gateway.openai_request import (
    parse_body,
    to_route_request,
    wants_usage_chunk,
)
from tierline.processors.gateway.openai_response import answer, tierline_extension
from tierline.processors.gateway.openai_stream import DONE, ChunkWriter, event
from tierline.processors.gateway.request_ids import request_id
from tierline.processors.gateway.statuses import GatewayError, from_pipeline
from tierline.processors.gateway.waiters import Waiters
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.tracing import (
    TIERLINE_MODEL_ASKED,
    TIERLINE_REQUEST_ID,
    TIERLINE_STREAM,
    TIERLINE_TENANT,
    context_from_http,
    kafka_headers,
    tracer,
)
from tierline.schemas import ErrorInfo, ErrorType, RouteRequest, encode
from tierline.streams.config import GatewaySettings
from tierline.streams.metrics import Metrics

log = logging.getLogger("tierline.gateway")

Answer = tuple[int, dict[str, Any], dict[str, str]]
#: a route's handler: the request, and headers that go with its answer whatever it is; a
#: streamed answer is a response already written
Handler = Callable[[web.Request, dict[str, str]], Awaitable[Answer | web.StreamResponse]]
_NO_TYPE = ErrorInfo(type=ErrorType.INTERNAL, message="error without a type")
_CHAT_ROUTE = "/v1/chat/completions"
_CHAT_SPAN_ATTRIBUTES = {"http.request.method": "POST", "http.route": _CHAT_ROUTE}


class Gateway:
    """The HTTP server: authenticates, translates, produces, waits, answers."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        max_body_bytes: int,
        catalog: Catalog,
        producer: AIOKafkaProducer,
        requests_topic: str,
        waiters: Waiters,
        metrics: Metrics,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.max_body_bytes = max_body_bytes
        self.catalog = catalog
        self.producer = producer
        self.requests_topic = requests_topic
        self.waiters = waiters
        self.metrics = metrics
        self.keys = KeyTable.from_config(settings.keys)
        self.anonymous = settings.allow_anonymous_tenant
        self.host = settings.http_host
        self.port = settings.http_port
        #: set when the process stops: new calls get a 503, calls in flight drain
        self.stopping = stopping
        self.started_at = int(time.time())
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL of the OpenAI API, e.g. http://127.0.0.1:8080/v1."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/v1"

    async def start(self) -> None:
        """Bind and serve; a port in use is a `RuntimeError` that says what to set."""
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[self._errors])
        app.router.add_post(_CHAT_ROUTE, self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model:.+}", self._model)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, backlog=1024).start()
        except OSError as err:
            await runner.cleanup()
            if err.errno == errno.EADDRINUSE:
                raise RuntimeError(
                    f"gateway port {self.port} on {self.host} is already in use: set "
                    "--http-port / TIERLINE_HTTP_PORT ([gateway] http_port) to a free port"
                ) from err
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("gateway: serving the OpenAI API on %s", self.url)

    async def stop(self) -> None:
        """Stop serving (a no-op if not started)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ routes

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        # the caller's trace context, if it sent one; the request record carries it on
        with tracer.start_as_current_span(
            f"POST {_CHAT_ROUTE}",
            context=context_from_http(request.headers),
            kind=SpanKind.SERVER,
            attributes=_CHAT_SPAN_ATTRIBUTES,
        ) as span:
            response = await self._respond("chat_completions", request, self._complete)
            if span.is_recording():
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            return response

    async def _models(self, request: web.Request) -> web.StreamResponse:
        async def listing(request: web.Request, echo: dict[str, str]) -> Answer:
            self._tenant(request)
            return 200, model_list(self.catalog, self.started_at), {}

        return await self._respond("models", request, listing)

    async def _model(self, request: web.Request) -> web.StreamResponse:
        async def one(request: web.Request, echo: dict[str, str]) -> Answer:
            self._tenant(request)
            name = request.match_info["model"]
            choose(name, self.catalog)  # 400 model_not_found for any other name
            listed = model_list(self.catalog, self.started_at)["data"]
            return 200, next(m for m in listed if m["id"] == name), {}

        return await self._respond("models", request, one)

    async def _complete(
        self, request: web.Request, echo: dict[str, str]
    ) -> Answer | web.StreamResponse:
        tenant = self._tenant(request)
        rid = echo["X-Request-Id"] = request_id(request.headers)
        if self.stopping.is_set():
            raise GatewayError(503, "the gateway is stopping; call again", "unavailable")
        body = parse_body(await self._body(request))
        routed = to_route_request(
            body,
            request_id=rid,
            tenant=tenant,
            catalog=self.catalog,
            hints=header_hints(request.headers),
        )
        span = get_current_span()
        if span.is_recording():
            model = body.get("model")
            span.set_attributes(
                {
                    TIERLINE_TENANT: tenant,
                    TIERLINE_REQUEST_ID: rid,
                    TIERLINE_MODEL_ASKED: model if isinstance(model, str) else "",
                    TIERLINE_STREAM: routed.params.stream,
                }
            )
        trace_headers = kafka_headers(span)
        if routed.params.stream:
            return await self._stream(request, routed, wants_usage_chunk(body), echo, trace_headers)
        with self._waiting_errors(rid):
            response = await self.waiters.wait(
                tenant, rid, lambda: self._send(routed, trace_headers), self.settings.timeout_s
            )
        return answer(response)

    async def _stream(
        self,
        request: web.Request,
        routed: RouteRequest,
        include_usage: bool,
        echo: dict[str, str],
        trace_headers: tuple[tuple[str, bytes], ...] = (),
    ) -> web.StreamResponse:
        """Relay a streamed answer as server-sent events (`openai_stream`): each chunk as it
        comes, then the response's finishing chunks and `[DONE]`. A failure before the
        first event is an ordinary JSON error answer; after it, an `error` event."""
        tenant, rid = routed.tenant, routed.id
        queue = self.waiters.listen(tenant, rid)
        waiting = asyncio.ensure_future(
            self.waiters.wait(
                tenant, rid, lambda: self._send(routed, trace_headers), self.settings.timeout_s
            )
        )
        writer = ChunkWriter(rid, int(time.time()), include_usage)
        sse: web.StreamResponse | None = None
        serving: str | None = None

        async def open_stream(model: str) -> web.StreamResponse:
            stream = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} | echo
            )
            await stream.prepare(request)
            await stream.write(event(writer.opening(model)))
            return stream

        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                await asyncio.wait({getting, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    chunk = getting.result()
                    serving = serving or chunk.serving
                    if chunk.serving != serving:
                        continue  # a serving a crash cut short, or a second one: not relayed
                    sse = sse or await open_stream(chunk.model)
                    await sse.write(event(writer.piece(chunk)))
                    continue
                getting.cancel()
                break
            with self._waiting_errors(rid):
                response = waiting.result()
            while not queue.empty():  # chunks read in the same poll as the response
                chunk = queue.get_nowait()
                if sse is not None and chunk.serving == serving:
                    await sse.write(event(writer.piece(chunk)))
            if response.status != "ok":
                if sse is None:
                    raise from_pipeline(response.error or _NO_TYPE)
                failure = from_pipeline(response.error or _NO_TYPE)
                await sse.write(event(failure.body() | {"tierline": tierline_extension(response)}))
                return sse
            sse = sse or await open_stream(response.model or "")
            if writer.pieces == 0:
                for whole in writer.whole(response):
                    await sse.write(event(whole))
            for closing in writer.closing(response):
                await sse.write(event(closing))
            await sse.write(DONE)
            return sse
        except GatewayError as failure:
            if sse is None:
                raise
            await sse.write(event(failure.body()))
            return sse
        except ConnectionResetError:
            if sse is None:
                raise
            return sse  # the caller left mid-stream; the answer is still published and billed
        finally:
            self.waiters.unlisten(tenant, rid, queue)
            if not waiting.done():
                waiting.cancel()

    @contextlib.contextmanager
    def _waiting_errors(self, rid: str) -> Iterator[None]:
        """What waiting for an answer may fail with, as the HTTP errors a caller can act on."""
        timeout_s = self.settings.timeout_s
        try:
            yield
        except TimeoutError:
            raise GatewayError(
                504,
                f"no answer within {timeout_s:g}s. The request stays queued and is still "
                f"answered and billed; calling this gateway again with Idempotency-Key {rid} "
                "collects the answer",
                "gateway_timeout",
                retry=False,
            ) from None
        except KafkaError as exc:
            raise GatewayError(
                503, f"could not queue the request ({type(exc).__name__})", "unavailable"
            ) from None
        except ConnectionAbortedError:
            raise GatewayError(
                503,
                "the gateway stopped before the answer came; the request is still answered "
                "and billed",
                "unavailable",
                retry=False,
            ) from None

    # ------------------------------------------------------------------ steps

    def _tenant(self, request: web.Request) -> str:
        """The caller's tenant, from its API key; a 401 that never repeats the key."""
        header = request.headers.get("Authorization")
        if self.anonymous is not None and (header is None or not len(self.keys)):
            return self.anonymous
        key = bearer_key(header)
        tenant = self.keys.tenant_of(key) if key is not None else None
        if tenant is None:
            raise GatewayError(
                401,
                "Incorrect API key provided."
                if key is not None
                else "No API key provided: send the header Authorization: Bearer <key>.",
                "invalid_api_key",
                retry=False,
            )
        return tenant

    async def _body(self, request: web.Request) -> bytes:
        """The body, refused with 413 as soon as it is known to be over the limit."""
        too_large = GatewayError(
            413,
            f"the body is over the gateway's limit of {self.max_body_bytes:,} bytes",
            "payload_too_large",
            retry=False,
        )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise too_large
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None

    async def _send(
        self, routed: RouteRequest, trace_headers: tuple[tuple[str, bytes], ...] = ()
    ) -> None:
        # keyed by tenant, as every producer of tierline.requests: the router's budgets
        # are co-partitioned with the tenant's requests; the trace context in the headers
        await self.producer.send_and_wait(
            self.requests_topic,
            encode(routed),
            key=routed.tenant.encode(),
            headers=list(trace_headers) or None,
        )

    async def _respond(
        self,
        route: str,
        request: web.Request,
        handle: Handler,
    ) -> web.StreamResponse:
        """Run `handle`; answer its result, or its failure in OpenAI's error format."""
        started = time.monotonic()
        echo: dict[str, str] = {}
        self.metrics.gateway_in_flight.inc()
        try:
            result = await handle(request, echo)
            if isinstance(result, web.StreamResponse):  # streamed, answered as it went
                self.metrics.gateway_requests.labels(route, str(result.status)).inc()
                self.metrics.gateway_latency.labels(route).observe(time.monotonic() - started)
                with contextlib.suppress(ConnectionResetError):
                    await result.write_eof()
                return result
            status, body, headers = result
        except GatewayError as refused:
            status, body, headers = refused.status, refused.body(), refused.headers()
        except Exception:
            log.exception("gateway: %s failed", route)
            broken = GatewayError(500, "internal error in tierline's gateway", "internal")
            status, body, headers = broken.status, broken.body(), broken.headers()
        finally:
            self.metrics.gateway_in_flight.dec()
        self.metrics.gateway_requests.labels(route, str(status)).inc()
        self.metrics.gateway_latency.labels(route).observe(time.monotonic() - started)
        return _json(status, body, headers | echo)

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """aiohttp's own refusals (no such route, wrong method) in OpenAI's error format."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status, "invalid")
            message = f"{request.method} {request.path}: {exc.reason}"
            failure = GatewayError(exc.status, message, code)
            self.metrics.gateway_requests.labels("other", str(exc.status)).inc()
            return _json(failure.status, failure.body(), {})


def _json(status: int, body: dict[str, Any], headers: dict[str, str]) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )
