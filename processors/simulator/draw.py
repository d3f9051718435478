"""The deterministic draw: what happens to one request (its `Fate`), from seed, body and attempt.

`decide()` turns (seed, body digest, attempt) into a `Fate` (ok, error,
rate_limit, hang, garbage, refusal) and a latency, under one model's resolved
knobs (`Behaviour`) and the prompt's `[sim:...]` directives.

Determinism
-----------
Every draw comes from ``blake2b(seed, digest(route + body bytes), attempt)``
where *attempt* counts how many times this server has already seen the very same
body on the same route. The fate of a request therefore never depends on how
it interleaves with *other* requests, a retry of the same body draws afresh
(attempt + 1), and a whole run replays identically for the same seed and the
same request bodies. (Prompt caching is the one history-dependent part: a
system prompt is "cached" once this server has answered it before.)

A batch item draws its fate with the same `decide()` as a synchronous request of
the same body; whether it expires first (`batch_expire_rate`) is a draw of its own,
`expires()`, from the same (seed, digest, attempt), so it shifts no other draw.
Likewise whether a streamed answer is cut short (`stream_cut_rate`, or the
`[sim:stream_cut]` directive) is `cuts()`, a draw of its own.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from hashlib import blake2b
from typing import Literal

from tierline.processors.simulator.directives import GARBAGE_KINDS, Directives, GarbageKind

__all__ = ["Behaviour", "Fate", "FateKind", "body_digest", "cuts", "decide", "expires"]

FateKind = Literal["ok", "error", "rate_limit", "hang", "garbage", "refusal"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One model's effective knobs, resolved once and cached by the server."""

    latency_s: float
    latency_jitter: float
    hang_rate: float
    rate_limit_rate: float
    error_rate: float
    garbage_rate: float
    retry_after_s: float
    output_min: int
    output_max: int
    context_window: int | None
    rpm_limit: int | None = None
    """Requests a minute this model admits (enforced by the server, not the draw)."""
    tpm_limit: int | None = None
    """Tokens a minute, input plus max output (likewise)."""
    tools: bool = True
    """Takes tools; False answers a request with tools with the provider's 400."""
    batch_delay_s: float = 2.0
    """How long after its creation a batch of this model ends (`batches`)."""
    batch_expire_rate: float = 0.0
    """The share of this model's batch items that expire unanswered (`expires`)."""
    stream_chunk_s: float = 0.005
    """The wait between two chunks of a streamed answer (after the first, which comes
    after the drawn latency)."""
    stream_chunk_tokens: int = 4
    """The tokens a chunk of a streamed answer carries (4 characters a token)."""
    stream_cut_rate: float = 0.0
    """The share of streamed answers cut after their first content chunk (`cuts`)."""


@dataclass(slots=True)
class Fate:
    """What happens to one request: the kind, its status, when, and the draws behind it."""

    kind: FateKind
    status: int
    latency_s: float
    retry_after_s: float
    attempt: int
    output_tokens: int | None
    """Forced by a directive, else None (drawn in `compose_reply`)."""
    garbage: GarbageKind
    pick: int
    """A 64-bit draw for text and token choices."""
    request_id: str
    """32 hex digits, unique per (body, attempt)."""


def body_digest(route: str, body: bytes) -> bytes:
    """16-byte digest of the route and the raw request body: the identity of "this request"."""
    h = blake2b(route.encode(), digest_size=16)
    h.update(body)
    return h.digest()


_U53 = 2.0**-53
_SEED = struct.Struct("<Q")
_ATTEMPT = struct.Struct("<I")
_DRAWS = struct.Struct("<5Q")


def decide(
    behaviour: Behaviour,
    directives: Directives,
    seed: int,
    digest: bytes,
    attempt: int,
    error_statuses: tuple[int, ...],
) -> Fate:
    """Draw the fate of try number `attempt` (0-based) of the body with `digest`.

    Pure: the same arguments always give the same fate. `error_statuses` are
    the 5xx statuses a random server error is drawn from (provider-specific).
    """
    # one hash gives all five draws and the request id, so a request costs one blake2b
    h = blake2b(_SEED.pack(seed & 0xFFFF_FFFF_FFFF_FFFF), digest_size=40)
    h.update(digest)
    h.update(_ATTEMPT.pack(attempt))
    raw = h.digest()
    a, b, c, d, e = _DRAWS.unpack(raw)
    u_fault = (a >> 11) * _U53
    request_id = raw[24:40].hex()

    if directives.latency_ms is not None:
        latency = directives.latency_ms / 1000.0
    elif behaviour.latency_jitter > 0.0 and behaviour.latency_s > 0.0:
        # lognormal around the median: Box-Muller on two uniforms in (0, 1]
        u1 = 1.0 - (b >> 11) * _U53
        u2 = (c >> 11) * _U53
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        latency = behaviour.latency_s * math.exp(behaviour.latency_jitter * z)
    else:
        latency = behaviour.latency_s

    retry_after = (
        directives.retry_after_s
        if directives.retry_after_s is not None
        else behaviour.retry_after_s
    )
    garbage: GarbageKind = directives.garbage or GARBAGE_KINDS[e % 3]
    kind: FateKind = "ok"
    status = 200
    if directives.fail_first:
        if attempt < directives.fail_first:
            kind, status = "error", directives.error_status or 503
    elif directives.error_status is not None:
        kind, status = "error", directives.error_status
    elif directives.rate_limit:
        kind, status = "rate_limit", 429
    elif directives.hang:
        kind = "hang"
    elif directives.garbage is not None or directives.garbage_any:
        kind = "garbage"
    elif directives.refusal:
        kind = "refusal"
    else:
        # the fault rates stack on one uniform, so they never overlap and add up to <= 1
        threshold = behaviour.hang_rate
        if u_fault < threshold:
            kind = "hang"
        elif u_fault < (threshold := threshold + behaviour.rate_limit_rate):
            kind, status = "rate_limit", 429
        elif u_fault < (threshold := threshold + behaviour.error_rate):
            kind, status = "error", error_statuses[d % len(error_statuses)]
        elif u_fault < threshold + behaviour.garbage_rate:
            kind = "garbage"
    return Fate(
        kind=kind,
        status=status,
        latency_s=latency,
        retry_after_s=retry_after,
        attempt=attempt,
        output_tokens=directives.output_tokens,
        garbage=garbage,
        pick=d,
        request_id=request_id,
    )


_EXPIRY = b"batch-expiry"


def expires(behaviour: Behaviour, seed: int, digest: bytes, attempt: int) -> bool:
    """Whether try `attempt` of the batch item with `digest` expires unanswered.

    Pure, like `decide()`; a rate of 0 (the default) never expires and takes no hash.
    """
    rate = behaviour.batch_expire_rate
    if rate <= 0.0:
        return False
    h = blake2b(_SEED.pack(seed & 0xFFFF_FFFF_FFFF_FFFF), digest_size=8, person=_EXPIRY)
    h.update(digest)
    h.update(_ATTEMPT.pack(attempt))
    u = int.from_bytes(h.digest(), "little")
    return (u >> 11) * _U53 < rate


_CUT = b"stream-cut"


def cuts(
    behaviour: Behaviour, directives: Directives, seed: int, digest: bytes, attempt: int
) -> bool:
    """Whether try `attempt` of the streamed request with `digest` stops after its first
    content chunk: forced by `[sim:stream_cut]`, else drawn at `stream_cut_rate`.

    Pure, like `decide()`, and a draw of its own; a rate of 0 (the default) takes no hash.
    """
    if directives.stream_cut:
        return True
    rate = behaviour.stream_cut_rate
    if rate <= 0.0:
        return False
    h = blake2b(_SEED.pack(seed & 0xFFFF_FFFF_FFFF_FFFF), digest_size=8, person=_CUT)
    h.update(digest)
    h.update(_ATTEMPT.pack(attempt))
    u = int.from_bytes(h.digest(), "little")
    return (u >> 11) * _U53 < rate
