"""Traces: W3C trace context in and out of Kafka and HTTP headers, and the span vocabulary.

A request's trace context (`traceparent`, `tracestate`) comes from its HTTP call (the
gateway) or from the Kafka headers of the record a producer wrote to
`tierline.requests`, rides in the Kafka headers of every record that carries the
request on (the tier topic, the response), and goes to the provider with each call.
Only W3C trace context is carried, never `baggage`: a caller's baggage is not ours to
send to a provider.

Spans come from `tracer`, the OpenTelemetry API's tracer named "tierline". With no
SDK installed (`[tracing] exporter = "none"`, the default) it is the API's no-op
tracer: a span it starts is the parent's context and nothing more, so an incoming
`traceparent` still travels unchanged through Kafka to the provider, but no trace id
is made up for a call that came without one. `streams.tracing_setup` installs the
SDK when an exporter is configured.

The attribute names: OpenTelemetry's GenAI semantic conventions for provider calls
(`gen_ai.*`, as of semconv 1.37: `gen_ai.provider.name`, with `gen_ai.system`, its
name before, set too for backends that read that one), `error.type`, `db.*` for the
ClickHouse inserts, and tierline's own (`tierline.*`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import (
    INVALID_SPAN,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

#: every span of tierline: a proxy of the API's global tracer provider (no-op until one is set)
tracer = trace.get_tracer("tierline")

#: W3C trace context only (`traceparent`, `tracestate`)
PROPAGATOR = TraceContextTextMapPropagator()
#: the headers the trace context rides in, in Kafka and HTTP alike
TRACE_HEADERS: frozenset[str] = frozenset(PROPAGATOR.fields)

KafkaHeaders = Sequence[tuple[str, bytes | None]]
#: the empty context: a span started in it is a root (or, with the no-op tracer, nothing)
NO_CONTEXT = Context()

# ---------------------------------------------------------------- GenAI semantic conventions

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
#: the provider's attribute before semconv 1.37 (deprecated there for GEN_AI_PROVIDER_NAME)
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
#: the operation every provider call of tierline's is
CHAT = "chat"
ERROR_TYPE = "error.type"
DB_SYSTEM_NAME = "db.system.name"
DB_COLLECTION_NAME = "db.collection.name"
DB_OPERATION_NAME = "db.operation.name"
DB_OPERATION_BATCH_SIZE = "db.operation.batch.size"
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"

#: tierline's provider families by their semconv name, where the two differ
_PROVIDER_NAMES = {"gemini": "gcp.gemini", "mistral": "mistral_ai"}

# ---------------------------------------------------------------- tierline's own attributes

TIERLINE_TIER = "tierline.tier"
TIERLINE_TENANT = "tierline.tenant"
TIERLINE_REQUEST_ID = "tierline.request_id"
TIERLINE_COST_USD = "tierline.cost_usd"
TIERLINE_TASK = "tierline.task"
TIERLINE_SCORE = "tierline.score"
TIERLINE_CANDIDATES = "tierline.candidates"
TIERLINE_MODEL_ASKED = "tierline.model_asked"
TIERLINE_STREAM = "tierline.stream"
TIERLINE_ATTEMPT = "tierline.attempt"
TIERLINE_BATCH = "tierline.batch"
TIERLINE_STATUS = "tierline.status"


def provider_name(family: str) -> str:
    """`gen_ai.provider.name` of a tierline provider family ("gemini" is "gcp.gemini")."""
    return _PROVIDER_NAMES.get(family, family)


# ---------------------------------------------------------------- carriers


class _KafkaGetter(Getter[KafkaHeaders]):
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        found = [v.decode("latin-1") for k, v in carrier if v is not None and k.lower() == key]
        return found or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [k for k, _ in carrier]


class _KafkaSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode("latin-1")))


class _HttpGetter(Getter[Mapping[str, str]]):
    """Any mapping of HTTP headers (aiohttp's and httpx's ignore case, a dict may not)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            value = next((v for k, v in carrier.items() if k.lower() == key), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


class _HttpSetter(Setter[MutableMapping[str, str]]):
    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[key] = value


_KAFKA_GET, _KAFKA_SET = _KafkaGetter(), _KafkaSetter()
_HTTP_GET, _HTTP_SET = _HttpGetter(), _HttpSetter()


def _has_trace_header(names: Iterable[str]) -> bool:
    return any(name.lower() == "traceparent" for name in names)


def context_from_kafka(headers: KafkaHeaders | None) -> Context:
    """The trace context a Kafka record's headers carry; `NO_CONTEXT` when they carry none."""
    if not headers or not _has_trace_header(k for k, _ in headers):
        return NO_CONTEXT
    return PROPAGATOR.extract(headers, NO_CONTEXT, getter=_KAFKA_GET)


def context_from_http(headers: Mapping[str, str]) -> Context:
    """The trace context of an HTTP call's headers; `NO_CONTEXT` when they carry none."""
    if "traceparent" not in headers and not _has_trace_header(headers.keys()):
        return NO_CONTEXT
    return PROPAGATOR.extract(headers, NO_CONTEXT, getter=_HTTP_GET)


def kafka_headers(span: Span) -> tuple[tuple[str, bytes], ...]:
    """`span`'s trace context as Kafka headers (`traceparent`, and `tracestate` when set),
    for a record it produces; empty when the span has no valid context (the no-op tracer
    in a trace nobody started)."""
    if not span.get_span_context().is_valid:
        return ()
    carrier: list[tuple[str, bytes]] = []
    PROPAGATOR.inject(carrier, trace.set_span_in_context(span), setter=_KAFKA_SET)
    return tuple(carrier)


def http_headers(span: Span | None = None) -> dict[str, str]:
    """`span`'s (else the current span's) trace context as HTTP headers for an outgoing call."""
    span = trace.get_current_span() if span is None else span
    if not span.get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(span), setter=_HTTP_SET)
    return carrier


def start_consumer_span(name: str, headers: KafkaHeaders | None, attributes: Attributes) -> Span:
    """The span of a step consuming a record with `headers` (a child of their context).

    With no tracer provider installed it records nothing, so no span is started and the
    headers are not even read: `next_headers` then relays the record's trace headers as
    they came: the router's no-op cost stays at a microsecond or two per record.
    """
    if isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
        return INVALID_SPAN
    return tracer.start_span(
        name, context_from_kafka(headers), kind=SpanKind.CONSUMER, attributes=attributes
    )


def next_headers(span: Span, incoming: KafkaHeaders | None) -> tuple[tuple[str, bytes], ...]:
    """The trace headers of a record produced within `span`, which consumed a record with
    headers `incoming`: `span`'s context when it has one, else the incoming record's trace
    headers unchanged (no tracer installed). Those are not checked here: every reader
    extracts them with the W3C propagator, which drops a malformed `traceparent`."""
    if span.get_span_context().is_valid:
        return kafka_headers(span)
    if not incoming:
        return ()
    return tuple((k, v) for k, v in incoming if v is not None and k.lower() in TRACE_HEADERS)


def with_headers(
    headers: tuple[tuple[str, bytes], ...] | None, trace_headers: tuple[tuple[str, bytes], ...]
) -> tuple[tuple[str, bytes], ...] | None:
    """A record's headers with the trace context's added (none of the same name kept)."""
    if not trace_headers:
        return headers
    kept = tuple(h for h in headers or () if h[0].lower() not in TRACE_HEADERS)
    return kept + trace_headers


def failed(span: Span, error_type: str, message: str = "") -> None:
    """Mark `span` as failed with tierline's error type (`error.type`, status ERROR)."""
    if span.is_recording():
        span.set_attribute(ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, message[:200] or error_type))
