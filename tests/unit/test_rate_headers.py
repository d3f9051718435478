"""`announced_limits`: the rate-limit headers of OpenAI and Anthropic, read into `Announced`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tierline.processors.health.announced import Announced
from tierline.processors.providers.rate_headers import (
    announced_limits,
    parse_duration,
    parse_reset_time,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_openai_set() -> None:
    headers = {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-tokens": "29999000",
        "x-ratelimit-reset-tokens": "6m0s",
        "x-request-id": "req_1",
    }
    assert announced_limits(headers) == Announced(
        requests_limit=10_000,
        requests_remaining=9_999,
        requests_reset_s=0.006,
        tokens_limit=30_000_000,
        tokens_remaining=29_999_000,
        tokens_reset_s=360.0,
    )


def test_openai_429_prefers_retry_after_ms() -> None:
    got = announced_limits(
        {"retry-after": "1", "retry-after-ms": "250", "x-ratelimit-remaining-requests": "0"}
    )
    assert got is not None
    assert got.retry_after_s == 0.25
    assert got.requests_remaining == 0
    assert got.requests_limit is None
    # a broken retry-after-ms falls back to retry-after
    fallback = announced_limits({"retry-after": "1.5", "retry-after-ms": "soon"})
    assert fallback is not None and fallback.retry_after_s == 1.5


def test_anthropic_set() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-requests-reset": "2025-06-01T12:00:30Z",
        "anthropic-ratelimit-tokens-limit": "2400000",
        "anthropic-ratelimit-tokens-remaining": "2398000",
        "anthropic-ratelimit-tokens-reset": "2025-06-01T12:00:01.500Z",
        "anthropic-ratelimit-input-tokens-limit": "2000000",
        "anthropic-ratelimit-input-tokens-remaining": "1",
        "anthropic-ratelimit-input-tokens-reset": "2025-06-01T12:00:59Z",
        "retry-after": "3",
    }
    assert announced_limits(headers, now=NOW) == Announced(
        requests_limit=4000,
        requests_remaining=3999,
        requests_reset_s=30.0,
        tokens_limit=2_400_000,  # the tokens-* set wins over input-tokens-*
        tokens_remaining=2_398_000,
        tokens_reset_s=1.5,
        retry_after_s=3.0,
    )


def test_anthropic_input_tokens_stand_in_for_a_missing_tokens_set() -> None:
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "2000000",
        "anthropic-ratelimit-input-tokens-remaining": "1999000",
        "anthropic-ratelimit-input-tokens-reset": "2025-06-01T12:00:10+00:00",
        "anthropic-ratelimit-output-tokens-limit": "400000",
        "anthropic-ratelimit-output-tokens-remaining": "1",
    }
    got = announced_limits(headers, now=NOW)
    assert got == Announced(tokens_limit=2_000_000, tokens_remaining=1_999_000, tokens_reset_s=10)


def test_headers_are_case_insensitive() -> None:
    mixed = {"X-RateLimit-Limit-Requests": "5", "Anthropic-RateLimit-Tokens-Remaining": "7"}
    got = announced_limits(mixed)
    assert got is not None
    assert (got.requests_limit, got.tokens_remaining) == (5, 7)
    real = httpx.Headers({"X-RateLimit-Remaining-Tokens": "12", "Retry-After": "2"})
    got = announced_limits(real)
    assert got is not None
    assert (got.tokens_remaining, got.retry_after_s) == (12, 2.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("59.123s", 59.123),
        ("250ms", 0.25),
        ("1h2m3s", 3723.0),
        ("1m30.5s", 90.5),
        ("0s", 0.0),
        ("1.5ms", 0.0015),
        ("20us", 2e-5),
        ("2.5", 2.5),  # a bare number: seconds
        (" 7s ", 7.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "soon", "1m-2s", "s", "5x", "1s2", "-3s", "inf", "nan", "1 s"]
)
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_rfc3339_resets() -> None:
    assert parse_reset_time("2025-06-01T12:01:00Z", NOW) == 60.0
    assert parse_reset_time("2025-06-01T14:00:05+02:00", NOW) == 5.0
    assert parse_reset_time("2025-06-01T12:00:00.250000Z", NOW) == 0.25
    assert parse_reset_time("2025-06-01T12:00:02", NOW) == 2.0  # no offset: UTC
    assert parse_reset_time("2025-06-01T11:59:00Z", NOW) == 0.0  # past: never negative
    # a naive `now` is taken as UTC too
    assert parse_reset_time("2025-06-01T12:00:03Z", NOW.replace(tzinfo=None)) == 3.0
    plus_one = NOW.astimezone(timezone(timedelta(hours=1)))
    assert parse_reset_time("2025-06-01T12:00:04Z", plus_one) == 4.0
    assert parse_reset_time("tomorrow", NOW) is None


def test_retry_after_as_an_http_date() -> None:
    got = announced_limits({"retry-after": "Sun, 01 Jun 2025 12:00:09 GMT"}, now=NOW)
    assert got is not None and got.retry_after_s == 9.0


def test_garbage_is_ignored_field_by_field() -> None:
    headers = {
        "x-ratelimit-limit-requests": "lots",
        "x-ratelimit-remaining-requests": "-1",
        "x-ratelimit-reset-requests": "whenever",
        "x-ratelimit-limit-tokens": "1.5",
        "x-ratelimit-remaining-tokens": "42",
        "anthropic-ratelimit-requests-reset": "not a time",
        "retry-after": "-2",
    }
    assert announced_limits(headers, now=NOW) == Announced(tokens_remaining=42)


def test_nothing_announced_is_none() -> None:
    assert announced_limits({}) is None
    assert announced_limits({"content-type": "application/json", "x-request-id": "r"}) is None
    # present but all garbage: nothing usable, so None as well
    assert announced_limits({"x-ratelimit-limit-requests": "?", "retry-after": "later"}) is None
    # Gemini sends none of these
    assert announced_limits({"server": "scaffolding on HTTPServer2", "vary": "Origin"}) is None
