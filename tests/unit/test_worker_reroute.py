"""What a tier worker sends instead of a send that cannot land."""

from __future__ import annotations

import orjson
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from tierline.schemas import RouteResponse, Tier, encode
from tierline.streams.config import Settings
from tierline.streams.tier_worker import TierWorker
from tierline.streams.topics import Topics


def worker() -> TierWorker:
    return TierWorker(Tier.ECONOMY, Settings(), Topics("t."), "127.0.0.1:1", None, None)  # type: ignore[arg-type]


def response() -> bytes:
    return encode(RouteResponse(id="r", tenant="acme", status="ok", content="x" * 100))


def test_a_response_too_large_for_its_topic_becomes_an_error_response() -> None:
    send = ("t.responses", b"r", response(), None, None)
    topic, key, value, _, _ = worker()._reroute(send, 1, MessageSizeTooLargeError())
    assert (topic, key) == ("t.responses", b"r")
    replaced = RouteResponse.model_validate(orjson.loads(value))
    assert replaced.status == "error" and replaced.content is None
    assert replaced.error is not None and "larger than its topic" in replaced.error.message


def test_a_refusing_reply_to_falls_back_to_the_shared_topic_after_three_tries() -> None:
    send = ("acme.replies", b"r", response(), None, None)
    w = worker()
    assert w._reroute(send, 1, KafkaConnectionError())[0] == "acme.replies"
    assert w._reroute(send, 3, KafkaConnectionError())[0] == "t.responses"


def test_internal_topics_are_never_rerouted() -> None:
    for topic in ("t.costs", "t.tier.economy.done", "t.dlq"):
        send = (topic, b"k", b"{}", None, None)
        assert worker()._reroute(send, 9, KafkaConnectionError()) == send
