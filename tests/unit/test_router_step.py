"""The router step without Kafka: what it sends for good and bad input."""

from __future__ import annotations

import orjson
import pytest

from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.routing.classifiers.hashed_terms import HASHING, meta_terms
from tierline.processors.routing.classifiers.learned import DENSE_FEATURES
from tierline.processors.routing.classifiers.recorded import text_features
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import DeadLetter, FeatureRecord, RoutedRequest, RouteResponse, Tier
from tierline.streams.config import LearningSettings, Settings
from tierline.streams.done_log import DoneSet
from tierline.streams.router import RequestRouter
from tierline.streams.topic_directory import TopicDirectory
from tierline.streams.topics import Topics


def router(*existing: str, settings: Settings | None = None) -> RequestRouter:
    """A router step on a broker that has `existing` topics besides tierline's own."""
    topics = Topics("t.")
    directory = TopicDirectory.fixed([*topics.all(), *existing])
    return RequestRouter(
        settings or Settings(), topics, RulesClassifier(), TierRules(), load_catalog(), directory
    )


def body(**overrides: object) -> bytes:
    base: dict[str, object] = {
        "id": "r1",
        "tenant": "acme",
        "messages": [{"role": "user", "content": "Translate 'hello' to French."}],
    }
    base.update(overrides)
    return orjson.dumps(base)


async def test_a_valid_request_goes_to_its_tier_keyed_by_request() -> None:
    sends = await router().decide(body(hints={"min_tier": "premium"}), ("t.requests", 0, 7))
    assert [s.topic for s in sends] == ["t.tier.premium", "t.features"]
    assert sends[0].topic == "t.tier.premium"
    assert sends[0].key == b"acme\x1fr1"  # by request (tenant and id), for even spread
    routed = RoutedRequest.model_validate(orjson.loads(sends[0].value))
    assert routed.decision.tier == Tier.PREMIUM
    assert routed.candidates == list(load_catalog().candidates(Tier.PREMIUM))
    assert any("min_tier" in r for r in routed.decision.reasons)


async def test_bad_input_with_an_id_gets_a_dead_letter_and_an_error_response() -> None:
    step = router("acme.replies")
    raw = body(params={"temperature": "hot"}, reply_to="acme.replies")
    sends = await step.decide(raw, ("t.requests", 2, 40))
    assert [s.topic for s in sends] == ["t.dlq", "acme.replies"]
    assert (sends[0].key, sends[1].key) == (None, b"r1")
    assert sends[0].value == raw
    assert sends[0].headers is not None
    letter = DeadLetter.from_headers(sends[0].headers)
    assert (letter.source_partition, letter.source_offset, letter.request_id) == (2, 40, "r1")
    response = RouteResponse.model_validate(orjson.loads(sends[1].value))
    assert response.status == "error" and response.error is not None
    assert "temperature" in response.error.message
    assert step.stats.rejected == 1 and step.stats.routed == 0


async def test_garbage_gets_only_a_dead_letter() -> None:
    sends = await router().decide(b"\xff\xfe", ("t.requests", 0, 1))
    assert [s.topic for s in sends] == ["t.dlq"]
    assert sends[0].value == b"\xff\xfe"


def test_done_set_forgets_the_oldest_first() -> None:
    done = DoneSet(capacity=3)
    for rid in ["a", "b", "c", "d"]:
        done.add(rid)
    assert "a" not in done
    assert all(r in done for r in "bcd")
    done.add("b")  # touching keeps it
    done.add("e")
    assert "b" in done and "c" not in done
    assert len(done) == 3


async def test_reply_to_may_not_name_an_internal_topic() -> None:
    sends = await router().decide(body(reply_to="t.requests"), ("t.requests", 0, 3))
    assert [s.topic for s in sends] == ["t.dlq", "t.responses"]
    response = RouteResponse.model_validate(orjson.loads(sends[1].value))
    assert response.error is not None and "reply_to" in response.error.message


class _Broken:
    name = "broken"

    def classify(self, request: object) -> object:
        raise ZeroDivisionError("a bug of ours")


async def test_a_bug_in_routing_still_answers_with_an_internal_error() -> None:
    step = router()
    step.classifier = _Broken()  # type: ignore[assignment]
    sends = await step.decide(body(), ("t.requests", 0, 9))
    assert [s.topic for s in sends] == ["t.dlq", "t.responses"]
    response = RouteResponse.model_validate(orjson.loads(sends[1].value))
    assert response.error is not None and response.error.type == "internal"
    assert "ZeroDivisionError" in response.error.message


async def test_reply_to_of_another_tenant_a_missing_topic_or_an_internal_one_is_refused() -> None:
    step = router("acme.replies", "globex.replies", "__consumer_offsets")
    for reply_to, why in [
        ("globex.replies", "not one of tenant 'acme'"),
        ("acme.missing", "does not exist"),
        ("__consumer_offsets", "internal"),
        ("__transaction_state", "internal"),
    ]:
        sends = await step.decide(body(reply_to=reply_to), ("t.requests", 0, 5))
        assert [s.topic for s in sends] == ["t.dlq", "t.responses"], reply_to
        response = RouteResponse.model_validate(orjson.loads(sends[1].value))
        assert response.error is not None and response.error.type == "invalid_request"
        assert why in response.error.message
    sends = await step.decide(body(reply_to="acme.replies"), ("t.requests", 0, 6))
    assert [s.topic for s in sends] == ["t.tier.economy", "t.features"]


async def test_a_routed_request_records_its_decision_and_hashed_features_not_its_text() -> None:
    raw = body(metadata={"feature": "translate"}, hints={"task": "translation"})
    sends = await router().decide(raw, ("t.requests", 0, 7))
    routed = RoutedRequest.model_validate(orjson.loads(sends[0].value))
    assert sends[1].key == sends[0].key
    record = FeatureRecord.model_validate(orjson.loads(sends[1].value))
    assert (record.request_id, record.tenant, record.feature) == ("r1", "acme", "translate")
    assert (record.tier, record.score) == (routed.decision.tier, routed.decision.score)
    assert record.classifier == "rules" and record.hashing == HASHING
    # the ask's words, pairs and the three metadata terms, as ids; no text anywhere
    expected = text_features(
        "Translate 'hello' to French.",
        "translation",
        meta_terms("translation", "translate", "acme"),
    )
    assert record.term_ids == list(expected.term_ids) and len(record.term_ids) >= 3 + 3 + 3
    assert record.term_counts == list(expected.term_counts)
    assert record.dense == pytest.approx(list(expected.dense))
    assert record.dense_names == list(DENSE_FEATURES)
    assert record.prompt is None
    assert b"hello" not in sends[1].value and b"French" not in sends[1].value


async def test_prompts_are_stored_only_when_asked_and_recording_can_be_off() -> None:
    stored = Settings(learning=LearningSettings(store_prompts=True))
    sends = await router(settings=stored).decide(body(), ("t.requests", 0, 1))
    record = FeatureRecord.model_validate(orjson.loads(sends[1].value))
    assert record.prompt == "Translate 'hello' to French."
    off = Settings(learning=LearningSettings(record_features=False))
    sends = await router(settings=off).decide(body(), ("t.requests", 0, 2))
    assert [s.topic for s in sends] == ["t.tier.economy"]


async def test_a_rejected_request_is_answered_on_its_reply_to_only_if_that_is_allowed() -> None:
    step = router("acme.replies", "globex.replies")
    bad = {"params": {"temperature": "hot"}}
    allowed = await step.decide(body(reply_to="acme.replies", **bad), ("t.requests", 0, 1))
    assert [s.topic for s in allowed] == ["t.dlq", "acme.replies"]
    other = await step.decide(body(reply_to="globex.replies", **bad), ("t.requests", 0, 2))
    assert [s.topic for s in other] == ["t.dlq", "t.responses"]
