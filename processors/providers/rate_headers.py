"""The rate limits a provider announces in its reply headers, read into one `Announced`.

`announced_limits(headers)` is pure: it reads what the reply says and nothing
else, on 2xx and 429 alike. The headers it reads:

| field              | OpenAI (+ compatible)          | Anthropic                              |
|--------------------|--------------------------------|----------------------------------------|
| requests_limit     | x-ratelimit-limit-requests     | anthropic-ratelimit-requests-limit     |
| requests_remaining | x-ratelimit-remaining-requests | anthropic-ratelimit-requests-remaining |
| requests_reset_s   | x-ratelimit-reset-requests     | anthropic-ratelimit-requests-reset     |
| tokens_limit       | x-ratelimit-limit-tokens       | anthropic-ratelimit-tokens-limit       |
| tokens_remaining   | x-ratelimit-remaining-tokens   | anthropic-ratelimit-tokens-remaining   |
| tokens_reset_s     | x-ratelimit-reset-tokens       | anthropic-ratelimit-tokens-reset       |
| retry_after_s      | retry-after-ms, else           | retry-after                            |
|                    | retry-after                    |                                        |

Formats:

* limits and remainders are non-negative integers;
* OpenAI's resets are durations in Go's format: "250ms", "1s", "59.123s",
  "6m0s", "1h2m3s" (also "us"/"µs"/"ns" units; a bare number is seconds);
* Anthropic's resets are RFC 3339 timestamps ("2025-01-01T12:00:30Z"),
  turned into seconds from `now` (never below 0; a timestamp without an offset
  is UTC). When Anthropic sends no `tokens-*` set, its
  `input-tokens-*` set stands in (the budget a prompt meets first);
  `output-tokens-*` is not read;
* `retry-after` is seconds (fractional accepted) or an HTTP date;
  `retry-after-ms` is milliseconds and wins when both are valid.

Header names are matched case-insensitively (a plain dict in tests may carry
any case). A value that does not parse is skipped, field by field; nothing
here raises. Gemini announces no limits in headers (its 429 says when to retry
in `RetryInfo`, which the Gemini adapter reads), so its replies give None unless
they carry a `retry-after`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tierline.processors.health.announced import Announced

__all__ = ["announced_limits", "parse_duration", "parse_reset_time"]

_T = TypeVar("_T")
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def _count(value: str | None) -> int | None:
    """A non-negative integer, or None."""
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _seconds(value: str | None) -> float | None:
    """A finite, non-negative number, or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset duration ("6m0s", "59.123s", "250ms", "1h2m3s") in seconds, or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    plain = _seconds(text)
    if plain is not None:
        return plain
    total, pos = 0.0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and math.isfinite(total) else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_reset_time(value: str | None, now: datetime) -> float | None:
    """Anthropic's RFC 3339 reset as seconds from `now` (at least 0), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        # Python 3.11 reads "Z" and fractions; RFC 3339 also allows a space or "t" for "T"
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return max(0.0, (_utc(moment) - _utc(now)).total_seconds())


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After: delta seconds, else an HTTP date."""
    seconds = _seconds(value)
    if seconds is not None or value is None:
        return seconds
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, (_utc(moment) - _utc(now)).total_seconds())


def _first(*values: _T | None) -> _T | None:
    return next((v for v in values if v is not None), None)


def announced_limits(headers: Mapping[str, str], now: datetime | None = None) -> Announced | None:
    """The limits `headers` announce, or None when they announce none that parse."""
    h: dict[str, str] = {}
    for key, value in headers.items():
        k = key.lower()
        if k.startswith(_PREFIXES) and isinstance(value, str):
            h[k] = value
    if not h:
        return None
    when = now if now is not None else datetime.now(UTC)

    tokens = "anthropic-ratelimit-tokens-"
    if not any(k.startswith(tokens) for k in h):
        tokens = "anthropic-ratelimit-input-tokens-"
    retry_ms = _seconds(h.get("retry-after-ms"))
    announced = Announced(
        requests_limit=_first(
            _count(h.get("x-ratelimit-limit-requests")),
            _count(h.get("anthropic-ratelimit-requests-limit")),
        ),
        requests_remaining=_first(
            _count(h.get("x-ratelimit-remaining-requests")),
            _count(h.get("anthropic-ratelimit-requests-remaining")),
        ),
        requests_reset_s=_first(
            parse_duration(h.get("x-ratelimit-reset-requests")),
            parse_reset_time(h.get("anthropic-ratelimit-requests-reset"), when),
        ),
        tokens_limit=_first(
            _count(h.get("x-ratelimit-limit-tokens")),
            _count(h.get(tokens + "limit")),
        ),
        tokens_remaining=_first(
            _count(h.get("x-ratelimit-remaining-tokens")),
            _count(h.get(tokens + "remaining")),
        ),
        tokens_reset_s=_first(
            parse_duration(h.get("x-ratelimit-reset-tokens")),
            parse_reset_time(h.get(tokens + "reset"), when),
        ),
        retry_after_s=(
            retry_ms / 1000.0 if retry_ms is not None else _retry_after(h.get("retry-after"), when)
        ),
    )
    return None if announced.empty else announced
