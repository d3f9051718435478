"""`[sim:...]` directives: the faults a test forces from inside a prompt.

A test forces an outcome by putting tags in the text of the *last user message*;
several tags, or several comma-separated items in one tag, may be combined:

    [sim:error=503]        answer this status with the provider's error body
                           (any 4xx/5xx; e.g. 529 for Anthropic overloaded)
    [sim:rate_limit]       429 with Retry-After = profile retry_after_s
    [sim:rate_limit=0.2]   429 with Retry-After: 0.2 (seconds, may be fractional)
    [sim:hang]             accept the request and never answer (until hang_s, the
                           client disconnects, or the server stops)
    [sim:garbage]          200 with an unparseable body; pick one with
                           [sim:garbage=empty|truncated|html]
    [sim:refusal]          200, but the model refused: OpenAI content_filter,
                           Anthropic stop_reason "refusal", Gemini SAFETY
    [sim:latency=50]       answer after exactly 50 ms (no jitter)
    [sim:fail_first=2]     the first 2 tries of this exact body fail with 503
                           (or with the status of an [sim:error=...] in the same
                           message), later tries succeed
    [sim:output_tokens=7]  reply with exactly 7 output tokens (still capped by
                           max_tokens)
    [sim:stream_cut]       a streamed answer stops after its first content chunk
                           (OpenAI, Gemini: the body ends, no final events; Anthropic:
                           an `overloaded_error` event); no effect unstreamed

An unknown directive is answered with the provider's 400 error, so a typo in a
test fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GARBAGE_KINDS",
    "NO_DIRECTIVES",
    "DirectiveError",
    "Directives",
    "GarbageKind",
    "parse_directives",
]

GarbageKind = Literal["empty", "truncated", "html"]
GARBAGE_KINDS: tuple[GarbageKind, ...] = ("empty", "truncated", "html")


class DirectiveError(ValueError):
    """A `[sim:...]` tag the simulator does not understand."""


@dataclass(frozen=True, slots=True)
class Directives:
    """Faults forced by `[sim:...]` tags in the last user message."""

    error_status: int | None = None
    rate_limit: bool = False
    retry_after_s: float | None = None
    hang: bool = False
    garbage: GarbageKind | None = None
    garbage_any: bool = False
    refusal: bool = False
    latency_ms: float | None = None
    fail_first: int = 0
    output_tokens: int | None = None
    stream_cut: bool = False


NO_DIRECTIVES = Directives()
_TAG = re.compile(r"\[sim:([^\]]*)\]")


def parse_directives(text: str) -> Directives:
    """Read every `[sim:...]` tag in `text`; raises `DirectiveError` on an unknown one."""
    # nearly every prompt has no tag: skip the regex and share one empty instance
    if "[sim:" not in text:
        return NO_DIRECTIVES
    values: dict[str, Any] = {}
    for tag in _TAG.findall(text):
        for raw in tag.replace(",", " ").split():
            key, _, arg = raw.partition("=")
            key = key.strip().lower()
            try:
                if key == "error":
                    status = int(arg)
                    if not 400 <= status <= 599:
                        raise DirectiveError(f"[sim:error={arg}] needs a 4xx or 5xx status")
                    values["error_status"] = status
                elif key == "rate_limit":
                    values["rate_limit"] = True
                    if arg:
                        values["retry_after_s"] = max(0.0, float(arg))
                elif key == "hang":
                    values["hang"] = True
                elif key == "garbage":
                    if arg:
                        if arg not in GARBAGE_KINDS:
                            raise DirectiveError(
                                f"[sim:garbage={arg}]: use one of {', '.join(GARBAGE_KINDS)}"
                            )
                        values["garbage"] = arg
                    else:
                        values["garbage_any"] = True
                elif key == "refusal":
                    values["refusal"] = True
                elif key == "latency":
                    values["latency_ms"] = max(0.0, float(arg))
                elif key == "fail_first":
                    values["fail_first"] = max(0, int(arg))
                elif key == "output_tokens":
                    values["output_tokens"] = max(1, int(arg))
                elif key == "stream_cut":
                    values["stream_cut"] = True
                else:
                    raise DirectiveError(f"unknown simulator directive [sim:{raw}]")
            except ValueError as exc:
                # DirectiveError is a ValueError too: only a failed int()/float() is rewrapped
                if isinstance(exc, DirectiveError):
                    raise
                raise DirectiveError(f"bad value in simulator directive [sim:{raw}]") from exc
    return Directives(**values)
