"""One trace from the HTTP call to the provider call, on a real broker.

The pipeline (router, workers, sink) and the gateway run in this process, as in
`test_gateway.py`, with the OpenTelemetry SDK's in-memory exporter added to the
process's tracer provider. The caller's `traceparent` must come out as one tree: the
gateway's SERVER span under the caller's span, `route` under it, `queue wait` and
`serve` under `route`, the provider call under `serve`; and the simulator, standing in
for the provider, must have been sent the same trace id. A request produced straight to
`tierline.requests` with a `traceparent` header is traced the same way from `route` on,
and its response record carries the trace on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.integration.support import collect, make_settings, request_body, wait_until
from tierline.processors import tracing
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import RouteResponse
from tierline.streams.config import GatewaySettings, TracingSettings
from tierline.streams.runtime import Pipeline, start_pipeline
from tierline.streams.tracing_setup import start_tracing

#: the spans of one request, from the HTTP call to the provider call
CHAIN = ("POST /v1/chat/completions", "route", "queue wait", "serve", "chat")


@pytest.fixture
async def spans() -> AsyncIterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    installed = start_tracing(TracingSettings(), exporter=exporter, batch=False)
    yield exporter
    await installed.shutdown()


@pytest.fixture
async def pipeline(
    spans: InMemorySpanExporter,
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> AsyncIterator[Pipeline]:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.gateway = GatewaySettings(
        http_host="127.0.0.1", http_port=0, allow_anonymous_tenant="acme"
    )
    running = await start_pipeline(settings, roles=("router", "workers", "sink", "gateway"))
    try:
        yield running
    finally:
        await asyncio.wait_for(running.stop(), timeout=60)


def caller_context() -> tuple[str, str]:
    """A caller's trace id and span id, as hex."""
    return uuid.uuid4().hex, uuid.uuid4().hex[:16]


def of_trace(exporter: InMemorySpanExporter, trace_id: str) -> dict[str, ReadableSpan]:
    """The finished spans of trace `trace_id`, by name ("chat <model>" as "chat")."""
    found: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        if span.context is not None and f"{span.context.trace_id:032x}" == trace_id:
            found[span.name.split(" ")[0] if span.name.startswith("chat ") else span.name] = span
    return found


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


async def chain_of(
    exporter: InMemorySpanExporter, trace_id: str, names: tuple[str, ...]
) -> dict[str, ReadableSpan]:
    async def complete() -> bool:
        return set(names) <= set(of_trace(exporter, trace_id))

    assert await wait_until(complete, timeout_s=30, every_s=0.1), sorted(
        of_trace(exporter, trace_id)
    )
    return of_trace(exporter, trace_id)


def assert_pipeline_chain(spans: dict[str, ReadableSpan], model: str) -> None:
    """route -> queue wait, serve; serve -> chat <model> (the router's tree in the worker)."""
    route, wait, serve, chat = spans["route"], spans["queue wait"], spans["serve"], spans["chat"]
    assert route.kind is SpanKind.CONSUMER
    assert parent_id(wait) == span_id(route)
    assert parent_id(serve) == span_id(route)
    assert parent_id(chat) == span_id(serve)
    assert chat.name == f"chat {model}" and chat.kind is SpanKind.CLIENT
    assert (chat.attributes or {})[tracing.GEN_AI_REQUEST_MODEL] == model
    assert int((chat.attributes or {})[tracing.GEN_AI_USAGE_OUTPUT_TOKENS]) > 0  # type: ignore[arg-type]
    # the queue wait runs from the router's forward to the worker taking the request
    assert wait.start_time is not None and wait.end_time is not None and serve.start_time
    assert route.start_time is not None and wait.start_time >= route.start_time - 1_000_000
    assert wait.end_time <= serve.start_time
    assert (serve.attributes or {})[tracing.TIERLINE_STATUS] == "ok"
    assert serve.status.status_code is StatusCode.UNSET


async def test_an_http_call_is_one_trace_down_to_the_provider_call(
    spans: InMemorySpanExporter, pipeline: Pipeline, simulator: RunningSimulator
) -> None:
    assert pipeline.gateway is not None
    trace_id, caller_span = caller_context()
    async with httpx.AsyncClient(base_url=pipeline.gateway.url, timeout=60) as client:
        reply = await client.post(
            "/chat/completions",
            json={
                "model": "tierline/economy",
                "messages": [{"role": "user", "content": "Label: parcel arrived late."}],
                "max_completion_tokens": 32,
            },
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "X-Request-Id": "tr-1"},
        )
    assert reply.status_code == 200, reply.text
    model = reply.json()["model"]

    found = await chain_of(spans, trace_id, CHAIN)
    gateway, route = found["POST /v1/chat/completions"], found["route"]
    assert gateway.kind is SpanKind.SERVER
    assert parent_id(gateway) == caller_span
    gateway_attributes = gateway.attributes or {}
    assert gateway_attributes[tracing.TIERLINE_TENANT] == "acme"
    assert gateway_attributes[tracing.TIERLINE_REQUEST_ID] == "tr-1"
    assert gateway_attributes[tracing.TIERLINE_MODEL_ASKED] == "tierline/economy"
    assert gateway_attributes[tracing.TIERLINE_STREAM] is False
    assert gateway_attributes["http.response.status_code"] == 200
    assert parent_id(route) == span_id(gateway)
    assert (route.attributes or {})[tracing.TIERLINE_TIER] == "economy"
    assert int((route.attributes or {})[tracing.TIERLINE_CANDIDATES]) >= 1  # type: ignore[arg-type]
    assert_pipeline_chain(found, model)
    assert trace_id in simulator.stats.traceparents

    # the sink inserts are spans of their own (no request's trace), one per table batch
    async def inserted() -> bool:
        return any(s.name == "sink insert costs" for s in spans.get_finished_spans())

    assert await wait_until(inserted, timeout_s=30, every_s=0.2)
    insert = next(s for s in spans.get_finished_spans() if s.name == "sink insert costs")
    assert (insert.attributes or {})[tracing.DB_SYSTEM_NAME] == "clickhouse"
    assert int((insert.attributes or {})[tracing.DB_OPERATION_BATCH_SIZE]) >= 1  # type: ignore[arg-type]


async def test_a_request_produced_with_a_traceparent_header_is_traced_from_route_on(
    spans: InMemorySpanExporter,
    pipeline: Pipeline,
    simulator: RunningSimulator,
    kafka_bootstrap: str,
) -> None:
    trace_id, caller_span = caller_context()
    topics = pipeline.topics
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.requests,
            request_body(
                "tr-direct", "Label: the invoice is wrong.", hints={"max_tier": "economy"}
            ),
            key=b"acme",
            headers=[("traceparent", f"00-{trace_id}-{caller_span}-01".encode())],
        )
    finally:
        await producer.stop()

    found = await chain_of(spans, trace_id, CHAIN[1:])
    assert parent_id(found["route"]) == caller_span
    assert "POST /v1/chat/completions" not in found
    consumer = AIOKafkaConsumer(
        topics.responses,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level=pipeline.settings.isolation_level,
    )
    await consumer.start()
    try:
        records = await collect(consumer, 1, timeout_s=30)
    finally:
        await consumer.stop()
    (record,) = [r for r in records if r.key == b"tr-direct"]
    response = RouteResponse.model_validate_json(record.value)
    assert response.status == "ok" and response.model is not None
    assert_pipeline_chain(found, response.model)
    assert trace_id in simulator.stats.traceparents
    # the response carries the trace on, as the `serve` span's context
    carried = dict(record.headers)["traceparent"].decode().split("-")
    assert carried[1:3] == [trace_id, span_id(found["serve"])]
