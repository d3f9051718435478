"""What a tier worker sends instead of a send that cannot land: the pure rule, no Kafka."""

from __future__ import annotations

import orjson

from tierline.schemas import RouteResponse, encode
from tierline.streams.outgoing import Outgoing, reroute
from tierline.streams.topics import Topics

TOPICS = Topics("t.")


def response() -> bytes:
    return encode(RouteResponse(id="r", tenant="acme", status="ok", content="x" * 100, model="m"))


def test_a_response_too_large_for_its_topic_becomes_an_error_response() -> None:
    send = Outgoing("t.responses", b"r", response())
    instead = reroute(send, 1, True, TOPICS)
    assert (instead.topic, instead.key, instead.partition) == ("t.responses", b"r", None)
    replaced = RouteResponse.model_validate(orjson.loads(instead.value))
    assert replaced.status == "error" and replaced.content is None
    assert replaced.finish_reason == "error" and replaced.model == "m"
    assert replaced.error is not None and "larger than its topic" in replaced.error.message


def test_a_too_large_reply_to_response_is_replaced_too() -> None:
    instead = reroute(Outgoing("acme.replies", b"r", response()), 1, True, TOPICS)
    assert instead.topic == "acme.replies"
    assert RouteResponse.model_validate_json(instead.value).status == "error"


def test_a_refusing_reply_to_falls_back_to_the_shared_topic_after_three_tries() -> None:
    send = Outgoing("acme.replies", b"r", response())
    assert reroute(send, 1, False, TOPICS) == send
    assert reroute(send, 2, False, TOPICS) == send
    assert reroute(send, 3, False, TOPICS) == Outgoing("t.responses", b"r", response())


def test_internal_topics_are_never_rerouted() -> None:
    for topic in ("t.costs", "t.tier.economy.done", "t.dlq"):
        send = Outgoing(topic, b"k", b"{}", (("h", b"v"),), 2)
        assert reroute(send, 9, False, TOPICS) == send
        assert reroute(send, 9, True, TOPICS) == send
