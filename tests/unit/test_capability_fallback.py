"""A 400 that says the model lacks a capability moves the walk to the next candidate;
any other 400 still ends it. Recognized messages, then the walk over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.capability_errors import unsupported_capability
from tierline.processors.providers.gemini import GeminiAdapter
from tierline.processors.providers.http_errors import error_for_status
from tierline.processors.providers.keys import KeyRing
from tierline.processors.providers.openai import OpenAIAdapter
from tierline.processors.serving.backoff import Backoff
from tierline.processors.serving.walk import Dispatcher, RetryPlan
from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    start_simulator,
)
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier


@pytest.mark.parametrize(
    ("message", "capability"),
    [
        ("registry.ollama.ai/library/gemma:2b does not support tools", "tools"),
        ("deepseek-reasoner does not support Function Calling", "tools"),
        ("Unsupported parameter: 'tools' is not supported with this model.", "tools"),
        ("Function calling is not enabled for models/gemma-3-27b-it", "tools"),
        ("Function calling is not supported for this model", "tools"),
        (
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
            "to be set",
            "tools",
        ),
        ("Invalid content type. image_url is only supported by certain models.", "images"),
        ("messages[0]: unknown variant `image_url`, expected `text` at line 1", "images"),
        ("This model does not support image input.", "images"),
        (
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported with "
            "this model.",
            "json_schema",
        ),
        # a request that is wrong everywhere is not a capability
        (
            "Invalid schema for function 'get_weather': In context=('properties', 'x'), "
            "'format' is not supported",
            None,
        ),
        ("Invalid 'tools[0].function.name': string does not match pattern.", None),
        ("tools.0.custom.input_schema: Field required", None),
        ("max_tokens: 100000 > 64000, which is the maximum allowed", None),
        ("Invalid value: 'tool'. Supported values are: 'system', 'assistant', 'user'.", None),
    ],
)
def test_capability_refusals_are_told_from_bad_requests(
    message: str, capability: str | None
) -> None:
    assert unsupported_capability(message) == capability


def test_only_a_bad_request_can_be_a_capability_refusal() -> None:
    refused = error_for_status(400, {}, "llama3 does not support tools")
    assert refused.error_type == ErrorType.BAD_REQUEST and refused.unsupported == "tools"
    assert refused.kind.next_model_helps and not refused.kind.retryable
    plain = error_for_status(400, {}, "messages: Field required")
    assert plain.unsupported is None and not plain.kind.next_model_helps
    server = error_for_status(500, {}, "tools are not available right now")
    assert server.error_type == ErrorType.SERVER_ERROR and server.unsupported is None


def test_adapters_type_their_providers_refusals() -> None:
    body = {
        "error": {
            "message": "Unsupported parameter: 'tools' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "tools",
            "code": "unsupported_parameter",
        }
    }
    with pytest.raises(Exception) as openai_refusal:
        OpenAIAdapter().parse(400, {}, orjson.dumps(body))
    assert getattr(openai_refusal.value, "unsupported", None) == "tools"
    google = {
        "error": {
            "code": 400,
            "message": "Function calling is not enabled for models/gemma-3-27b-it",
            "status": "INVALID_ARGUMENT",
        }
    }
    with pytest.raises(Exception) as gemini_refusal:
        GeminiAdapter().parse(400, {}, orjson.dumps(google))
    assert getattr(gemini_refusal.value, "unsupported", None) == "tools"


# ------------------------------------------------------------------ the walk

CATALOG = {
    "models": {
        "gemma-3-27b-it": {"provider": "gemini", "price": {"input": "0.05", "output": "0.1"}},
        "o1-mini": {"provider": "openai", "price": {"input": "0.08", "output": "0.2"}},
        "gpt-4.1-nano": {"provider": "openai"},
    },
    "tiers": {t: ["gemma-3-27b-it", "gpt-4.1-nano"] for t in ("economy", "standard", "premium")},
}
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    no_tools = ModelOverride(tools=False)
    profile = SimulatorProfile(seed=4, models={"gemma-3-27b-it": no_tools, "o1-mini": no_tools})
    running = await start_simulator(profile)
    yield running
    await running.stop()


@pytest.fixture
async def dispatcher(sim: RunningSimulator) -> AsyncIterator[Dispatcher]:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        retry = RetryPlan(max_retries=2, call_timeout_s=5, backoff=Backoff(base_s=0.01, cap_s=0.02))
        yield Dispatcher(catalog, client, KeyRing({}, fallback="sim-key"), retry, seed=1)


def routed(candidates: list[str], **params: Any) -> RoutedRequest:
    request = RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": [{"role": "user", "content": "Find the order: call lookup"}],
            "params": params,
        }
    )
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1, reasons=["test"]),
        candidates=candidates,
        routed_at=datetime.now(UTC),
    )


async def test_a_model_that_refuses_tools_hands_over_to_the_next_candidate(
    dispatcher: Dispatcher, sim: RunningSimulator
) -> None:
    outcome = await dispatcher.serve(
        routed(["gemma-3-27b-it", "o1-mini", "gpt-4.1-nano"], tools=[TOOL])
    )
    response = outcome.response
    assert response.status == "ok" and response.model == "gpt-4.1-nano"
    assert response.finish_reason == "tool_calls" and response.tool_calls is not None
    assert orjson.loads(response.tool_calls[0].function.arguments) == {
        "query": "query from gpt-4.1-nano"
    }
    assert response.attempts == 3  # one refusal each, not retried
    assert response.decision is not None
    assert response.decision.reasons[-2:] == [
        "gemma-3-27b-it does not support tools (function calling): next candidate",
        "o1-mini does not support tools (function calling): next candidate",
    ]
    assert [c.model for c in outcome.costs] == ["gpt-4.1-nano"]  # a refusal bills nothing
    assert sim.stats.by_model == {"gemma-3-27b-it": 1, "o1-mini": 1, "gpt-4.1-nano": 1}


async def test_when_every_candidate_refuses_the_answer_is_the_last_refusal(
    dispatcher: Dispatcher,
) -> None:
    outcome = await dispatcher.serve(routed(["gemma-3-27b-it", "o1-mini"], tools=[TOOL]))
    error = outcome.response.error
    assert outcome.failed and error is not None and error.type == ErrorType.BAD_REQUEST
    assert "'tools' is not supported with this model" in error.message
    assert outcome.response.attempts == 2


async def test_a_bad_request_still_ends_the_walk(dispatcher: Dispatcher) -> None:
    outcome = await dispatcher.serve(routed(["gpt-4.1-nano", "o1-mini"], max_tokens=10))
    assert outcome.response.status == "ok"  # control: the request itself is fine
    bad = routed(["o1-mini", "gpt-4.1-nano"])
    bad.request.messages[0].content = "hi [sim:error=400]"
    outcome = await dispatcher.serve(bad)
    assert outcome.failed and outcome.response.attempts == 1
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.BAD_REQUEST


async def test_refusing_what_the_request_does_not_use_is_an_ordinary_bad_request() -> None:
    refusal = {
        "error": {
            "message": "Unsupported parameter: 'tools' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "tools",
            "code": "unsupported_parameter",
        }
    }
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(orjson.loads(request.content)["model"])
        return httpx.Response(400, json=refusal)

    catalog = Catalog.from_config(CATALOG)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        walk = Dispatcher(catalog, client, KeyRing({}, fallback="k"), RetryPlan(), seed=1)
        outcome = await walk.serve(routed(["o1-mini", "gpt-4.1-nano"]))
        assert outcome.failed and calls == ["o1-mini"]
        assert outcome.response.decision is not None
        assert not any("next candidate" in r for r in outcome.response.decision.reasons)
        calls.clear()
        outcome = await walk.serve(routed(["o1-mini", "gpt-4.1-nano"], tools=[TOOL]))
        assert outcome.failed and calls == ["o1-mini", "gpt-4.1-nano"]
