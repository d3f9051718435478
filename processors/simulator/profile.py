"""What the simulated provider does to a request, whatever wire format carried it.

This module is the simulator's behaviour and nothing of HTTP:

* `SimulatorProfile`: the knobs (latency, fault rates, output length, context
  window), with per-model overrides, loadable from a JSON file.
* `Directives`: faults a test forces from inside the prompt, e.g. `[sim:hang]`.
* `decide()`: the deterministic draw that turns (seed, body digest, attempt)
  into an `Outcome` (ok, error, rate_limit, hang, garbage, refusal) and a latency.
* `SimRequest` / `Reply` / `compose_reply()`: the wire-neutral view of a request
  that the wire modules parse into, and the answer text and token counts they
  render back.

Determinism
-----------
Every draw comes from ``blake2b(seed, digest(route + body bytes), attempt)``
where *attempt* counts how many times this server has already seen the very same
body on the same route. The outcome of a request therefore never depends on how
it interleaves with *other* requests, a retry of the same body draws afresh
(attempt + 1), and a whole run replays identically for the same seed and the
same request bodies. (Prompt caching is the one history-dependent part: a
system prompt is "cached" once this server has answered it before.)

Directives
----------
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

An unknown directive is answered with the provider's 400 error, so a typo in a
test fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Behaviour",
    "DirectiveError",
    "Directives",
    "ModelOverride",
    "Outcome",
    "OutcomeKind",
    "Reply",
    "SimRequest",
    "SimulatorProfile",
    "body_digest",
    "compose_reply",
    "decide",
    "estimate_tokens",
    "format_retry_after",
    "parse_directives",
]

OutcomeKind = Literal["ok", "error", "rate_limit", "hang", "garbage", "refusal"]
GarbageKind = Literal["empty", "truncated", "html"]
GARBAGE_KINDS: tuple[GarbageKind, ...] = ("empty", "truncated", "html")


# --------------------------------------------------------------------------- profile


class _Knobs(BaseModel):
    """The knobs a per-model override may change; `None` means "as the profile says"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float | None = Field(default=None, ge=0)
    latency_jitter: float | None = Field(default=None, ge=0, le=3)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    rate_limit_rate: float | None = Field(default=None, ge=0, le=1)
    retry_after_s: float | None = Field(default=None, ge=0)
    hang_rate: float | None = Field(default=None, ge=0, le=1)
    garbage_rate: float | None = Field(default=None, ge=0, le=1)
    output_tokens: tuple[int, int] | None = None
    context_window: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_range(self) -> _Knobs:
        if self.output_tokens is not None:
            lo, hi = self.output_tokens
            if lo < 1 or hi < lo:
                raise ValueError("output_tokens must be [min, max] with 1 <= min <= max")
        return self


class ModelOverride(_Knobs):
    """A partial profile for one model, e.g. `{"latency_ms": 1500}` for a slow premium model."""


class SimulatorProfile(BaseModel):
    """How the simulated providers behave. Every field has a quiet default.

    JSON example (``tierline simulate --profile slow-premium.json``)::

        {"seed": 7, "latency_ms": 500, "latency_jitter": 0.3, "error_rate": 0.01,
         "rate_limit_rate": 0.02, "retry_after_s": 0.5,
         "models": {"claude-opus-4-1": {"latency_ms": 2000, "context_window": 200000}}}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0, description="median latency")
    latency_jitter: float = Field(
        default=0.0, ge=0, le=3, description="lognormal sigma of the latency; 0 = fixed"
    )
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of 5xx answers")
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1, description="share of 429 answers")
    retry_after_s: float = Field(default=1.0, ge=0, description="Retry-After of a 429")
    hang_rate: float = Field(default=0.0, ge=0, le=1, description="share never answered")
    garbage_rate: float = Field(default=0.0, ge=0, le=1, description="share of 200 + bad body")
    hang_s: float = Field(default=300.0, gt=0, description="how long a hung request hangs")
    output_tokens: tuple[int, int] = (16, 256)
    context_window: int | None = Field(default=None, ge=1)
    models: dict[str, ModelOverride] = Field(default_factory=dict)
    known_models: frozenset[str] | None = Field(
        default=None, description="if set, any other model gets the provider's 404"
    )
    invalid_api_keys: frozenset[str] = frozenset({"sim-invalid-key"})
    cache_min_tokens: int = Field(
        default=1024, ge=0, description="prompt size from which prompt caching applies"
    )

    @model_validator(mode="after")
    def _check(self) -> SimulatorProfile:
        lo, hi = self.output_tokens
        if lo < 1 or hi < lo:
            raise ValueError("output_tokens must be [min, max] with 1 <= min <= max")
        for name in [None, *self.models]:
            b = self.resolve(name)
            if b.hang_rate + b.rate_limit_rate + b.error_rate + b.garbage_rate > 1.0 + 1e-9:
                raise ValueError(f"fault rates of {name or 'the profile'} add up to more than 1")
        return self

    @classmethod
    def from_json_file(cls, path: str | Path) -> SimulatorProfile:
        """Load a profile from a JSON file (unknown keys are an error)."""
        return cls.model_validate_json(Path(path).read_bytes())

    def with_overrides(self, **changes: Any) -> SimulatorProfile:
        """A copy with the given top-level fields replaced, validated again."""
        data = self.model_dump()
        data.update(changes)
        return SimulatorProfile.model_validate(data)

    def resolve(self, model: str | None) -> Behaviour:
        """The effective knobs for `model` (profile values, overridden per model)."""
        o = self.models.get(model) if model is not None else None

        def pick(name: str) -> Any:
            if o is not None:
                value = getattr(o, name)
                if value is not None:
                    return value
            return getattr(self, name)

        lo, hi = pick("output_tokens")
        return Behaviour(
            latency_s=pick("latency_ms") / 1000.0,
            latency_jitter=pick("latency_jitter"),
            hang_rate=pick("hang_rate"),
            rate_limit_rate=pick("rate_limit_rate"),
            error_rate=pick("error_rate"),
            garbage_rate=pick("garbage_rate"),
            retry_after_s=pick("retry_after_s"),
            output_min=lo,
            output_max=hi,
            context_window=pick("context_window"),
        )


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


# --------------------------------------------------------------------------- directives


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


NO_DIRECTIVES = Directives()
_TAG = re.compile(r"\[sim:([^\]]*)\]")


def parse_directives(text: str) -> Directives:
    """Read every `[sim:...]` tag in `text`; raises `DirectiveError` on an unknown one."""
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
                else:
                    raise DirectiveError(f"unknown simulator directive [sim:{raw}]")
            except ValueError as exc:
                if isinstance(exc, DirectiveError):
                    raise
                raise DirectiveError(f"bad value in simulator directive [sim:{raw}]") from exc
    return Directives(**values)


# --------------------------------------------------------------------------- the request


@dataclass(slots=True)
class SimRequest:
    """A provider request as the simulator sees it, whatever wire format carried it."""

    model: str
    text_chars: int
    """Characters of all message text (system included)."""
    n_messages: int
    """Messages, counting a separate system prompt as one."""
    first_text: str
    """The system prompt, or the first message: the cacheable prefix."""
    last_user_text: str
    max_tokens: int | None
    wants_json: bool = False
    json_schema: dict[str, Any] | None = None
    cache_marked: bool = False
    """The request marks a block with cache_control (Anthropic)."""


def estimate_tokens(chars: int, messages: int) -> int:
    """Input tokens: ceil(characters / 4) plus 3 per message."""
    return -(-chars // 4) + 3 * messages


def body_digest(route: str, body: bytes) -> bytes:
    """16-byte digest of the route and the raw request body: the identity of "this request"."""
    h = blake2b(route.encode(), digest_size=16)
    h.update(body)
    return h.digest()


# --------------------------------------------------------------------------- the draw


@dataclass(slots=True)
class Outcome:
    """What happens to one request: the kind, its status, when, and the draws behind it."""

    kind: OutcomeKind
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
) -> Outcome:
    """Draw the outcome of try number `attempt` (0-based) of the body with `digest`.

    Pure: the same arguments always give the same outcome. `error_statuses` are
    the 5xx statuses a random server error is drawn from (provider-specific).
    """
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
    kind: OutcomeKind = "ok"
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
        threshold = behaviour.hang_rate
        if u_fault < threshold:
            kind = "hang"
        elif u_fault < (threshold := threshold + behaviour.rate_limit_rate):
            kind, status = "rate_limit", 429
        elif u_fault < (threshold := threshold + behaviour.error_rate):
            kind, status = "error", error_statuses[d % len(error_statuses)]
        elif u_fault < threshold + behaviour.garbage_rate:
            kind = "garbage"
    return Outcome(
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


# --------------------------------------------------------------------------- the reply


@dataclass(slots=True)
class Reply:
    """The answer to render: text and token counts, provider-neutral.

    `input_tokens` counts the whole prompt, cached part included; each wire
    module converts to its provider's convention (Anthropic reports
    `input_tokens` without the cached and cache-written parts).
    """

    text: str
    finish: Literal["stop", "length", "refusal"]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


_SENTENCES = (
    "The request was routed to the cheapest model that can serve it.",
    "Every token of this answer is counted and billed.",
    "A simulated provider answers in the real wire format.",
    "Latency, faults and retries are drawn from a seeded profile.",
    "Nothing here was generated by a real language model.",
    "The same request body and seed give the same answer every run.",
    "Retries of the same body may see a different outcome.",
    "Prompt caching is reported when the system prompt repeats.",
    "Long answers are cut at max_tokens with a length finish reason.",
    "This text stands in for a helpful and concise reply.",
    "Routing, billing and retry logic can be tested end to end.",
    "Rate limits come with a Retry-After header to honour.",
)
_CORPUS = " ".join(_SENTENCES) + " "
_STARTS = tuple(_CORPUS.index(s) for s in _SENTENCES)


def _filler(chars: int, pick: int) -> str:
    if chars <= 0:
        return ""
    start = _STARTS[pick % len(_STARTS)]
    need = start + chars
    corpus = _CORPUS * (need // len(_CORPUS) + 1) if need > len(_CORPUS) else _CORPUS
    return corpus[start:need]


def _value_for(schema: Any, name: str, model: str, depth: int = 0) -> Any:
    """A small value that satisfies a (subset of) JSON Schema / OpenAPI schema."""
    if not isinstance(schema, dict) or depth > 6:
        return f"{name} from {model}"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _value_for(options[0], name, model, depth + 1)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if str(t).lower() != "null"), "string")
    typ = str(typ).lower() if typ is not None else ("object" if "properties" in schema else "")
    if typ == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {k: _value_for(v, k, model, depth + 1) for k, v in props.items()}
    if typ == "array":
        return [_value_for(schema.get("items"), name, model, depth + 1)]
    if typ == "integer":
        return int(schema.get("minimum", 1))
    if typ == "number":
        return float(schema.get("minimum", 0.5))
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    return f"{name} from {model}"


def compose_reply(
    req: SimRequest,
    outcome: Outcome,
    behaviour: Behaviour,
    input_tokens: int,
    cache_read: int,
    cache_write: int,
) -> Reply:
    """The deterministic answer text and its token counts, capped by max_tokens."""
    if outcome.kind == "refusal":
        return Reply("", "refusal", input_tokens, 1, cache_read, cache_write)
    model = req.model
    if req.wants_json:
        if req.json_schema is not None:
            obj = _value_for(req.json_schema, "answer", model)
        else:
            obj = {
                "model": model,
                "answer": _filler(80, outcome.pick).strip(),
                "simulated": True,
            }
        text = orjson.dumps(obj).decode()
        wanted = max(1, -(-len(text) // 4))
    else:
        if outcome.output_tokens is not None:
            wanted = outcome.output_tokens
        else:
            span = behaviour.output_max - behaviour.output_min + 1
            wanted = behaviour.output_min + (outcome.pick >> 8) % span
        prefix = f"Simulated reply from {model}. "
        chars = 4 * wanted
        if chars <= len(prefix):
            text = prefix[:chars]
        else:
            text = prefix + _filler(chars - len(prefix), outcome.pick)
            if text.endswith(" "):
                text = text.rstrip()
                text = text if text.endswith(".") else text + "."
    finish: Literal["stop", "length", "refusal"] = "stop"
    if req.max_tokens is not None and wanted > req.max_tokens:
        wanted = req.max_tokens
        text = text[: 4 * wanted]
        finish = "length"
    return Reply(text, finish, input_tokens, wanted, cache_read, cache_write)


def format_retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds as an integer ("2"), else a decimal ("0.25")."""
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
