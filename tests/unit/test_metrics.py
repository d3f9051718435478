"""The process's metrics: what `render()` shows, readiness, the HTTP server, consumer lag,
and the Grafana dashboard that reads them."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tierline.streams.metrics import (
    Metrics,
    MetricsServer,
    process_metrics,
    watch_consumer_lag,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tierline.json"
PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}  # the dashboard's variable

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: Metrics) -> Samples:
    """Every sample of `render()`, by name and labels, read back with Prometheus' parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def touch_every_metric(m: Metrics) -> None:
    m.requests.labels("acme", "fast", "ok").inc()
    m.provider_attempts.labels("openai", "gpt-4o-mini", "ok").inc()
    m.provider_latency.labels("openai", "gpt-4o-mini").observe(0.3)
    m.set_circuit("openai", "gpt-4o-mini", "closed")
    m.circuit_transitions.labels("openai", "gpt-4o-mini", "open").inc()
    m.inflight.labels("fast").set(1)
    m.held_requests.labels("fast").set(0)
    m.consumer_lag.labels("tierline-router", "tierline.requests").set(0)
    m.dead_letters.labels("invalid_request").inc()
    m.budget_spent.labels("acme", "day").set(1.5)
    m.budget_reserved.labels("acme", "day").set(0.25)
    m.budget_limit.labels("acme", "day").set(25)
    m.gateway_requests.labels("chat_completions", "200").inc()
    m.gateway_in_flight.set(1)
    m.gateway_latency.labels("chat_completions").observe(0.4)


def test_counted_requests_and_attempts_show_up_in_render_with_their_labels() -> None:
    m = Metrics()
    m.requests.labels("acme", "fast", "ok").inc()
    m.requests.labels("acme", "fast", "ok").inc()
    m.requests.labels("acme", "strong", "error").inc()
    m.provider_attempts.labels("openai", "gpt-4o", "timeout").inc(3)
    m.provider_latency.labels("openai", "gpt-4o").observe(0.3)
    m.provider_latency.labels("openai", "gpt-4o").observe(20.0)
    m.dead_letters.labels("invalid_request").inc()
    got = samples(m)
    assert got[key("tierline_requests_total", tenant="acme", tier="fast", status="ok")] == 2
    assert got[key("tierline_requests_total", tenant="acme", tier="strong", status="error")] == 1
    assert (
        got[
            key(
                "tierline_provider_attempts_total",
                provider="openai",
                model="gpt-4o",
                outcome="timeout",
            )
        ]
        == 3
    )
    lat = {"provider": "openai", "model": "gpt-4o"}
    assert got[key("tierline_provider_latency_seconds_count", **lat)] == 2
    assert got[key("tierline_provider_latency_seconds_sum", **lat)] == pytest.approx(20.3)
    assert got[key("tierline_provider_latency_seconds_bucket", **lat, le="0.5")] == 1
    assert got[key("tierline_provider_latency_seconds_bucket", **lat, le="16.0")] == 1
    assert got[key("tierline_provider_latency_seconds_bucket", **lat, le="32.0")] == 2
    assert got[key("tierline_dead_letters_total", error_type="invalid_request")] == 1


def test_the_documented_metric_names_and_only_those() -> None:
    m = Metrics()
    touch_every_metric(m)
    families = {f.name for f in m.registry.collect()}
    assert families == {
        "tierline_requests",
        "tierline_provider_attempts",
        "tierline_provider_latency_seconds",
        "tierline_circuit_state",
        "tierline_circuit_transitions",
        "tierline_inflight",
        "tierline_held_requests",
        "tierline_consumer_lag",
        "tierline_dead_letters",
        "tierline_budget_spent_usd",
        "tierline_budget_reserved_usd",
        "tierline_budget_limit_usd",
        "tierline_gateway_requests",
        "tierline_gateway_in_flight",
        "tierline_gateway_latency_seconds",
    }


def test_instances_do_not_share_counts_but_the_process_shares_one() -> None:
    a, b = Metrics(), Metrics()
    a.requests.labels("acme", "fast", "ok").inc()
    assert key("tierline_requests_total", tenant="acme", tier="fast", status="ok") not in samples(b)
    assert process_metrics() is process_metrics()


def test_set_circuit_maps_closed_half_open_open_to_0_1_2() -> None:
    m = Metrics()
    for state, value in (("closed", 0), ("half_open", 1), ("open", 2), ("closed", 0)):
        m.set_circuit("anthropic", "claude-haiku", state)
        got = samples(m)[key("tierline_circuit_state", provider="anthropic", model="claude-haiku")]
        assert got == value
    with pytest.raises(ValueError, match="half_open"):
        m.set_circuit("anthropic", "claude-haiku", "half-open")


def test_ready_needs_one_component_and_every_component_ready() -> None:
    m = Metrics()
    assert m.ready() == (False, {})
    m.set_ready("consumer", True)
    assert m.ready() == (True, {"consumer": True})
    m.set_ready("producer", False)
    assert m.ready() == (False, {"consumer": True, "producer": False})
    m.set_ready("producer", True)
    ready, components = m.ready()
    assert ready
    components["consumer"] = False  # a copy: the caller cannot change readiness
    assert m.ready()[0]


async def test_the_server_answers_metrics_healthz_and_readyz() -> None:
    m = Metrics()
    m.requests.labels("acme", "fast", "ok").inc()
    async with MetricsServer(m, host="127.0.0.1", port=0) as server, httpx.AsyncClient() as http:
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"

        got = await http.get(f"{server.url}/metrics")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/plain")
        assert 'tierline_requests_total{status="ok",tenant="acme",tier="fast"} 1.0' in got.text

        got = await http.get(f"{server.url}/healthz")
        assert (got.status_code, got.text) == (200, "ok")

        got = await http.get(f"{server.url}/readyz")
        assert (got.status_code, got.json()) == (503, {"ready": False, "components": {}})
        m.set_ready("consumer", False)
        got = await http.get(f"{server.url}/readyz")
        assert (got.status_code, got.json()) == (
            503,
            {"ready": False, "components": {"consumer": False}},
        )
        m.set_ready("consumer", True)
        got = await http.get(f"{server.url}/readyz")
        assert (got.status_code, got.json()) == (
            200,
            {"ready": True, "components": {"consumer": True}},
        )
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{server.url}/healthz")  # stopped


async def test_a_port_in_use_is_a_clear_error_naming_the_port_and_the_setting() -> None:
    async with MetricsServer(Metrics(), host="127.0.0.1", port=0) as first:
        second = MetricsServer(Metrics(), host="127.0.0.1", port=first.port)
        with pytest.raises(RuntimeError, match="already in use") as err:
            await second.start()
        assert str(first.port) in str(err.value)
        assert "--metrics-port" in str(err.value)
        assert "TIERLINE_METRICS_PORT" in str(err.value)
        await second.stop()  # a server that never started stops quietly


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """An AIOKafkaConsumer's assignment, high waters and positions."""

    def __init__(self, highwater: dict[TP, int | None], position: dict[TP, int]) -> None:
        self.highwaters = highwater
        self.positions = position
        self.asked: list[TP] = []
        self.fail_next = 0

    def assignment(self) -> set[TP]:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker gone")  # stands in for a KafkaError
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: TP) -> int:
        self.asked.append(tp)
        return self.positions[tp]


def lag(m: Metrics, topic: str, group: str = "tierline-router") -> float | None:
    return samples(m).get(key("tierline_consumer_lag", group=group, topic=topic))


async def eventually(check: Any, timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - a gauge has no event to wait on
            await asyncio.sleep(0.005)


async def test_consumer_lag_is_summed_per_topic_over_partitions_with_a_known_high_water() -> None:
    req0, req1, req2 = (
        TP("tierline.requests", 0),
        TP("tierline.requests", 1),
        TP("tierline.requests", 2),
    )
    fast0 = TP("tierline.tier.fast", 0)
    consumer = FakeConsumer(
        highwater={req0: 10, req1: None, req2: 7, fast0: 3},
        position={req0: 4, req1: 0, req2: 5, fast0: 3},
    )
    m, stop = Metrics(), asyncio.Event()
    watch = asyncio.create_task(watch_consumer_lag(consumer, "tierline-router", m, stop, 0.01))
    await eventually(lambda: lag(m, "tierline.requests") is not None)
    assert lag(m, "tierline.requests") == 8  # (10 - 4) + (7 - 5); partition 1 not fetched yet
    assert lag(m, "tierline.tier.fast") == 0
    assert req1 not in consumer.asked

    consumer.highwaters[req1] = 5  # its first fetch came back
    await eventually(lambda: lag(m, "tierline.requests") == 13)
    stop.set()
    await asyncio.wait_for(watch, timeout=1.0)


async def test_consumer_lag_survives_kafka_errors_and_drops_revoked_topics() -> None:
    req0, fast0 = TP("tierline.requests", 0), TP("tierline.tier.fast", 0)
    consumer = FakeConsumer(highwater={req0: 9, fast0: 4}, position={req0: 1, fast0: 1})
    consumer.fail_next = 3
    m, stop = Metrics(), asyncio.Event()
    watch = asyncio.create_task(watch_consumer_lag(consumer, "g", m, stop, 0.01))
    await eventually(lambda: lag(m, "tierline.tier.fast", "g") == 3)
    assert consumer.fail_next == 0
    assert lag(m, "tierline.requests", "g") == 8

    del consumer.highwaters[fast0]  # a rebalance took the partition away
    await eventually(lambda: lag(m, "tierline.tier.fast", "g") is None)
    assert lag(m, "tierline.requests", "g") == 8
    stop.set()
    await asyncio.wait_for(watch, timeout=1.0)
    assert watch.exception() is None


# The dashboard


def test_the_grafana_dashboard_reads_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "tierline"
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"

    m = Metrics()
    touch_every_metric(m)
    exposed = {name for name, _ in samples(m)}
    exprs = []
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']} has no targets"
        assert panel["datasource"] == PROMETHEUS, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == PROMETHEUS, panel["title"]
            exprs.append(target["expr"])
            names = re.findall(r"tierline_[a-z_]+", target["expr"])
            assert names, f"{panel['title']}: {target['expr']} reads no tierline metric"
            missing = set(names) - exposed
            assert not missing, f"{panel['title']} reads {missing}, which Metrics() never exposes"

    read = {n for e in exprs for n in re.findall(r"tierline_[a-z_]+", e)}
    for family in (
        "tierline_circuit_state",
        "tierline_provider_latency_seconds_bucket",
        "tierline_consumer_lag",
        "tierline_dead_letters_total",
    ):
        assert family in read
