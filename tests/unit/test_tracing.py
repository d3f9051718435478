"""Trace context in and out of Kafka and HTTP headers, and the spans of a candidate walk.

The spans are read from the SDK's `InMemorySpanExporter`, added to the process's tracer
provider through `streams.tracing_setup.start_tracing` (the one global provider a
process may have: the first test to need it installs it, later ones add to it).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from multidict import CIMultiDict
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, SpanKind, StatusCode, get_current_span

from tierline.processors import tracing
from tierline.processors.pricing.catalog import Catalog, load_catalog
from tierline.processors.providers.call import call_model
from tierline.processors.providers.keys import KeyRing
from tierline.processors.providers.registry import adapter_for
from tierline.processors.serving.batch_lane import BatchLane, BatchPolicy
from tierline.processors.serving.walk import Dispatcher
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import OpenBatch, RoutedRequest, RouteRequest, RoutingDecision, Tier
from tierline.streams.config import TracingSettings, load_settings
from tierline.streams.tracing_setup import build_exporter, start_tracing, traces_url

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
async def spans() -> AsyncIterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    installed = start_tracing(TracingSettings(), exporter=exporter, batch=False)
    assert installed.exporting
    yield exporter
    await installed.shutdown()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=7, latency_ms=2, batch_delay_s=0.1))
    yield running
    await running.stop()


def routed(
    text: str,
    candidates: list[str],
    *,
    tier: Tier = Tier.ECONOMY,
    hints: dict[str, str] | None = None,
) -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": "trace-1",
            "tenant": "acme",
            "messages": [{"role": "user", "content": text}],
            "params": {"max_tokens": 48, "temperature": 0.2},
            "hints": hints or {},
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="classification", tier=tier, score=0.2),
        candidates=candidates,
        routed_at=datetime.now(UTC),
    )


async def no_sleep(_: float) -> None:
    return None


def by_name(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def hex_trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


# ------------------------------------------------------------------ carriers


async def test_kafka_headers_round_trip_a_span_and_its_tracestate(
    spans: InMemorySpanExporter,
) -> None:
    incoming = [("x-app", b"1"), ("traceparent", TRACEPARENT.encode()), ("tracestate", b"k=v")]
    parent = tracing.context_from_kafka(incoming)
    with tracing.tracer.start_as_current_span("step", parent) as span:
        headers = tracing.kafka_headers(span)
    names = [name for name, _ in headers]
    assert names == ["traceparent", "tracestate"]
    assert dict(headers)["tracestate"] == b"k=v"
    read = tracing.context_from_kafka(list(headers))
    carried = get_current_span(read).get_span_context()
    assert carried.is_remote and carried.trace_id == int(TRACE_ID, 16)
    assert carried.span_id == span.get_span_context().span_id
    (ended,) = by_name(spans, "step")
    assert ended.parent is not None and f"{ended.parent.span_id:016x}" == PARENT_ID


def test_records_without_a_valid_traceparent_have_no_context() -> None:
    assert tracing.context_from_kafka(None) is tracing.NO_CONTEXT
    assert tracing.context_from_kafka([("x-app", b"1")]) is tracing.NO_CONTEXT
    for bad in (b"garbage", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01", b""):
        context = tracing.context_from_kafka([("traceparent", bad)])
        assert not get_current_span(context).get_span_context().is_valid


async def test_http_headers_round_trip_whatever_the_header_case(
    spans: InMemorySpanExporter,
) -> None:
    for carrier in ({"Traceparent": TRACEPARENT}, CIMultiDict({"TRACEPARENT": TRACEPARENT})):
        context = tracing.context_from_http(carrier)
        assert get_current_span(context).get_span_context().trace_id == int(TRACE_ID, 16)
    assert tracing.context_from_http({"content-type": "x"}) is tracing.NO_CONTEXT
    with tracing.tracer.start_as_current_span("call", tracing.context_from_http(carrier)) as span:
        out = tracing.http_headers()
    assert out == tracing.http_headers(span)
    assert out["traceparent"].split("-")[1:3] == [
        TRACE_ID,
        f"{span.get_span_context().span_id:016x}",
    ]
    assert tracing.http_headers(INVALID_SPAN) == {}


def test_without_a_tracer_the_incoming_context_passes_unchanged() -> None:
    """The API's no-op tracer (what `[tracing] exporter = "none"` leaves): the step's span is
    the incoming context, so the next record and the provider call carry it as it came."""
    incoming = [("traceparent", TRACEPARENT.encode()), ("tracestate", b"k=v")]
    span = NoOpTracer().start_span("route", tracing.context_from_kafka(incoming))
    assert not span.is_recording()
    assert tracing.kafka_headers(span) == tuple(incoming)
    assert tracing.http_headers(span) == {"traceparent": TRACEPARENT, "tracestate": "k=v"}
    # the router's fast path: no span at all, the trace headers relayed as they came
    relayed = tracing.next_headers(INVALID_SPAN, [("x-app", b"1"), *incoming])
    assert relayed == tuple(incoming)
    assert tracing.next_headers(INVALID_SPAN, None) == ()
    # no incoming context, no tracer: nothing is made up
    assert tracing.kafka_headers(NoOpTracer().start_span("route", tracing.NO_CONTEXT)) == ()


def test_with_headers_replaces_an_older_trace_context() -> None:
    new = (("traceparent", b"new"),)
    assert tracing.with_headers(None, new) == new
    assert tracing.with_headers((("a", b"1"), ("TraceParent", b"old")), new) == (("a", b"1"), *new)
    assert tracing.with_headers((("a", b"1"),), ()) == (("a", b"1"),)


async def test_extra_call_headers_never_replace_the_adapters_own() -> None:
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(500, json={"error": {"message": "no"}})

    model = load_catalog().model("gpt-4.1-nano")
    request = routed("hello", ["gpt-4.1-nano"]).request
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(Exception):  # noqa: B017 - the 500 is beside the point
            await call_model(
                client,
                adapter_for("openai"),
                model,
                request,
                "real-key",
                5.0,
                headers={"traceparent": TRACEPARENT, "AUTHORIZATION": "Bearer stolen"},
            )
    (headers,) = seen
    assert headers["traceparent"] == TRACEPARENT
    assert headers["authorization"] == "Bearer real-key"


# ------------------------------------------------------------------ the walk's spans


async def test_each_provider_attempt_is_a_client_span_and_the_provider_sees_its_trace(
    spans: InMemorySpanExporter, sim: RunningSimulator
) -> None:
    catalog = load_catalog().with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        dispatcher = Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), sleep=no_sleep)
        with tracing.tracer.start_as_current_span("serve") as serve:
            outcome = await dispatcher.serve(
                routed("Label: charged twice [sim:fail_first=1]", ["gpt-4.1-nano"])
            )
    assert outcome.response.status == "ok", outcome.response.error
    failed, answered = sorted(by_name(spans, "chat "), key=lambda s: s.start_time or 0)
    for span in (failed, answered):
        assert span.name == "chat gpt-4.1-nano"
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == serve.get_span_context().span_id
        attributes = span.attributes or {}
        assert attributes[tracing.GEN_AI_OPERATION_NAME] == "chat"
        assert attributes[tracing.GEN_AI_PROVIDER_NAME] == "openai"
        assert attributes[tracing.GEN_AI_REQUEST_MODEL] == "gpt-4.1-nano"
        assert attributes[tracing.GEN_AI_REQUEST_MAX_TOKENS] == 48
        assert attributes[tracing.GEN_AI_REQUEST_TEMPERATURE] == 0.2
        assert attributes[tracing.TIERLINE_REQUEST_ID] == "trace-1"
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})[tracing.ERROR_TYPE] == "overloaded"  # the 503
    assert answered.status.status_code is StatusCode.UNSET
    got = answered.attributes or {}
    usage = outcome.response.usage
    assert got[tracing.GEN_AI_USAGE_INPUT_TOKENS] == usage.input_tokens > 0
    assert got[tracing.GEN_AI_USAGE_OUTPUT_TOKENS] == usage.output_tokens > 0
    assert got[tracing.GEN_AI_RESPONSE_FINISH_REASONS] == (outcome.response.finish_reason,)
    assert got[tracing.GEN_AI_RESPONSE_MODEL] == "gpt-4.1-nano"
    assert got[tracing.TIERLINE_COST_USD] == float(outcome.response.cost_usd)
    # both calls carried their own span's context to the provider
    stats = sim.stats
    assert stats.with_traceparent == 2
    assert list(stats.traceparents) == [hex_trace_id(failed)] * 2
    assert hex_trace_id(failed) == f"{serve.get_span_context().trace_id:032x}"


async def test_a_model_that_keeps_failing_ends_every_span_in_error(
    spans: InMemorySpanExporter, sim: RunningSimulator
) -> None:
    catalog = load_catalog().with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        dispatcher = Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), sleep=no_sleep)
        outcome = await dispatcher.serve(routed("x [sim:error=401]", ["claude-haiku-4-5"]))
    assert outcome.response.status == "error"
    (span,) = by_name(spans, "chat ")
    assert span.name == "chat claude-haiku-4-5"
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[tracing.ERROR_TYPE] == "auth"
    assert (span.attributes or {})[tracing.GEN_AI_PROVIDER_NAME] == "anthropic"
    # no span around the walk: each call is a root of its own, its id sent all the same
    assert span.parent is None
    assert list(sim.stats.traceparents) == [hex_trace_id(span)]


class _Journal:
    """Open batches in a dict (the lane's journal, without Kafka)."""

    def __init__(self) -> None:
        self.open: dict[str, OpenBatch] = {}

    async def opened(self, batch: OpenBatch) -> None:
        self.open[batch.key] = batch

    async def closed(self, key: str) -> None:
        self.open.pop(key, None)

    async def catch_up(self) -> None:
        return None


async def test_a_batch_lane_answer_is_a_client_span_too(
    spans: InMemorySpanExporter, sim: RunningSimulator
) -> None:
    bundled = load_catalog()
    tiers = {tier: list(bundled.candidates(tier)) for tier in Tier}
    tiers[Tier.BATCH] = ["gpt-4.1-nano"]
    catalog = Catalog(bundled.models, tiers).with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        lane = BatchLane(
            client,
            BatchPolicy(max_requests=10, max_wait_s=0.05, poll_s=0.05),
            _Journal(),
            model_of=lambda name: catalog.models.get(name),
            key_of=lambda model: "sim-key",
        )
        dispatcher = Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), batches=lane)
        stop = asyncio.Event()
        runner = asyncio.create_task(lane.run(stop))
        try:
            async with asyncio.timeout(30):
                outcome = await dispatcher.serve(
                    routed(
                        "Label: late", ["gpt-4.1-nano"], tier=Tier.BATCH, hints={"latency": "batch"}
                    )
                )
        finally:
            stop.set()
            await runner
    assert outcome.response.status == "ok", outcome.response.error
    (span,) = by_name(spans, "chat ")
    attributes = span.attributes or {}
    assert attributes[tracing.TIERLINE_BATCH] is True
    assert attributes[tracing.GEN_AI_USAGE_OUTPUT_TOKENS] == outcome.response.usage.output_tokens
    assert attributes[tracing.TIERLINE_COST_USD] == float(outcome.response.cost_usd)


# ------------------------------------------------------------------ setup


def test_tracing_settings_and_exporters(tmp_path: Path) -> None:
    env = {"TIERLINE_TRACING_EXPORTER": "otlp", "TIERLINE_TRACING_SAMPLE_RATIO": "0.25"}
    settings = load_settings(env=env).tracing
    assert (settings.exporter, settings.sample_ratio, settings.service_name) == (
        "otlp",
        0.25,
        "tierline",
    )
    assert load_settings(env={}).tracing.exporter == "none"
    assert build_exporter(TracingSettings()) is None
    assert not start_tracing(TracingSettings()).exporting
    exporter = build_exporter(TracingSettings(exporter="otlp", endpoint="collector:4318"))
    assert isinstance(exporter, OTLPSpanExporter)
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert traces_url("") is None
    assert traces_url("collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("https://otel.example/") == "https://otel.example/v1/traces"
    assert traces_url("http://c:4318/custom/traces") == "http://c:4318/custom/traces"


async def test_the_simulator_keeps_only_well_formed_trace_ids(sim: RunningSimulator) -> None:
    body = {"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=sim.url) as client:
        for header in (TRACEPARENT, "nonsense"):
            reply = await client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": "Bearer sim-key", "traceparent": header},
            )
            assert reply.status_code == 200
        await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer sim-key"}
        )
        served = (await client.get("/_sim/stats")).json()
    assert served["with_traceparent"] == 2
    assert served["traceparents"] == [TRACE_ID, ""]


NO_SDK_SCRIPT = f"""
import asyncio
from datetime import UTC, datetime

import httpx
from opentelemetry import trace

from tierline.processors import tracing
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.providers.keys import KeyRing
from tierline.processors.serving.walk import Dispatcher
from tierline.processors.simulator import SimulatorProfile, start_simulator
from tierline.schemas import RoutedRequest, RouteRequest, RoutingDecision, Tier

HEADERS = [("traceparent", b"{TRACEPARENT}")]


async def main() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    # the router: no span, the headers relayed as they came
    route = tracing.start_consumer_span("route", HEADERS, None)
    forwarded = tracing.next_headers(route, HEADERS)
    assert forwarded == tuple(HEADERS), forwarded
    # the worker: the tier record's context is the serve span's, and the provider's
    sim = await start_simulator(SimulatorProfile(seed=1, latency_ms=1))
    try:
        request = RouteRequest.model_validate(
            {{"id": "n-1", "tenant": "acme", "messages": [{{"role": "user", "content": "hi"}}]}}
        )
        routed = RoutedRequest(
            request=request,
            decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1),
            candidates=["gpt-4.1-nano"],
            routed_at=datetime.now(UTC),
        )
        async with httpx.AsyncClient() as client:
            dispatcher = Dispatcher(
                load_catalog().with_simulator(sim.url), client, KeyRing({{}}, fallback="sim-key")
            )
            parent = tracing.context_from_kafka(list(forwarded))
            with tracing.tracer.start_as_current_span("serve", parent) as serve:
                outcome = await dispatcher.serve(routed)
                assert tracing.kafka_headers(serve) == tuple(HEADERS)
        assert outcome.response.status == "ok"
        assert list(sim.stats.traceparents) == ["{TRACE_ID}"]
    finally:
        await sim.stop()
    print("unchanged")


asyncio.run(main())
"""


def test_with_no_exporter_a_traceparent_reaches_the_provider_unchanged() -> None:
    """`[tracing] exporter = "none"` in a process with no SDK provider (a fresh one: this
    test process may have one by now): the caller's trace id goes through unchanged."""
    done = subprocess.run(
        [sys.executable, "-c", NO_SDK_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "unchanged"
