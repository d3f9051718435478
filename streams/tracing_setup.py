"""The OpenTelemetry SDK for a process: `[tracing]` says where spans go.

`start_pipeline` calls `start_tracing` once and shuts the result down after every role
has stopped, flushing the spans still queued. With `exporter = "none"` (the default)
nothing is installed: tierline's spans go to whatever tracer provider the process has,
the API's no-op one unless an application embedding tierline set its own, and trace
context is still carried (`processors.tracing`). Otherwise an SDK `TracerProvider`
(`service.name`, a parent-based ratio sampler) becomes the process's global provider,
exporting through a `BatchSpanProcessor`.

The API allows one global provider per process. When one of the SDK's is already set
(a second pipeline in the same process, or the embedding application's), the exporter
is added to it, and its resource and sampler stay as they are.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from tierline.streams.config import TracingSettings

log = logging.getLogger("tierline.tracing")


class TracingError(RuntimeError):
    """`[tracing]` asks for what cannot be had (the OTLP exporter is not installed)."""


class Tracing:
    """What `start_tracing` installed: one span processor, or nothing."""

    def __init__(self, processor: SpanProcessor | None) -> None:
        self.processor = processor

    @property
    def exporting(self) -> bool:
        return self.processor is not None

    def flush(self, timeout_ms: int = 5000) -> bool:
        """Export every span ended so far; False if that took over `timeout_ms`."""
        return self.processor is None or self.processor.force_flush(timeout_ms)

    async def shutdown(self) -> None:
        """Flush and stop exporting (off the event loop: an export may block on the network)."""
        processor, self.processor = self.processor, None
        if processor is not None:
            await asyncio.to_thread(processor.shutdown)


def start_tracing(
    settings: TracingSettings, *, exporter: SpanExporter | None = None, batch: bool = True
) -> Tracing:
    """Install the exporter `settings` name, or `exporter` (tests: an in-memory one, with
    `batch=False` to export each span as it ends); nothing for "none"."""
    exporter = exporter if exporter is not None else build_exporter(settings)
    if exporter is None:
        return Tracing(None)
    provider = _sdk_provider(settings)
    if provider is None:
        exporter.shutdown()
        return Tracing(None)
    inner = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    processor = _Detachable(inner)
    provider.add_span_processor(processor)
    log.info("tracing: exporting spans with %s", type(exporter).__name__)
    return Tracing(processor)


class _Detachable(SpanProcessor):
    """A processor that, once shut down, passes nothing on: a provider cannot drop a
    processor, and a shut-down SDK processor complains of every span it is still given."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner: SpanProcessor | None = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.inner is not None:
            self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.inner is not None:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner is None or self.inner.force_flush(timeout_millis)


def build_exporter(settings: TracingSettings) -> SpanExporter | None:
    """The exporter `[tracing] exporter` names; None for "none"."""
    if settings.exporter == "none":
        return None
    if settings.exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service_name)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingError(
            "[tracing] exporter = otlp needs the OTLP exporter: pip install 'tierline[otlp]'"
        ) from None
    return OTLPSpanExporter(endpoint=traces_url(settings.endpoint))


def traces_url(endpoint: str) -> str | None:
    """The OTLP/HTTP traces URL of `endpoint`: as given when it has a path, else with
    `/v1/traces` (the collector's); None (the exporter's default) when empty."""
    endpoint = endpoint.strip()
    if not endpoint:
        return None
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _sdk_provider(settings: TracingSettings) -> TracerProvider | None:
    """The process's SDK provider: the one already set, or a new one made global."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        log.warning(
            "tracing: the process already has a tracer provider (%s) that is not the "
            "OpenTelemetry SDK's; tierline's spans go to it, [tracing] exports nothing",
            type(trace.get_tracer_provider()).__name__,
        )
        return None
    return provider
