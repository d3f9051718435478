"""Capabilities: a model without tools (images, json_schema) is no candidate for a request
that needs them; the catalog's flags say which, the config may correct them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.unit.policy_support import Fixed, make_catalog
from tierline.processors.errors import InputError
from tierline.processors.pricing.capabilities import Capabilities, Capability, needed
from tierline.processors.pricing.catalog import Catalog, CatalogError, ModelSpec, load_catalog
from tierline.processors.pricing.prices import bundled_price_book
from tierline.processors.routing.decide import route
from tierline.processors.routing.sensitivity_filter import SAFE_DEFAULTS, request_classes
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import ErrorType, RouteRequest, Tier

TOOL = {"type": "function", "function": {"name": "lookup"}}
CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}


def request(
    messages: list[dict[str, Any]] | None = None, hints: dict[str, Any] | None = None, **params: Any
) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": messages or [{"role": "user", "content": "Look it up."}],
            "params": params,
            "hints": hints or {},
        }
    )


def test_what_a_request_needs() -> None:
    assert needed(request()) == frozenset()
    assert needed(request(tools=[TOOL])) == {Capability.TOOLS}
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert needed(request(history)) == {Capability.TOOLS}  # no tools now, but calls to read
    picture = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, IMAGE]}]
    assert needed(request(picture, response_format=SCHEMA)) == {
        Capability.IMAGES,
        Capability.JSON_SCHEMA,
    }
    assert needed(request(response_format={"type": "json_object"})) == frozenset()


def test_the_bundled_catalog_carries_the_public_catalogs_flags() -> None:
    book = bundled_price_book()
    reasoner = book.get("deepseek-reasoner")
    assert reasoner is not None and reasoner.capabilities.tools is False
    nano = book.get("gpt-4.1-nano")
    assert nano is not None
    assert nano.capabilities == Capabilities(tools=True, images=True, json_schema=True)
    deepseek = book.get("deepseek-chat")
    assert deepseek is not None and deepseek.capabilities.images is None  # not said: unknown
    for model in load_catalog().models.values():  # every bundled model takes tools
        assert model.capabilities.tools is True, model.name


def test_a_config_entry_overrides_the_flags_and_is_checked() -> None:
    raw: dict[str, Any] = {
        "models": {
            "deepseek-reasoner": {"provider": "deepseek", "supports_function_calling": True},
            "gpt-4.1-nano": {"provider": "openai", "supports_vision": False},
            "mine": {"provider": "vllm", "price": {"input": 0, "output": 0}},
        },
        "tiers": {t: ["gpt-4.1-nano"] for t in ("economy", "standard", "premium")},
    }
    catalog = Catalog.from_config(raw)
    assert catalog.model("deepseek-reasoner").capabilities.tools is True
    assert catalog.model("gpt-4.1-nano").capabilities.images is False
    assert catalog.model("gpt-4.1-nano").capabilities.tools is True
    assert catalog.model("mine").capabilities == Capabilities()  # no catalog entry: unknown
    raw["models"]["mine"]["supports_function_calling"] = "no"
    with pytest.raises(CatalogError, match="supports_function_calling must be true or false"):
        Catalog.from_config(raw)


# ------------------------------------------------------------------ routing


def with_flags(catalog: Catalog, **flags: Capabilities) -> Catalog:
    models: dict[str, ModelSpec] = {}
    for name, spec in catalog.models.items():
        models[name] = ModelSpec(
            **{f: getattr(spec, f) for f in spec.__dataclass_fields__ if f != "capabilities"},
            capabilities=flags.get(name, Capabilities()),
        )
    return Catalog(models, {t: list(n) for t, n in catalog.tiers.items()})


NO_TOOLS = Capabilities(tools=False)
RULES = TierRules()


def test_a_model_without_tools_is_dropped_and_the_reasons_say_so() -> None:
    catalog = with_flags(make_catalog(), e1=NO_TOOLS)
    routed = route(request(tools=[TOOL]), Fixed(score=0.1), RULES, catalog)
    assert routed.decision.tier is Tier.ECONOMY and routed.candidates == ["e2"]
    assert "needs tools (function calling): dropped e1 (no tools)" in routed.decision.reasons
    plain = route(request(), Fixed(score=0.1), RULES, catalog)
    assert plain.candidates == ["e1", "e2"]  # a request without tools keeps it


def test_unknown_flags_keep_a_model() -> None:
    routed = route(request(tools=[TOOL]), Fixed(score=0.1), RULES, make_catalog())
    assert routed.candidates == ["e1", "e2"]


def test_a_tier_without_a_capable_model_hands_over_to_the_nearest_that_has_one() -> None:
    catalog = with_flags(make_catalog(), e1=NO_TOOLS, e2=NO_TOOLS)
    routed = route(request(tools=[TOOL]), Fixed(score=0.1), RULES, catalog)
    assert routed.decision.tier is Tier.STANDARD and routed.candidates == ["s2", "s1"]
    assert "needs tools (function calling): no economy model has it, standard serves" in (
        routed.decision.reasons
    )
    capped = request(hints={"max_tier": "economy"}, tools=[TOOL])
    with pytest.raises(InputError) as refused:
        route(capped, Fixed(score=0.1), RULES, catalog)
    assert refused.value.error_type == ErrorType.NO_CANDIDATE
    assert refused.value.message == (
        "no candidate model supports tools (function calling), which the request needs "
        "(economy: e1 (no tools), e2 (no tools))"
    )


def test_no_capable_model_anywhere_is_no_candidate_naming_every_need() -> None:
    blind = Capabilities(images=False)
    catalog = with_flags(
        make_catalog(), **dict.fromkeys(["e1", "e2", "s1", "s2", "p1", "p2"], blind)
    )
    picture = [{"role": "user", "content": [IMAGE]}]
    with pytest.raises(InputError) as refused:
        route(request(picture), Fixed(score=0.1), RULES, catalog)
    assert refused.value.error_type == ErrorType.NO_CANDIDATE
    assert "image input (vision)" in refused.value.message
    assert "premium: p1 (no images), p2 (no images)" in refused.value.message


def test_a_budgeted_request_only_takes_capable_models() -> None:
    catalog = with_flags(make_catalog(), s1=NO_TOOLS)
    routed = route(
        request(hints={"max_cost_usd": Decimal("1")}, tools=[TOOL]),
        Fixed(score=0.5),
        RULES,
        catalog,
    )
    assert routed.candidates == ["s2"]


def test_a_pinned_model_without_the_capability_is_refused() -> None:
    catalog = with_flags(make_catalog(), e1=NO_TOOLS)
    with pytest.raises(InputError) as refused:
        route(request(hints={"model": "e1"}, tools=[TOOL]), Fixed(score=0.1), RULES, catalog)
    assert refused.value.error_type == ErrorType.NO_CANDIDATE
    assert refused.value.message == (
        "model 'e1' does not support tools (function calling), which the request needs"
    )
    assert route(request(hints={"model": "e1"}), Fixed(score=0.1), RULES, catalog).candidates == [
        "e1"
    ]


def test_a_secret_in_a_tool_calls_arguments_is_detected_like_one_in_the_text() -> None:
    key = '{"token": "sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"}'
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Deploy it."},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": key}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "deployed"},
    ]
    assert "secret" in request_classes(request(history, tools=[TOOL]), SAFE_DEFAULTS)
