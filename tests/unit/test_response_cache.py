"""The response cache's rules: its key, who may use it, what a hit serves, bills and saves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tierline.processors.routing.policy import CacheRules
from tierline.processors.routing.policy_file import PolicyFileError, parse_policy
from tierline.processors.serving.cache_key import cache_key, cacheable
from tierline.processors.serving.response_cache import ResponseCache, served_from_cache
from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import (
    CachedAnswer,
    CostRecord,
    ErrorInfo,
    ErrorType,
    Escalation,
    RoutedRequest,
    RouteRequest,
    RouteResponse,
    RoutingDecision,
    Tier,
    Usage,
)

NOW = 1_800_000_000.0  # epoch seconds: 2027-01-15
BOOM = ErrorInfo(type=ErrorType.SERVER_ERROR, message="boom")


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "r1",
        "tenant": "acme",
        "messages": [
            {"role": "system", "content": "Label the ticket. JSON only."},
            {"role": "user", "content": "I was charged twice for March."},
        ],
        "params": {
            "temperature": 0,
            "max_tokens": 64,
            "stop": "\n\n",
            "response_format": {"type": "json_object", "schema": {"a": 1, "b": [2, 3]}},
        },
        "hints": {"cache": True},
    }
    base.update(overrides)
    return base


def request(**overrides: Any) -> RouteRequest:
    return RouteRequest.model_validate(body(**overrides))


def routed(
    req: RouteRequest | None = None,
    candidates: tuple[str, ...] = ("nano", "flash"),
    tier: Tier = Tier.ECONOMY,
    cascade: Escalation | None = None,
) -> RoutedRequest:
    return RoutedRequest(
        request=req or request(),
        decision=RoutingDecision(task="classification", tier=tier, score=0.1, reasons=["r"]),
        candidates=list(candidates),
        cascade=cascade,
        routed_at=datetime(2027, 1, 15, tzinfo=UTC),
    )


def miss(
    req: RouteRequest,
    model: str = "nano",
    cost: str = "0.000006900",
    content: str = '{"label": "billing"}',
    **response: Any,
) -> ServeOutcome:
    """What serving `req` for real gave: `model`'s answer, billed `cost`."""
    answer = RouteResponse(
        id=req.id,
        tenant=req.tenant,
        status="ok",
        content=content,
        finish_reason=response.pop("finish_reason", "stop"),
        model=model,
        provider="openai",
        tier=Tier.ECONOMY,
        usage=Usage(input_tokens=41, output_tokens=7),
        cost_usd=Decimal(cost),
        attempts=2,
        **response,
    )
    return ServeOutcome(answer, [])


class Rules:
    """The rules in force; a test swaps `now`, as a policy reload does."""

    def __init__(self, rules: CacheRules) -> None:
        self.now = rules

    def __call__(self) -> CacheRules:
        return self.now


def cache_of(
    rules: CacheRules | None = None, clock: Callable[[], float] = lambda: NOW
) -> ResponseCache:
    return ResponseCache(Rules(rules or CacheRules()), clock=clock)


def keep_miss(cache: ResponseCache, r: RoutedRequest, outcome: ServeOutcome) -> CachedAnswer:
    answer = cache.answer_to_keep(r, outcome)
    assert answer is not None
    assert cache.keep(answer, len(answer.model_dump_json()))
    return answer


# --------------------------------------------------------------------------- the key


def test_the_same_request_in_another_key_order_has_the_same_key() -> None:
    shuffled = orjson.loads(orjson.dumps(body()))
    shuffled = {k: shuffled[k] for k in reversed(list(shuffled))}
    shuffled["params"] = {k: shuffled["params"][k] for k in reversed(list(shuffled["params"]))}
    schema = {"b": [2, 3], "a": 1}
    shuffled["params"]["response_format"] = {"schema": schema, "type": "json_object"}
    shuffled["messages"] = [
        {"content": m["content"], "role": m["role"]} for m in body()["messages"]
    ]
    again = RouteRequest.model_validate_json(orjson.dumps(shuffled))
    assert cache_key(again, "nano") == cache_key(request(), "nano")


def test_what_no_model_sees_is_not_in_the_key() -> None:
    other = request(
        id="r2",
        hints={"cache": True, "task": "qa", "max_tier": "premium"},
        metadata={"feature": "triage", "user": "u-9", "tags": {"env": "prod"}},
        reply_to="acme.replies",
    )
    assert cache_key(other, "nano") == cache_key(request(), "nano")
    # spellings that are certainly alike: a lone stop string, and a param left out
    params = {**body()["params"], "stop": ["\n\n"], "top_p": None}
    assert cache_key(request(params=params), "nano") == cache_key(request(), "nano")


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "globex"},
        {"params": {**body()["params"], "temperature": 0.2}},
        {"params": {**body()["params"], "max_tokens": 65}},
        {"params": {**body()["params"], "response_format": {"type": "text"}}},
        {"params": {**body()["params"], "stop": ["\n"]}},
        {"messages": [{"role": "user", "content": "I was charged twice for March."}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    ],
)
def test_a_different_tenant_params_or_messages_is_a_different_key(change: dict[str, Any]) -> None:
    assert cache_key(request(**change), "nano") != cache_key(request(), "nano")


def test_a_different_model_is_a_different_key() -> None:
    assert cache_key(request(), "nano") != cache_key(request(), "flash")
    assert len(cache_key(request(), "nano")) == 64


def test_only_requests_that_allow_it_are_cacheable() -> None:
    rules = CacheRules()
    assert cacheable(request(), rules)  # hints.cache = true
    assert not cacheable(request(hints={}), rules)  # temperature 0, but the policy says no
    zero = CacheRules(temperature_zero=True)
    assert cacheable(request(hints={}), zero)
    warm = {**body()["params"], "temperature": 0.7}
    assert not cacheable(request(hints={}, params=warm), zero)
    assert not cacheable(request(hints={}, params={}), zero)  # unset: the provider's default
    assert not cacheable(request(hints={"cache": False}), zero)  # the request opts out
    assert cacheable(request(params=warm), zero)  # it opted in
    assert not cacheable(request(), CacheRules(enabled=False))


def test_a_request_that_is_not_cacheable_is_never_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = cache_of()
    r = routed()
    keep_miss(cache, r, miss(r.request))
    looked: list[str] = []
    get = cache.store.get

    def spy(key: str) -> CachedAnswer | None:
        looked.append(key)
        return get(key)

    monkeypatch.setattr(cache.store, "get", spy)
    for hints in ({"cache": False}, {}):
        assert cache.lookup(routed(request(hints=hints))) is None
    assert looked == []
    assert cache.lookup(r) is not None and len(looked) == 1


# --------------------------------------------------------------------------- a hit


def test_a_hit_bills_nothing_and_saves_what_the_miss_cost() -> None:
    cache = cache_of()
    first = routed()
    keep_miss(cache, first, miss(first.request, cost="0.000006900"))
    again = routed(request(id="r2"))
    hit = cache.lookup(again)
    assert hit is not None
    outcome = served_from_cache(again, hit, latency_ms=0.05)

    response = outcome.response
    assert response.cached and response.status == "ok" and response.id == "r2"
    assert response.content == '{"label": "billing"}' and response.finish_reason == "stop"
    assert (response.model, response.provider, response.tier) == ("nano", "openai", "economy")
    assert response.cost_usd == Decimal(0) and response.usage == Usage()
    assert response.attempts == 0 and outcome.attempts == []
    assert response.decision is not None
    assert response.decision.reasons[-1].startswith("cache hit: the answer nano gave at ")
    (record,) = outcome.costs
    assert record.record_id == CostRecord.cache_id("r2") == "r2#cache"
    assert record.record_id != CostRecord.make_id("r2", 1)  # never an attempt's bill
    assert record.cost_usd == Decimal(0)
    assert record.saved_usd == Decimal("0.000006900")
    assert format(record.saved_usd, "f") == "0.000006900"  # exact, as a decimal string
    assert (record.input_tokens, record.output_tokens) == (0, 0)
    assert (record.tenant, record.model, record.status) == ("acme", "nano", "ok")
    assert cache.hits == 1
    # served again (a redelivery the dedupe missed): the same record, which the cost table
    # collapses, so the hit is billed (0) once
    assert served_from_cache(again, hit).costs[0].record_id == record.record_id


def test_another_tenant_with_the_same_body_misses() -> None:
    cache = cache_of()
    first = routed()
    keep_miss(cache, first, miss(first.request))
    assert cache.lookup(routed(request(tenant="globex"))) is None


def test_a_hit_comes_only_from_a_model_the_request_may_use() -> None:
    cache = cache_of()
    first = routed(candidates=("nano", "flash"))
    keep_miss(cache, first, miss(first.request, model="flash"))
    # pinned to nano (hints.model), or flash dropped by the sensitivity rules: no flash answer
    assert cache.lookup(routed(candidates=("nano",))) is None
    hit = cache.lookup(routed(candidates=("mini", "flash")))
    assert hit is not None and hit.answer.model == "flash"


def test_a_cascade_takes_a_cheap_answer_only_if_it_passes_the_check() -> None:
    cache = cache_of()
    plain = routed()
    keep_miss(cache, plain, miss(plain.request, model="nano", content="not json at all"))
    cascade = Escalation(tier=Tier.PREMIUM, candidates=["big"])
    assert cache.lookup(routed(cascade=cascade)) is None  # json_object wanted: it fails
    escalated = routed(candidates=("big",), tier=Tier.PREMIUM)
    keep_miss(cache, escalated, miss(escalated.request, model="big", cost="0.0012"))
    hit = cache.lookup(routed(cascade=cascade))
    assert hit is not None and (hit.answer.model, hit.tier) == ("big", Tier.PREMIUM)
    assert served_from_cache(routed(cascade=cascade), hit).response.tier == Tier.PREMIUM


@pytest.mark.parametrize(
    "outcome_of",
    [
        lambda r: ServeOutcome(RouteResponse.from_error(r.id, r.tenant, BOOM, model="nano"), []),
        lambda r: miss(r, finish_reason="content_filter"),
        lambda r: miss(r, cached=True),
    ],
    ids=["error", "content_filter", "already-a-hit"],
)
def test_answers_not_worth_keeping_are_not_kept(
    outcome_of: Callable[[RouteRequest], ServeOutcome],
) -> None:
    r = routed()
    assert cache_of().answer_to_keep(r, outcome_of(r.request)) is None


def test_a_cut_answer_is_kept_as_the_request_asked_for_it() -> None:
    r = routed()
    assert cache_of().answer_to_keep(r, miss(r.request, finish_reason="length")) is not None
    assert cache_of().answer_to_keep(routed(request(hints={})), miss(r.request)) is None


def test_an_answer_is_never_served_past_its_ttl() -> None:
    now = [NOW]
    cache = cache_of(CacheRules(ttl_s=60), clock=lambda: now[0])
    r = routed()
    answer = keep_miss(cache, r, miss(r.request))
    assert (answer.expires_at - answer.created_at).total_seconds() == 60
    now[0] += 59
    assert cache.lookup(r) is not None
    now[0] += 1
    assert cache.lookup(r) is None and len(cache.store) == 0


def test_a_shorter_ttl_in_a_reloaded_policy_holds_for_answers_already_kept() -> None:
    now = [NOW]
    rules = Rules(CacheRules(ttl_s=3600))
    cache = ResponseCache(rules, clock=lambda: now[0])
    r = routed()
    answer = keep_miss(cache, r, miss(r.request))
    now[0] += 120
    rules.now = CacheRules(ttl_s=60)
    assert cache.lookup(r) is None
    assert not cache.keep(answer, 100)  # read again from the topic: too old, not kept
    rules.now = CacheRules(enabled=False)
    assert cache.lookup(r) is None


def test_a_reloaded_policy_resizes_the_store() -> None:
    rules = Rules(CacheRules())
    cache = ResponseCache(rules, clock=lambda: NOW)
    for i in range(5):
        r = routed(request(messages=[{"role": "user", "content": f"q{i}"}]))
        keep_miss(cache, r, miss(r.request))
    rules.now = CacheRules(max_entries=2)
    cache.rules()
    assert len(cache.store) == 2


# --------------------------------------------------------------------------- the policy file


def test_the_cache_section_of_the_policy_file() -> None:
    policy = parse_policy(
        "[cache]\nttl_s = 600\ntemperature_zero = true\nmax_entries = 500\nmax_bytes = 1048576\n"
    )
    assert policy.cache == CacheRules(
        enabled=True, ttl_s=600, temperature_zero=True, max_entries=500, max_bytes=1048576
    )
    assert parse_policy("").cache == CacheRules()
    assert parse_policy("[cache]\nenabled = false\n").cache.ttl_s == CacheRules().ttl_s
    for bad in ("enabled = 1", "ttl_s = 0", "max_entries = -1", "colour = 'red'"):
        with pytest.raises(PolicyFileError, match="cache"):
            parse_policy(f"[cache]\n{bad}\n")
