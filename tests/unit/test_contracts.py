"""The message contracts: what they accept, what they refuse, and that JSON Schema matches them."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from tierline.schemas import (
    CostRecord,
    DeadLetter,
    RouteRequest,
    RouteResponse,
    Tier,
    Usage,
    decode,
    encode,
)
from tierline.schemas.export import OUT_DIR, topic_schemas


def request(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "req-1",
        "tenant": "acme",
        "messages": [{"role": "user", "content": "Summarize this."}],
    }
    base.update(overrides)
    return base


def test_minimal_request_gets_defaults() -> None:
    r = RouteRequest.model_validate(request())
    assert r.schema_version == 1
    assert r.hints.latency == "standard"
    assert r.params.max_tokens is None
    assert r.reply_to is None


def test_request_round_trips_through_orjson() -> None:
    r = RouteRequest.model_validate(
        request(
            params={
                "max_tokens": 64,
                "temperature": 0.2,
                "response_format": {"type": "json_object"},
            },
            hints={"task": "extraction", "min_tier": "standard", "max_cost_usd": "0.01"},
            metadata={"feature": "support-bot", "user": "u1", "tags": {"env": "prod"}},
            reply_to="acme.replies",
        )
    )
    again = decode(RouteRequest, encode(r))
    assert again == r
    assert again.hints.max_cost_usd == Decimal("0.01")
    assert again.params.wants_json()


@pytest.mark.parametrize(
    "bad",
    [
        request(id=""),
        request(id="x" * 129),
        request(messages=[]),
        request(hints={"min_tier": "platinum"}),
        request(hints={"min_tier": "premium", "max_tier": "economy"}),
        request(params={"temperature": 7}),
        request(params={"max_tokens": "many"}),
        request(reply_to="bad topic name!"),
        {"tenant": "acme", "messages": [{"role": "user", "content": "hi"}]},
    ],
)
def test_invalid_requests_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RouteRequest.model_validate(bad)


def test_prompt_text_joins_text_parts_and_skips_images() -> None:
    r = RouteRequest.model_validate(
        request(
            messages=[
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                },
            ]
        )
    )
    assert r.prompt_text() == "Be brief.\nWhat is this?"


def test_response_cost_is_a_decimal_string_on_the_wire() -> None:
    response = RouteResponse(id="r", tenant="t", status="ok", cost_usd=Decimal("0.000000123"))
    wire = orjson.loads(encode(response))
    assert wire["cost_usd"] == "0.000000123"
    assert decode(RouteResponse, encode(response)).cost_usd == Decimal("0.000000123")


def test_usage_adds_up() -> None:
    total = Usage(input_tokens=10, cached_input_tokens=4, output_tokens=3) + Usage(
        input_tokens=1, cache_write_tokens=1, output_tokens=2
    )
    assert total == Usage(
        input_tokens=11, cached_input_tokens=4, cache_write_tokens=1, output_tokens=5
    )


def test_cost_record_id_names_request_and_attempt() -> None:
    assert CostRecord.make_id("req-9", 2) == "req-9#2"


def test_dead_letter_headers_round_trip() -> None:
    letter = DeadLetter(
        reason="not JSON",
        error_type="invalid_request",
        source_topic="tierline.requests",
        source_partition=3,
        source_offset=42,
        request_id="",
        tenant="",
    )
    assert DeadLetter.from_headers(letter.to_headers()) == letter
    assert ("tierline.source_offset", b"42") in letter.to_headers()


def test_tier_ladder_ranks_batch_with_economy() -> None:
    assert [t.rank for t in Tier.ladder()] == [0, 1, 2]
    assert Tier.BATCH.rank == Tier.ECONOMY.rank


def test_committed_json_schemas_match_the_models() -> None:
    """Regenerate with `python -m schemas.export` when this fails."""
    generated = topic_schemas()
    committed = {p.name: p.read_text() for p in OUT_DIR.glob("*.json")}
    assert committed == generated
