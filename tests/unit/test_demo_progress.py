"""The demo's progress: the tally and its snapshots, the one-line text, the rich bar, and
run_demo's callback (on a fake producer and consumers: no Kafka)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from rich.console import Console

from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.pricing.cost import cost_of
from tierline.schemas import (
    ChatMessage,
    ErrorInfo,
    ErrorType,
    RouteRequest,
    RouteResponse,
    Tier,
    Usage,
    encode,
)
from tierline.streams import demo
from tierline.streams.cli.demo import DemoProgressBar, wants_progress
from tierline.streams.config import Settings
from tierline.streams.demo import (
    DemoProgress,
    DemoReport,
    DemoTally,
    Phase,
    describe_progress,
)
from tierline.streams.topics import Topics

PREMIUM = load_catalog().model(load_catalog().candidates(Tier.PREMIUM)[0]).price


def ok(request_id: str, cost: str, tier: Tier = Tier.ECONOMY) -> RouteResponse:
    return RouteResponse(
        id=request_id,
        tenant="acme",
        status="ok",
        content="fine",
        tier=tier,
        provider="gemini",
        usage=Usage(input_tokens=100, output_tokens=20),
        cost_usd=Decimal(cost),
    )


def failed(request_id: str, cost: str = "0") -> RouteResponse:
    return RouteResponse(
        id=request_id,
        tenant="acme",
        status="error",
        error=ErrorInfo(type=ErrorType.TIMEOUT, message="slow", retryable=True),
        cost_usd=Decimal(cost),
    )


# --- the one-line text --------------------------------------------------------------------------


def test_line_shows_sent_answered_errors_and_spend() -> None:
    line = describe_progress(
        DemoProgress(
            total=240, phase="answering", sent=240, answered=17, errors=2, cost_usd=Decimal("0.25")
        )
    )
    assert line == "sent 240/240 · answered 17/240 · errors 2 · spend $0.250000"


def test_spend_is_rounded_half_even_from_the_exact_decimal() -> None:
    def spend(amount: str) -> str:
        line = describe_progress(DemoProgress(total=1, cost_usd=Decimal(amount)))
        return line.rsplit("spend ", 1)[1]

    assert spend("0.0000025") == "$0.000002"  # a tie goes to the even digit
    assert spend("0.0000035") == "$0.000004"
    assert spend("0.000000001") == "$0.000000"
    assert spend("1234.5678905") == "$1234.567890"


def test_billed_part_appears_once_billing_starts() -> None:
    def line(phase: Phase) -> str:
        snapshot = DemoProgress(
            total=3,
            phase=phase,
            sent=3,
            answered=3,
            cost_usd=Decimal("0.3"),
            billed_rows=2,
            billed_usd=Decimal("0.2"),
        )
        return describe_progress(snapshot)

    assert "billed" not in line("answering")
    assert line("billing").endswith(" · billed 2 rows, $0.200000")
    assert line("done").endswith(" · billed 2 rows, $0.200000")


# --- the tally ----------------------------------------------------------------------------------


def test_tally_counts_only_our_responses_once_and_sums_exactly() -> None:
    report = DemoReport(requests=4)
    tally = DemoTally(report, PREMIUM)
    for i in range(4):
        tally.on_sent(f"r{i}", now=10.0)
    assert tally.snapshot("sending") == DemoProgress(total=4, phase="sending", sent=4)

    assert tally.on_response(ok("r0", "0.1"), now=10.5)
    assert tally.on_response(ok("r1", "0.2", Tier.PREMIUM), now=11.0)
    assert not tally.on_response(ok("r1", "0.2"), now=11.1)  # redelivered: counted once
    assert not tally.on_response(ok("someone-else", "5"), now=11.1)  # not ours
    assert tally.on_response(ok("r2", "0.000000001"), now=11.2)
    assert tally.on_response(failed("r3", cost="0.7"), now=11.3)

    snap = tally.snapshot("answering")
    assert (snap.sent, snap.answered, snap.errors) == (4, 4, 1)
    # exact, and the error answer's billed attempts count too: ClickHouse holds them
    assert snap.cost_usd == Decimal("1.000000001")
    assert report.cost_usd == snap.cost_usd  # the progress and the final report agree
    assert report.responses == 4 and report.errors == 1
    assert report.by_tier == {"economy": 2, "premium": 1}
    assert report.latencies_ms == pytest.approx([500.0, 1000.0, 1200.0, 1300.0])
    per_call = cost_of(Usage(input_tokens=100, output_tokens=20), PREMIUM)
    assert report.baseline_cost_usd == 3 * per_call


def test_a_response_before_its_request_was_sent_is_not_counted() -> None:
    tally = DemoTally(DemoReport(requests=1), PREMIUM)
    assert not tally.on_response(ok("r0", "0.1"), now=1.0)
    tally.on_sent("r0", now=2.0)
    assert tally.on_response(ok("r0", "0.1"), now=2.5)
    assert tally.snapshot("answering").answered == 1


# --- the rich bar -------------------------------------------------------------------------------


def test_progress_bar_shows_only_for_a_person_at_a_terminal() -> None:
    assert wants_progress(as_json=False, stdout_is_tty=True)
    assert not wants_progress(as_json=True, stdout_is_tty=True)
    assert not wants_progress(as_json=False, stdout_is_tty=False)
    assert not wants_progress(as_json=True, stdout_is_tty=False)


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def test_bar_renders_each_snapshot() -> None:
    console, out = _console()
    bar = DemoProgressBar(console, auto_refresh=False)
    with bar:
        bar(
            DemoProgress(
                total=5, phase="answering", sent=5, answered=3, errors=1, cost_usd=Decimal("0.3")
            )
        )
        bar.progress.refresh()
        assert "sent 5/5 · answered 3/5 · errors 1 · spend $0.300000" in out.getvalue()
        assert "answering" in out.getvalue()
        task = bar.progress.tasks[0]
        assert (task.completed, task.total) == (3, 5)
        bar(DemoProgress(total=5, phase="done", sent=5, answered=5, cost_usd=Decimal("0.5")))
    # not transient: the last line stays above the final table
    assert "answered 5/5 · errors 0 · spend $0.500000 · billed 0 rows" in out.getvalue()


@pytest.fixture
def stderr_handler() -> Iterator[logging.StreamHandler[Any]]:
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_log_records_go_through_the_bar_while_it_is_live(
    stderr_handler: logging.StreamHandler[Any],
) -> None:
    console, out = _console()
    before = stderr_handler.stream
    with DemoProgressBar(console, auto_refresh=False):
        assert stderr_handler.stream is sys.stderr is not before  # rich's proxy
        logging.getLogger("tierline.test").warning("sink: ClickHouse not ready")
        sys.stderr.flush()
    assert stderr_handler.stream is before
    assert "sink: ClickHouse not ready" in out.getvalue()


def test_say_prints_above_the_live_bar_not_into_it() -> None:
    console, out = _console()
    bar = DemoProgressBar(console, auto_refresh=False)
    with bar:
        bar(DemoProgress(total=2, phase="answering", sent=2, answered=1))
        bar.progress.refresh()
        bar.say("No Kafka configured: started the EMBEDDED broker [on 127.0.0.1:9092]")
    text = out.getvalue()
    # markup is not interpreted, and the line starts fresh instead of trailing the bar's line
    assert "\x1b[2KNo Kafka configured: started the EMBEDDED broker [on 127.0.0.1:9092]\n" in text


# --- run_demo's callback, on fakes --------------------------------------------------------------


class FakeBroker:
    """What run_demo talks to: the producer records sends, the responses consumer answers
    two of them per poll (and redelivers one and adds a stranger's, which must not count)."""

    def __init__(self) -> None:
        self.sent: list[RouteRequest] = []
        self.answered = 0

    def producer(self, **_: Any) -> FakeProducer:
        return FakeProducer(self)

    async def tail(self, bootstrap: str, topic: str, **_: str) -> FakeConsumer:
        return FakeConsumer(self, answers=topic.endswith("responses"))


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def flush(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        self.broker.sent.append(RouteRequest.model_validate(orjson.loads(value)))


class FakeConsumer:
    def __init__(self, broker: FakeBroker, answers: bool) -> None:
        self.broker = broker
        self.answers = answers

    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int) -> dict[str, list[SimpleNamespace]]:
        if not self.answers:
            return {}
        start = self.broker.answered
        batch = self.broker.sent[start : start + 2]
        self.broker.answered += len(batch)
        responses = [
            failed(r.id) if r.id.endswith("-4") else ok(r.id, "0.000000001") for r in batch
        ]
        responses += [ok("stranger", "9"), *responses[:1]]
        return {"p0": [SimpleNamespace(value=encode(r), headers=[]) for r in responses]}


async def test_run_demo_reports_progress_through_its_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    monkeypatch.setattr(demo, "AIOKafkaProducer", broker.producer)
    monkeypatch.setattr(demo, "tail_consumer", broker.tail)
    pipeline: Any = SimpleNamespace(
        topics=Topics(),
        bootstrap="fake:9092",
        catalog=load_catalog(),
        sink=None,
        settings=Settings(),
    )
    requests = [
        RouteRequest(id=f"q{i}", tenant="acme", messages=[ChatMessage(role="user", content="hi")])
        for i in range(5)
    ]
    seen: list[DemoProgress] = []

    report = await demo.run_demo(pipeline, requests, timeout_s=5, progress=seen.append)

    phases = [s.phase for s in seen]
    assert phases[0] == "sending" and phases[-1] == "done"
    assert phases == sorted(phases, key=["sending", "answering", "done"].index)
    assert [s.sent for s in seen if s.phase == "sending"] == [0, 1, 2, 3, 4, 5]
    answered = [s.answered for s in seen if s.phase == "answering"]
    assert answered == [2, 4, 5]  # as responses arrive, never counting a duplicate
    last = seen[-1]
    assert (last.total, last.sent, last.answered, last.errors) == (5, 5, 5, 1)
    assert last.cost_usd == Decimal("0.000000004") == report.cost_usd
    assert report.responses == 5 and report.errors == 1
