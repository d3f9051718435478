"""The tier worker's pure step: what one served request publishes, checked without Kafka."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import (
    CostRecord,
    DeadLetter,
    ErrorInfo,
    ErrorType,
    RoutedRequest,
    RouteRequest,
    RouteResponse,
    RoutingDecision,
    Tier,
    encode,
)
from tierline.streams.outgoing import Source, unreadable
from tierline.streams.topics import Topics
from tierline.streams.worker_step import done_record, respond

TOPICS = Topics("t.")


def routed(reply_to: str | None = None) -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": [{"role": "user", "content": "hi"}],
            "reply_to": reply_to,
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1),
        candidates=["small"],
        routed_at=datetime.now(UTC),
    )


def cost(attempt: int) -> CostRecord:
    return CostRecord(
        record_id=CostRecord.make_id("r1", attempt),
        request_id="r1",
        attempt=attempt,
        tenant="acme",
        tier=Tier.ECONOMY,
        model="small",
        provider="openai",
        status="ok",
        cost_usd=Decimal("0.001"),
        created_at=datetime.now(UTC),
    )


def source(request: RoutedRequest, partition: int = 2) -> Source:
    return Source("t.tier.economy", partition, 41, encode(request))


def answered(costs: int) -> ServeOutcome:
    response = RouteResponse(id="r1", tenant="acme", status="ok", content="hello", attempts=costs)
    return ServeOutcome(response, [cost(a) for a in range(1, costs + 1)])


def unanswered() -> ServeOutcome:
    error = ErrorInfo(type=ErrorType.TIMEOUT, message="slow", retryable=True)
    return ServeOutcome(RouteResponse.from_error("r1", "acme", error, attempts=1), [cost(1)])


def test_an_answer_goes_out_with_its_bills() -> None:
    request = routed()
    outcome = answered(costs=2)
    sends = respond(request, outcome, source(request), TOPICS)
    assert [s.topic for s in sends] == ["t.responses", "t.costs", "t.costs"]
    response, *bills = sends
    assert response.key == b"r1" and response.value == encode(outcome.response)
    assert [b.key for b in bills] == [b"acme", b"acme"]
    assert [CostRecord.model_validate_json(b.value) for b in bills] == outcome.costs
    assert all(s.headers is None for s in sends)


def test_the_done_record_names_the_request_per_tenant_on_the_partition_it_came_from() -> None:
    request = routed()
    done = done_record(request.request.key, source(request), TOPICS, Tier.ECONOMY, {0, 1, 2})
    assert done.topic == "t.tier.economy.done"
    assert (done.key, done.value, done.partition) == (b"acme\x1fr1", b"", 2)  # ids are per tenant


def test_the_response_goes_to_reply_to_when_the_request_names_one() -> None:
    request = routed(reply_to="acme.replies")
    sends = respond(request, answered(1), source(request), TOPICS)
    assert sends[0].topic == "acme.replies"


def test_the_done_record_lets_the_producer_pick_a_partition_the_done_log_lacks() -> None:
    request = routed()
    key = request.request.key
    elsewhere = source(request, partition=5)
    assert done_record(key, elsewhere, TOPICS, Tier.ECONOMY, {0}).partition is None
    assert done_record(key, source(request), TOPICS, Tier.ECONOMY, ()).partition is None


def test_when_every_candidate_failed_the_routed_request_is_dead_lettered_too() -> None:
    request = routed()
    read = source(request)
    sends = respond(request, unanswered(), read, TOPICS)
    assert [s.topic for s in sends] == ["t.responses", "t.costs", "t.dlq"]
    letter = sends[2]
    assert letter.key == b"r1" and letter.value == read.value  # byte for byte
    assert letter.headers is not None
    why = DeadLetter.from_headers(letter.headers)
    assert (why.reason, why.error_type) == ("slow", "timeout")
    assert (why.source_topic, why.source_partition, why.source_offset) == ("t.tier.economy", 2, 41)
    assert (why.request_id, why.tenant) == ("r1", "acme")
    response = RouteResponse.model_validate(orjson.loads(sends[0].value))
    assert response.status == "error" and response.finish_reason == "error"


def test_an_unreadable_message_is_dead_lettered_as_it_came() -> None:
    read = Source("t.tier.economy", 0, 7, b"\xffnot json")
    letter = unreadable(TOPICS.dlq, read, "routed request", ValueError("bad"))
    assert (letter.topic, letter.key, letter.value) == ("t.dlq", None, b"\xffnot json")
    assert letter.headers is not None
    why = DeadLetter.from_headers(letter.headers)
    assert why.reason == "unreadable routed request: bad"
    assert why.error_type == "invalid_request" and why.request_id == ""


def test_a_message_without_a_value_is_dead_lettered_empty() -> None:
    letter = unreadable(TOPICS.dlq, Source("t.costs", 0, 1, None), "cost record", ValueError("x"))
    assert letter.value == b""


def test_the_pure_step_imports_no_kafka() -> None:
    probe = (
        "import sys, tierline.streams.worker_step, tierline.streams.outgoing; "
        "print(sorted(m for m in ('aiokafka', 'faust') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
