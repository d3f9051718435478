"""The simulator's knobs: `SimulatorProfile` (latency, fault rates, output length, context
window, rate limits), with per-model `ModelOverride`s, loadable from a JSON file.

`rpm_limit` and `tpm_limit` are the budgets of the simulated API key, enforced
per model over a sliding minute (`limits`): set on the profile, every model gets
its own budget of that size; set in an override, that model alone. A request's
tokens are its estimated input plus its `max_tokens` (or, without one, the most
`output_tokens` may draw). A model with a limit announces it in the provider's
rate-limit headers; a model without one sends none.

`tools = false` makes a model one without function calling: a request that offers
it tools gets the provider's 400 for that ("Unsupported parameter: 'tools' is not
supported with this model.", "Function calling is not enabled for models/...").

The batch APIs (`batches`) have two knobs of their own, both also per model:

* `batch_delay_s` (default 2.0): a batch ends this long after it was created; its
  status calls report it in progress before. A batch of several models (Anthropic
  takes any mix) takes as long as its slowest model says;
* `batch_expire_rate` (default 0): the share of batch items that expire instead of
  being answered, drawn from (seed, body digest, attempt) like every other fate. A
  `hang` fate expires too. Every other fate (`error_rate`, `rate_limit_rate`,
  `garbage_rate`, directives) is that item's answer, exactly as the synchronous
  route would have given it.

Streamed answers (`stream: true`, Gemini's `streamGenerateContent`) have three,
also per model: the first chunk comes after the drawn latency (the time to first
token), the next ones every `stream_chunk_ms` (default 5), each of about
`stream_chunk_tokens` tokens (default 4, 16 characters); `stream_cut_rate`
(default 0) is the share of streams cut after their first content chunk, drawn
from (seed, body digest, attempt) on its own (`draw.cuts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierline.processors.simulator.draw import Behaviour

__all__ = ["ModelOverride", "SimulatorProfile"]


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
    rpm_limit: int | None = Field(default=None, ge=1)
    tpm_limit: int | None = Field(default=None, ge=1)
    tools: bool | None = None
    batch_delay_s: float | None = Field(default=None, ge=0)
    batch_expire_rate: float | None = Field(default=None, ge=0, le=1)
    stream_chunk_ms: float | None = Field(default=None, ge=0)
    stream_chunk_tokens: int | None = Field(default=None, ge=1)
    stream_cut_rate: float | None = Field(default=None, ge=0, le=1)

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
         "models": {"claude-opus-4-1": {"latency_ms": 2000, "context_window": 200000,
                                        "rpm_limit": 50, "tpm_limit": 30000}}}

    An override can set a model's limit but not lift the profile's (`None` there
    means "as the profile says").
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
    rpm_limit: int | None = Field(
        default=None, ge=1, description="requests a minute per model; None = unlimited"
    )
    tpm_limit: int | None = Field(
        default=None,
        ge=1,
        description="tokens a minute per model (input + max output); None = unlimited",
    )
    tools: bool = Field(default=True, description="models take tools (function calling)")
    batch_delay_s: float = Field(
        default=2.0, ge=0, description="how long after its creation a batch ends"
    )
    batch_expire_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of batch items that expire unanswered"
    )
    stream_chunk_ms: float = Field(
        default=5.0, ge=0, description="wait between two chunks of a streamed answer"
    )
    stream_chunk_tokens: int = Field(
        default=4, ge=1, description="tokens per chunk of a streamed answer (4 chars a token)"
    )
    stream_cut_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of streamed answers cut after one chunk"
    )
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
        # an override can raise one rate past what the profile's others leave room for
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
            rpm_limit=pick("rpm_limit"),
            tpm_limit=pick("tpm_limit"),
            tools=pick("tools"),
            batch_delay_s=pick("batch_delay_s"),
            batch_expire_rate=pick("batch_expire_rate"),
            stream_chunk_s=pick("stream_chunk_ms") / 1000.0,
            stream_chunk_tokens=pick("stream_chunk_tokens"),
            stream_cut_rate=pick("stream_cut_rate"),
        )
