"""Backoff: exponential ceiling, full jitter, Retry-After honoured and bounded."""

from __future__ import annotations

import random

from tierline.processors.providers.http_errors import parse_retry_after
from tierline.processors.serving.backoff import Backoff


def test_delays_stay_under_an_exponential_ceiling() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    rng = random.Random(0)
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range


def test_jitter_is_seeded() -> None:
    backoff = Backoff()
    a = [backoff.delay(i % 4, random.Random(5)) for i in range(10)]
    b = [backoff.delay(i % 4, random.Random(5)) for i in range(10)]
    assert a == b


def test_retry_after_wins_when_longer() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    assert backoff.delay(0, random.Random(1), retry_after_s=3.0) == 3.0


def test_too_long_retry_after_means_move_on() -> None:
    backoff = Backoff(max_retry_after_s=20)
    assert backoff.waits_for(None)
    assert backoff.waits_for(5)
    assert not backoff.waits_for(60)


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
