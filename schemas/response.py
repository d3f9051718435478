"""`RouteResponse`: the one answer each request gets, success or typed error."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tierline.schemas.errors import ErrorInfo
from tierline.schemas.money import Money
from tierline.schemas.tier import Tier
from tierline.schemas.tools import ToolCall

FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]


class Usage(BaseModel):
    """Token counts as the provider reported them, one count per class of token billed.

    `input_tokens` is the whole prompt: of it, `cached_input_tokens` were read from the
    provider's prompt cache and `cache_write_tokens` written to it, and of those writes
    `cache_write_1h_tokens` went to Anthropic's 1-hour cache (the rest are 5-minute
    writes, the only kind other providers report). Each class has its own price.
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    #: of `cache_write_tokens`, the 1-hour ones; 0 in messages older than the field
    cache_write_1h_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class RoutingDecision(BaseModel):
    """Why a request went where it went: the classifier's verdict and the policy's choice."""

    task: str
    tier: Tier
    score: float = Field(ge=0, le=1)
    confidence: float = Field(default=1.0, ge=0, le=1)
    reasons: list[str] = Field(default_factory=list)


class RouteResponse(BaseModel):
    """Produced to `tierline.responses` (or the request's `reply_to`), keyed by request id."""

    schema_version: Literal[1] = 1
    id: str
    tenant: str
    status: Literal["ok", "error"]
    content: str | None = None
    #: the tools the model called (`finish_reason` "tool_calls"); absent when it called none
    tool_calls: list[ToolCall] | None = None
    finish_reason: FinishReason | None = None
    error: ErrorInfo | None = None
    model: str | None = None
    provider: str | None = None
    tier: Tier | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: Money = Decimal(0)
    latency_ms: float = 0.0
    attempts: int = 0
    decision: RoutingDecision | None = None
    created_at: datetime | None = None
    #: answered from the response cache: no provider call, nothing billed (`cost_usd` 0,
    #: `usage` 0); `model` and `provider` are those of the answer's first serving
    cached: bool = False
    #: the oldest messages left out of the history `model` was sent, to fit its context
    #: window (`[trimming]` in the policy); 0 when it got the whole history
    trimmed_messages: int = Field(default=0, ge=0)

    @classmethod
    def from_error(
        cls,
        id: str,
        tenant: str,
        error: ErrorInfo,
        *,
        model: str | None = None,
        provider: str | None = None,
        tier: Tier | None = None,
        usage: Usage | None = None,
        cost_usd: Decimal = Decimal(0),
        latency_ms: float = 0.0,
        attempts: int = 0,
        decision: RoutingDecision | None = None,
        created_at: datetime | None = None,
    ) -> RouteResponse:
        """The error response of request `id`: no content, `finish_reason` "error", `error` typed.

        Every error response is built here, so they all look alike whoever failed: the
        router's intake, the candidate walk, or the worker's publish.
        """
        return cls(
            id=id,
            tenant=tenant,
            status="error",
            content=None,
            finish_reason="error",
            error=error,
            model=model,
            provider=provider,
            tier=tier,
            usage=usage or Usage(),
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            attempts=attempts,
            decision=decision,
            created_at=created_at,
        )
