"""The gateway's translations: OpenAI bodies to RouteRequests, answers to chat.completions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.unit.policy_support import Fixed, make_catalog
from tierline.processors.gateway.model_names import AUTO, choose, model_list
from tierline.processors.gateway.openai_request import (
    parse_body,
    to_route_request,
    wants_usage_chunk,
)
from tierline.processors.gateway.openai_response import answer, chat_completion
from tierline.processors.gateway.statuses import STATUS_OF, GatewayError, from_pipeline
from tierline.processors.routing.decide import route
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import (
    ErrorInfo,
    ErrorType,
    LatencyClass,
    RouteRequest,
    RouteResponse,
    RoutingDecision,
    Tier,
    Usage,
)

CATALOG = make_catalog()
HELLO = [{"role": "user", "content": "Say hello"}]


def translate(**body: Any) -> RouteRequest:
    body.setdefault("model", AUTO)
    body.setdefault("messages", HELLO)
    return to_route_request(body, request_id="r1", tenant="acme", catalog=CATALOG)


def refusal(**body: Any) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        translate(**body)
    return refused.value


# ---------------------------------------------------------------- requests


def test_an_openai_body_becomes_a_route_request_for_the_keys_tenant() -> None:
    request = translate(
        messages=[
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": [{"type": "text", "text": "Label: refund"}]},
        ],
        temperature=0,
        top_p=0.5,
        max_completion_tokens=64,
        stop=["\n\n"],
        response_format={"type": "json_object"},
        user="u-193",
        metadata={"feature": "ticket-triage", "env": "prod"},
    )
    assert (request.id, request.tenant, request.reply_to) == ("r1", "acme", None)
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.params.model_dump(exclude_none=True) == {
        "max_tokens": 64,
        "temperature": 0.0,
        "top_p": 0.5,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
        "stream": False,
    }
    assert request.metadata.feature == "ticket-triage" and request.metadata.user == "u-193"
    assert request.metadata.tags == {"env": "prod"}
    assert request.hints.model is None and request.hints.min_tier is None
    assert request.created_at is not None


def test_max_tokens_is_read_when_max_completion_tokens_is_absent() -> None:
    assert translate(max_tokens=10).params.max_tokens == 10
    assert translate(max_tokens=10, max_completion_tokens=10).params.max_tokens == 10
    assert refusal(max_tokens=10, max_completion_tokens=20).param == "max_completion_tokens"


@pytest.mark.parametrize("tier", list(Tier))
def test_a_tierline_tier_name_pins_that_tier(tier: Tier) -> None:
    request = translate(model=f"tierline/{tier}")
    assert request.hints.min_tier is tier and request.hints.max_tier is tier
    routed = route(request, Fixed(score=0.9), TierRules(), CATALOG)
    assert routed.decision.tier is tier
    assert (request.hints.latency is LatencyClass.BATCH) == (tier is Tier.BATCH)


def test_a_catalog_model_name_pins_that_model() -> None:
    request = translate(model="s2")
    assert request.hints.model == "s2"
    assert route(request, Fixed(score=0.0), TierRules(), CATALOG).candidates == ["s2"]


@pytest.mark.parametrize("name", ["gpt-9", "tierline/platinum", "tierline/", "tierline/s2"])
def test_an_unknown_model_is_a_400_model_not_found_saying_where_to_look(name: str) -> None:
    refused = refusal(model=name)
    assert (refused.status, refused.code, refused.param) == (400, "model_not_found", "model")
    assert "/v1/models" in refused.message and AUTO in refused.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"messages": "hello"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"model": 7}, "model"),
        ({"stop": 3}, "stop"),
        ({"metadata": {"feature": 3}}, "metadata.feature"),
        ({"metadata": ["x"]}, "metadata"),
        ({"metadata": {"feature": " padded"}}, "metadata.feature"),
        ({"user": "bad\x07user"}, "user"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_wrong_types_are_400s_naming_the_field(body: dict[str, Any], param: str) -> None:
    refused = refusal(**body)
    assert (refused.status, refused.param) == (400, param), refused.message
    assert param.split("[")[0].split(".")[0] in refused.message


@pytest.mark.parametrize("field", ["tenant", "reply_to", "id", "hints", "params", "replay"])
def test_route_request_fields_in_the_body_are_refused_never_honoured(field: str) -> None:
    refused = refusal(**{field: "globex.replies"})
    assert (refused.status, refused.param, refused.code) == (400, field, "invalid_request")
    assert "not accepted" in refused.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "function", "name": "f", "content": "42"}]}, "messages[0]"),
        (
            {"messages": [{"role": "assistant", "function_call": {"name": "f"}}]},
            "messages[0]",
        ),
        ({"seed": 7}, "seed"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"frobnicate": True}, "frobnicate"),
        (
            {"messages": [{"role": "user", "content": "hi", "audio": {"id": "a1"}}]},
            "messages[0].audio",
        ),
    ],
)
def test_what_is_not_served_is_a_400_unsupported_naming_the_parameter(
    body: dict[str, Any], param: str
) -> None:
    refused = refusal(**body)
    assert (refused.status, refused.code, refused.param) == (400, "unsupported", param)
    assert "not supported by tierline's gateway" in refused.message


def test_stream_asks_the_pipeline_to_stream_and_stream_options_need_it() -> None:
    assert translate(stream=True).params.stream is True
    assert translate().params.stream is False
    body = {"stream": True, "stream_options": {"include_usage": True}}
    assert translate(**body).params.stream is True
    assert wants_usage_chunk(body) and not wants_usage_chunk({"stream": True})
    refused = refusal(stream_options={"include_usage": True})
    assert (refused.status, refused.param) == (400, "stream_options")
    assert refusal(stream=True, stream_options={"include_usage": "yes"}).status == 400
    assert refusal(stream=True, stream_options={"frobnicate": True}).status == 400


def test_defaults_of_unsupported_features_are_accepted() -> None:
    request = translate(stream=False, n=1, tools=[], tool_choice="none", logprobs=False)
    assert request.id == "r1"
    assert translate(seed=None, stream=None, frobnicate=None).id == "r1"  # null is absent


def test_an_answer_passed_back_as_history_is_read_without_its_output_fields() -> None:
    previous: dict[str, Any] = {
        "role": "assistant",
        "content": "Hello!",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "tool_calls": None,
        "function_call": None,
    }
    request = translate(messages=[*HELLO, previous, {"role": "user", "content": "Again"}])
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]
    assert request.messages[1].model_dump(exclude_none=True) == {
        "role": "assistant",
        "content": "Hello!",
    }


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "a", "model": "b"}', "not valid JSON"),
        (b'{"temperature": NaN}', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
    ],
)
def test_bodies_that_are_not_strict_json_objects_are_400s(raw: bytes, says: str) -> None:
    with pytest.raises(GatewayError) as refused:
        parse_body(raw)
    assert refused.value.status == 400 and says in refused.value.message


# ---------------------------------------------------------------- models


def test_the_model_list_names_auto_every_tier_and_every_servable_model() -> None:
    catalog = make_catalog(tiers={t: ["e1", "s1"] for t in Tier})  # p1 etc. in no tier
    listed = model_list(catalog, created=1)
    assert listed["object"] == "list"
    ids = [m["id"] for m in listed["data"]]
    assert ids == [AUTO, *(f"tierline/{t}" for t in Tier), "e1", "s1"]
    assert {m["object"] for m in listed["data"]} == {"model"}
    assert listed["data"][-1]["owned_by"] == "openai"
    with pytest.raises(GatewayError):
        choose("p1", catalog)  # in the catalog, in no tier: cannot be served


# ---------------------------------------------------------------- answers


def ok_response(**extra: Any) -> RouteResponse:
    fields: dict[str, Any] = {
        "id": "r1",
        "tenant": "acme",
        "status": "ok",
        "content": '{"label": "billing"}',
        "finish_reason": "stop",
        "model": "e1",
        "provider": "openai",
        "tier": Tier.ECONOMY,
        "usage": Usage(input_tokens=41, cached_input_tokens=5, output_tokens=7),
        "cost_usd": Decimal("0.000006900"),
        "attempts": 1,
        "decision": RoutingDecision(
            task="classification", tier=Tier.ECONOMY, score=0.1, reasons=["task=classification"]
        ),
        "created_at": datetime(2026, 11, 22, 6, 34, 48, tzinfo=UTC),
    }
    return RouteResponse(**(fields | extra))


def test_an_answer_is_a_chat_completion_with_usage_and_the_tierline_extension() -> None:
    completion = chat_completion(ok_response())
    assert completion["object"] == "chat.completion" and completion["id"] == "r1"
    assert completion["model"] == "e1"
    assert completion["created"] == int(datetime(2026, 11, 22, 6, 34, 48, tzinfo=UTC).timestamp())
    (choice,) = completion["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": '{"label": "billing"}',
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert completion["usage"]["prompt_tokens"] == 41
    assert completion["usage"]["completion_tokens"] == 7
    assert completion["usage"]["total_tokens"] == 48
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}
    extension = completion["tierline"]
    assert extension["cost_usd"] == "0.000006900"  # a decimal string, never a float
    assert extension["tier"] == "economy" and extension["provider"] == "openai"
    assert extension["reasons"] == ["task=classification"] and extension["attempts"] == 1
    assert extension["cached"] is False and extension["trimmed_messages"] == 0
    orjson.dumps(completion)  # all of it is JSON
    levers = chat_completion(ok_response(cached=True, trimmed_messages=6))["tierline"]
    assert levers["cached"] is True and levers["trimmed_messages"] == 6


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        (ErrorType.INVALID_REQUEST, 400),
        (ErrorType.UNKNOWN_MODEL, 400),
        (ErrorType.CONTEXT_TOO_LONG, 400),
        (ErrorType.POLICY_DENIED, 403),
        (ErrorType.PAYLOAD_TOO_LARGE, 413),
        (ErrorType.NO_CANDIDATE, 422),
        (ErrorType.BUDGET_EXCEEDED, 429),
        (ErrorType.RATE_LIMITED, 502),
        (ErrorType.SERVER_ERROR, 502),
        (ErrorType.AUTH, 502),
        (ErrorType.UNAVAILABLE, 503),
        (ErrorType.TIMEOUT, 504),
        (ErrorType.INTERNAL, 500),
    ],
)
def test_pipeline_errors_map_to_statuses_the_sdk_understands(
    error_type: ErrorType, status: int
) -> None:
    failed = RouteResponse.from_error(
        "r1", "acme", ErrorInfo(type=error_type, message="what went wrong"), attempts=2
    )
    got, body, _ = answer(failed)
    assert got == status
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] == "what went wrong"
    assert body["tierline"]["attempts"] == 2


def test_every_error_type_has_a_status() -> None:
    assert set(STATUS_OF) == set(ErrorType)


def test_budget_exceeded_tells_the_sdk_not_to_retry() -> None:
    failure = from_pipeline(ErrorInfo(type=ErrorType.BUDGET_EXCEEDED, message="spent"))
    assert failure.headers() == {"x-should-retry": "false"}
    assert failure.body()["error"]["type"] == "insufficient_quota"
    retryable = from_pipeline(ErrorInfo(type=ErrorType.SERVER_ERROR, message="x", retryable=True))
    assert retryable.headers() == {"x-should-retry": "true"}
    assert from_pipeline(ErrorInfo(type=ErrorType.UNKNOWN_MODEL, message="x")).code == (
        "model_not_found"
    )
