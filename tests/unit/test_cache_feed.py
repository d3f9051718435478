"""Sharing the response cache: what a worker reads from `tierline.cache`, and what it sends."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tierline.processors.routing.policy import CacheRules
from tierline.processors.serving.response_cache import ResponseCache
from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import (
    CachedAnswer,
    RoutedRequest,
    RouteRequest,
    RouteResponse,
    RoutingDecision,
    Tier,
    encode,
)
from tierline.streams.cache_feed import CacheFeed
from tierline.streams.outgoing import Outgoing, reroute
from tierline.streams.topics import Topics
from tierline.streams.worker_cache import WorkerCache

TOPICS = Topics("t.")


def answer(key: str = "a" * 64, ttl_s: float = 3600) -> CachedAnswer:
    now = datetime.now(UTC)
    return CachedAnswer(
        key=key,
        tenant="acme",
        model="nano",
        provider="openai",
        content="hello",
        finish_reason="stop",
        cost_usd=Decimal("0.000001"),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )


def feed(rules: CacheRules | None = None) -> CacheFeed:
    cache = ResponseCache(lambda: rules or CacheRules(), clock=time.time)
    return CacheFeed(cache, "127.0.0.1:1", TOPICS.cache, "read_committed")


def test_a_record_of_the_topic_is_kept_under_its_key() -> None:
    f = feed()
    value = encode(answer())
    kept = CachedAnswer.model_validate_json(value)
    f.merge(kept.key.encode(), value)
    assert f.cache.store.get(kept.key) == kept
    assert (f.kept, f.cache.store.bytes) == (1, len(value))
    f.merge(kept.key.encode(), None)  # a tombstone
    assert len(f.cache.store) == 0


def test_garbage_and_answers_under_another_key_are_skipped() -> None:
    f = feed()
    f.merge(b"b" * 64, encode(answer()))  # filed under a key that is not its own
    f.merge(b"a" * 64, b"{not json")
    f.merge(None, encode(answer()))
    assert len(f.cache.store) == 0 and f.malformed == 3


def test_an_expired_answer_on_the_topic_is_not_kept() -> None:
    f = feed()
    old = answer().model_copy(
        update={"created_at": datetime(2020, 1, 1, tzinfo=UTC), "expires_at": datetime.now(UTC)}
    )
    f.merge(old.key.encode(), encode(old))
    assert len(f.cache.store) == 0 and f.skipped == 1
    off = feed(CacheRules(enabled=False))
    off.merge(b"a" * 64, encode(answer()))
    assert len(off.cache.store) == 0


def test_a_cache_record_too_large_for_its_topic_becomes_a_tombstone() -> None:
    record = Outgoing(TOPICS.cache, b"a" * 64, encode(answer()))
    instead = reroute(record, 1, True, TOPICS)
    assert instead.tombstone and instead.payload is None and instead.key == record.key
    assert reroute(record, 1, False, TOPICS) == record  # any other failure: sent again


def _routed() -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": [{"role": "user", "content": "hi"}],
            "hints": {"cache": True},
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1),
        candidates=["nano"],
        routed_at=datetime.now(UTC),
    )


def _served(content: str) -> ServeOutcome:
    response = RouteResponse(
        id="r1",
        tenant="acme",
        status="ok",
        content=content,
        finish_reason="stop",
        model="nano",
        provider="openai",
        tier=Tier.ECONOMY,
        cost_usd=Decimal("0.0001"),
    )
    return ServeOutcome(response, [])


def test_a_new_answer_rides_with_its_response_and_is_kept_once_published() -> None:
    cache = ResponseCache(CacheRules, clock=time.time)
    worker = WorkerCache(cache, "127.0.0.1:1", TOPICS, "read_committed", max_record_bytes=10_000)
    kept = worker.to_keep(_routed(), _served("hello"))
    assert kept is not None
    assert kept.record.topic == "t.cache" and kept.record.key == kept.answer.key.encode()
    assert CachedAnswer.model_validate_json(kept.record.value) == kept.answer
    assert worker.lookup(_routed()) is None  # not before its publish landed
    worker.published(kept)
    hit = worker.lookup(_routed())
    assert hit is not None and hit.answer.content == "hello"
    # an answer the topic would refuse is neither sent nor kept
    assert worker.to_keep(_routed(), _served("x" * 20_000)) is None
