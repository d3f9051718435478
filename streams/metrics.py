"""The process's metrics, and the HTTP endpoint that serves them to Prometheus.

`Metrics` is one set of tierline's Prometheus metrics on a registry of its own (never
the client library's global one, so a test can make a fresh set). Every role in a
process (router, tier workers, sinks) counts into the same set, `process_metrics()`,
and one `MetricsServer` serves it: `GET /metrics` for Prometheus, `GET /healthz`
(the event loop answers) and `GET /readyz` (every component that registered itself
with `set_ready` says it is ready) for an orchestrator's probes.

`watch_consumer_lag` samples a Kafka consumer's lag into the `tierline_consumer_lag`
gauge. The metric names are documented to users and read by
`deploy/grafana/tierline.json`: renaming one breaks dashboards and alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Collection
from types import TracebackType
from typing import Protocol, TypeVar

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger("tierline.metrics")

#: provider call latency buckets (seconds): a cached answer takes 50 ms, a long
#: generation a minute
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)

#: the value of `tierline_circuit_state` for each circuit breaker state
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

DEFAULT_PORT = 9464


class Metrics:
    """tierline's metrics on a registry of their own, plus the process's readiness.

    Label values are bounded: tenants by the tenants configured, tiers, providers and
    models by the policy, outcomes and error types by tierline's error taxonomy.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tierline_requests_total",
            "Requests answered, by tenant, tier and status (ok or error). Tenant "
            "cardinality is bounded by the tenants configured.",
            ["tenant", "tier", "status"],
            registry=r,
        )
        self.provider_attempts = Counter(
            "tierline_provider_attempts_total",
            "Provider calls, by outcome: ok, an error type (timeout, connection, "
            "rate_limited, server_error, ...), or skipped for a call not made.",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.provider_latency = Histogram(
            "tierline_provider_latency_seconds",
            "Time from sending a provider call to its answer or error.",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.circuit_state = Gauge(
            "tierline_circuit_state",
            "Circuit breaker state per provider model: 0 closed, 1 half_open, 2 open.",
            ["provider", "model"],
            registry=r,
        )
        self.circuit_transitions = Counter(
            "tierline_circuit_transitions_total",
            "Circuit breaker state changes, by the state changed to.",
            ["provider", "model", "to"],
            registry=r,
        )
        self.inflight = Gauge(
            "tierline_inflight",
            "Requests being worked on now, by tier.",
            ["tier"],
            registry=r,
        )
        self.held_requests = Gauge(
            "tierline_held_requests",
            "Requests waiting for a provider to come back, by tier.",
            ["tier"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "tierline_consumer_lag",
            "Messages not yet consumed: summed over the topic's partitions this process owns.",
            ["group", "topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "tierline_dead_letters_total",
            "Messages sent to the dead-letter topic, by error type.",
            ["error_type"],
            registry=r,
        )
        self.budget_spent = Gauge(
            "tierline_budget_spent_usd",
            "A tenant's settled spend this budget period (whole-tenant budgets), USD.",
            ["tenant", "period"],
            registry=r,
        )
        self.budget_reserved = Gauge(
            "tierline_budget_reserved_usd",
            "A tenant's open reservations this budget period (whole-tenant budgets), USD.",
            ["tenant", "period"],
            registry=r,
        )
        self.budget_limit = Gauge(
            "tierline_budget_limit_usd",
            "A tenant's hard budget limit per period, USD.",
            ["tenant", "period"],
            registry=r,
        )
        self.gateway_requests = Counter(
            "tierline_gateway_requests_total",
            "HTTP calls the gateway answered, by route (chat_completions, models, other) "
            "and status code.",
            ["route", "code"],
            registry=r,
        )
        self.gateway_in_flight = Gauge(
            "tierline_gateway_in_flight",
            "HTTP calls to the gateway waiting for their answer now.",
            registry=r,
        )
        self.gateway_latency = Histogram(
            "tierline_gateway_latency_seconds",
            "Time from an HTTP call's arrival at the gateway to its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._ready: dict[str, bool] = {}

    def set_circuit(self, provider: str, model: str, state: str) -> None:
        """Set the circuit gauge from a breaker state: "closed", "half_open" or "open"."""
        try:
            value = CIRCUIT_STATES[state]
        except KeyError:
            raise ValueError(
                f"unknown circuit state {state!r}: expected one of {', '.join(CIRCUIT_STATES)}"
            ) from None
        self.circuit_state.labels(provider, model).set(value)

    def set_ready(self, component: str, ready: bool) -> None:
        """Register `component` (a consumer, a producer, ...) as ready or not yet."""
        self._ready[component] = ready

    def ready(self) -> tuple[bool, dict[str, bool]]:
        """Ready iff at least one component registered and every one is ready."""
        components = dict(self._ready)
        return bool(components) and all(components.values()), components

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


_process_metrics: Metrics | None = None


def process_metrics() -> Metrics:
    """The metrics every role in this process counts into (created on first use)."""
    global _process_metrics
    if _process_metrics is None:
        _process_metrics = Metrics()
    return _process_metrics


class MetricsServer:
    """`/metrics`, `/healthz` and `/readyz` over HTTP, on the running event loop.

    Port 0 binds a free port; after `start()`, `port` is the real one and `url` the
    base URL to reach it.
    """

    def __init__(self, metrics: Metrics, host: str = "0.0.0.0", port: int = DEFAULT_PORT):
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:9464 (a wildcard host reads as loopback)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; a port already in use is a `RuntimeError` saying what to do."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as err:
            await runner.cleanup()
            if err.errno == errno.EADDRINUSE:
                raise RuntimeError(
                    f"metrics port {self.port} on {self.host} is already in use (another "
                    "tierline role on this host?): set --metrics-port / "
                    "TIERLINE_METRICS_PORT to a free port"
                ) from err
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("serving metrics on %s/metrics", self.url)

    async def stop(self) -> None:
        """Stop serving (a no-op if not started)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, components = self.metrics.ready()
        return web.json_response(
            {"ready": ready, "components": components}, status=200 if ready else 503
        )


class TopicPartitionLike(Protocol):
    """What lag needs of a partition (aiokafka's `TopicPartition` has it)."""

    @property
    def topic(self) -> str: ...


TP = TypeVar("TP", bound=TopicPartitionLike)


class LagSource(Protocol[TP]):
    """The three calls of aiokafka's `AIOKafkaConsumer` that lag is read from."""

    def assignment(self) -> Collection[TP]: ...

    def highwater(self, tp: TP) -> int | None: ...

    async def position(self, tp: TP) -> int: ...


async def _lag_by_topic(consumer: LagSource[TP]) -> dict[str, int]:
    lag: dict[str, int] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:  # nothing fetched from this partition yet
            continue
        position = await consumer.position(tp)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
    return lag


async def watch_consumer_lag(
    consumer: LagSource[TP],
    group: str,
    metrics: Metrics,
    stop: asyncio.Event,
    interval_s: float = 5.0,
) -> None:
    """Every `interval_s` until `stop` is set, set each assigned topic's lag gauge.

    A topic's lag is high water minus position, summed over its partitions assigned to
    this consumer whose high water is known (it is once the first fetch returned). A
    topic no longer assigned loses its series rather than keep a stale value. A Kafka
    error skips one sample; it never ends the watch.
    """
    shown: set[str] = set()
    while not stop.is_set():
        try:
            lag = await _lag_by_topic(consumer)
            assigned = {tp.topic for tp in consumer.assignment()}
        except Exception as exc:  # noqa: BLE001 - a missed sample, never a crashed role
            log.debug("consumer lag of group %s not sampled: %r", group, exc)
        else:
            for topic, value in lag.items():
                metrics.consumer_lag.labels(group, topic).set(value)
            for topic in shown - assigned:
                metrics.consumer_lag.remove(group, topic)
            shown = (shown & assigned) | set(lag)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
