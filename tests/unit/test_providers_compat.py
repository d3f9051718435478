"""The OpenAI-compatible family: each member's quirks against example payloads from its
docs, and every member through the simulator over real HTTP, billed exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.pricing.families import FAMILIES, family_defaults
from tierline.processors.providers.call import call_model
from tierline.processors.providers.compat import DIALECTS, dialect_for
from tierline.processors.providers.registry import ADAPTERS, adapter_for
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RouteRequest, Usage

COMPAT = sorted(set(DIALECTS) - {"openai"})
# one model per family; the self-hosted ones have no public price
MODELS: dict[str, dict[str, Any]] = {
    "deepseek-chat": {"provider": "deepseek"},
    "mistral-small-latest": {"provider": "mistral"},
    "qwen-plus": {"provider": "qwen"},
    "llama-3.1-8b-instant": {"provider": "groq"},
    "meta-llama/Llama-3.3-70B-Instruct-Turbo": {"provider": "together"},
    "openai/gpt-4.1-nano": {"provider": "openrouter"},
    "Qwen/Qwen3-8B": {
        "provider": "vllm",
        "price": {"input": "0.05", "output": "0.10", "cached_input": "0.01"},
    },
    "llama3.1": {"provider": "ollama", "price": {"input": "0", "output": "0"}},
}
BY_FAMILY = {entry["provider"]: name for name, entry in MODELS.items()}
CATALOG = Catalog.from_config(
    {"models": MODELS, "tiers": {t: ["deepseek-chat"] for t in ("economy", "standard", "premium")}}
)


def request(**params: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "params": params,
        }
    )


def build(family: str, req: RouteRequest, key: str | None = "k-test") -> tuple[Any, Any]:
    call = adapter_for(family).build(CATALOG.model(BY_FAMILY[family]), req, key)
    return call, orjson.loads(call.body)


def test_every_family_has_defaults_an_adapter_and_a_catalog_model() -> None:
    assert set(ADAPTERS) == set(FAMILIES)
    assert set(BY_FAMILY) == set(COMPAT)
    for family in COMPAT:
        assert adapter_for(family).family == family
        assert family_defaults(family).simulator_path == "/v1"


@pytest.mark.parametrize("family", COMPAT)
def test_compat_requests_use_max_tokens_system_role_and_the_family_base(family: str) -> None:
    call, body = build(family, request(max_tokens=50, temperature=0.3))
    assert call.url == f"{family_defaults(family).api_base}/chat/completions"
    assert call.headers["authorization"] == "Bearer k-test"
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert body["temperature"] == 0.3
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_families_without_json_schema_get_json_mode() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    for family in COMPAT:
        _, body = build(family, request(response_format=fmt))
        expected = fmt if dialect_for(family).json_schema else {"type": "json_object"}
        assert body["response_format"] == expected, family
    assert {f for f in COMPAT if not dialect_for(f).json_schema} == {"deepseek", "groq", "qwen"}


def test_family_specific_request_fields() -> None:
    _, body = build("qwen", request())
    assert body["enable_thinking"] is False
    call, _ = build("openrouter", request())
    assert call.headers["X-Title"] == "tierline"
    call, _ = build("ollama", request(), key=None)
    assert "authorization" not in call.headers
    assert call.url == "http://localhost:11434/v1/chat/completions"


def test_self_hosted_families_need_no_key() -> None:
    assert CATALOG.model("llama3.1").key_env == ""
    assert CATALOG.model("Qwen/Qwen3-8B").key_env == ""
    assert CATALOG.model("deepseek-chat").key_env == "DEEPSEEK_API_KEY"


# --------------------------------------------------------------------------- replies


def completion(usage: dict[str, Any], **choice: Any) -> bytes:
    base = {"index": 0, "message": {"role": "assistant", "content": "Hello!"}}
    base["finish_reason"] = "stop"
    base.update(choice)
    return orjson.dumps(
        {
            "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
            "object": "chat.completion",
            "created": 1705651092,
            "model": "deepseek-chat",
            "choices": [base],
            "usage": usage,
        }
    )


# DeepSeek's chat completion example, its context-caching fields filled in.
DEEPSEEK_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "prompt_cache_hit_tokens": 1024,
    "prompt_cache_miss_tokens": 176,
}


def test_deepseek_cache_hits_are_priced_exactly() -> None:
    reply = adapter_for("deepseek").parse(200, {}, completion(DEEPSEEK_USAGE))
    assert reply.usage == Usage(input_tokens=1200, cached_input_tokens=1024, output_tokens=300)
    assert reply.request_id == "930c60df-bf64-41c9-a88e-3ec75f81e00e"
    # deepseek-chat: $0.28 cache miss, $0.028 cache hit, $0.42 out per 1M
    #   176 * 2.8e-7 = 0.00004928; 1,024 * 2.8e-8 = 0.000028672; 300 * 4.2e-7 = 0.000126
    price = CATALOG.model("deepseek-chat").price
    assert cost_of(reply.usage, price) == Decimal("0.000203952")


def test_deepseek_hit_and_miss_alone_are_enough() -> None:
    usage = {"prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36, "completion_tokens": 5}
    reply = adapter_for("deepseek").parse(200, {}, completion(usage))
    assert reply.usage == Usage(input_tokens=100, cached_input_tokens=64, output_tokens=5)


def test_deepseek_insufficient_resources_is_an_overload() -> None:
    body = completion(DEEPSEEK_USAGE, finish_reason="insufficient_system_resource")
    with pytest.raises(ProviderError) as caught:
        adapter_for("deepseek").parse(200, {}, body)
    assert caught.value.error_type == ErrorType.OVERLOADED


def test_deepseek_out_of_balance_is_auth() -> None:
    body = orjson.dumps({"error": {"message": "Insufficient Balance", "type": "unknown_error"}})
    with pytest.raises(ProviderError) as caught:
        adapter_for("deepseek").parse(402, {}, body)
    assert caught.value.error_type == ErrorType.AUTH


def test_mistral_quirks() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    adapter = adapter_for("mistral")
    reply = adapter.parse(200, {}, completion(usage, finish_reason="model_length"))
    assert reply.finish_reason == "length" and reply.truncated
    chunks = [{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}]
    chunks.append({"type": "text", "text": "Bonjour."})
    reply = adapter.parse(200, {}, completion(usage, message={"content": chunks}))
    assert reply.content == "Bonjour."
    with pytest.raises(ProviderError) as caught:
        adapter.parse(200, {}, completion(usage, finish_reason="error"))
    assert caught.value.error_type == ErrorType.SERVER_ERROR
    body = orjson.dumps(
        {
            "object": "error",
            "message": "Prompt contains 40000 tokens, too large for model with 32768 maximum "
            "context length",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    )
    with pytest.raises(ProviderError) as caught:
        adapter.parse(400, {}, body)
    assert caught.value.error_type == ErrorType.CONTEXT_TOO_LONG


def test_together_eos_is_stop() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    reply = adapter_for("together").parse(200, {}, completion(usage, finish_reason="eos"))
    assert reply.finish_reason == "stop"


def test_openrouter_cache_writes_and_errors_in_a_200() -> None:
    usage = {
        "prompt_tokens": 194,
        "completion_tokens": 2,
        "total_tokens": 196,
        "cost": 0.95,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    reply = adapter_for("openrouter").parse(200, {}, completion(usage))
    assert reply.usage == Usage(input_tokens=194, cache_write_tokens=100, output_tokens=2)
    body = orjson.dumps({"error": {"code": 429, "message": "Rate limit exceeded", "metadata": {}}})
    with pytest.raises(ProviderError) as caught:
        adapter_for("openrouter").parse(200, {"retry-after": "4"}, body)
    assert caught.value.error_type == ErrorType.RATE_LIMITED
    assert caught.value.retry_after_s == 4.0


def test_groq_usage_with_timings() -> None:
    usage = {
        "queue_time": 0.037,
        "prompt_tokens": 18,
        "prompt_time": 0.000680,
        "completion_tokens": 556,
        "completion_time": 0.463,
        "total_tokens": 574,
        "total_time": 0.464,
    }
    reply = adapter_for("groq").parse(200, {"x-request-id": "req_01j"}, completion(usage))
    assert reply.usage == Usage(input_tokens=18, output_tokens=556)
    assert reply.request_id == "req_01j"


def test_ollama_error_string() -> None:
    body = orjson.dumps({"error": 'model "llama9" not found, try pulling it first'})
    with pytest.raises(ProviderError) as caught:
        adapter_for("ollama").parse(404, {}, body)
    assert caught.value.error_type == ErrorType.AUTH
    assert "llama9" in caught.value.message


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=9, cache_min_tokens=0))
    yield running
    await running.stop()


# cost of two calls of 121 prompt tokens and 7 output tokens, the second reading 103 cached
# tokens: (121 * in + 7 * out, 18 * in + 103 * cached + 7 * out), by hand from each price
EXPECTED = {
    # deepseek-chat: 0.28 / 0.028 / 0.42 per 1M
    "deepseek": ("0.000036820", "0.000010864"),
    # mistral-small-latest: 0.06 / (no cached price: input) / 0.18
    "mistral": ("0.000008520", "0.000008520"),
    # dashscope/qwen-plus: 0.40 / - / 1.20
    "qwen": ("0.000056800", "0.000056800"),
    # groq/llama-3.1-8b-instant: 0.05 / - / 0.08
    "groq": ("0.000006610", "0.000006610"),
    # together Llama-3.3-70B-Instruct-Turbo: 0.88 / - / 0.88
    "together": ("0.000112640", "0.000112640"),
    # openrouter/openai/gpt-4.1-nano: 0.10 / 0.025 / 0.40
    "openrouter": ("0.000014900", "0.000007175"),
    # vllm (pinned): 0.05 / 0.01 / 0.10
    "vllm": ("0.000006750", "0.000002630"),
    # ollama (pinned): free
    "ollama": ("0.000000000", "0.000000000"),
}


@pytest.mark.parametrize("family", COMPAT)
async def test_every_member_through_the_simulator_is_billed_exactly(
    family: str, sim: RunningSimulator
) -> None:
    model = CATALOG.with_simulator(sim.url).model(BY_FAMILY[family])
    assert model.api_base == f"{sim.url}/v1"
    adapter = adapter_for(family)
    system = "s" * 400

    def chat(user: str) -> RouteRequest:
        return RouteRequest.model_validate(
            {
                "id": "r",
                "tenant": "acme",
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
            }
        )

    async with httpx.AsyncClient() as client:
        first = await call_model(
            client, adapter, model, chat("a" * 36 + "[sim:output_tokens=7]"), "sim-key", 5.0
        )
        second = await call_model(
            client, adapter, model, chat("b" * 36 + "[sim:output_tokens=7]"), "sim-key", 5.0
        )
    assert first.content and first.finish_reason == "stop" and first.request_id
    assert first.usage == Usage(input_tokens=121, output_tokens=7)
    cached = 0 if family == "ollama" else 103  # Ollama reports no cached tokens
    assert second.usage == Usage(input_tokens=121, cached_input_tokens=cached, output_tokens=7)
    costs = (cost_of(first.usage, model.price), cost_of(second.usage, model.price))
    assert costs == tuple(Decimal(c) for c in EXPECTED[family])


def test_cache_control_reaches_only_openrouter() -> None:
    req = RouteRequest.model_validate(
        {
            "id": "r",
            "tenant": "t",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "long doc", "cache_control": {"type": "ephemeral"}}
                    ],
                }
            ],
        }
    )
    for family in COMPAT:
        _, body = build(family, req)
        part = body["messages"][0]["content"][0]
        assert ("cache_control" in part) == (family == "openrouter"), family
