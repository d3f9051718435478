"""`RouteRequest`: what an application produces to `tierline.requests`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierline.schemas.identifier import Identifier
from tierline.schemas.messages import ChatMessage
from tierline.schemas.money import Money
from tierline.schemas.tier import LatencyClass, Tier
from tierline.schemas.tools import MAX_TOOLS, Tool, ToolChoice, check_tool_params

SCHEMA_VERSION: Literal[1] = 1
TOPIC_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


class Params(BaseModel):
    """Sampling parameters and tools, passed through to whichever provider serves the request
    (tools in OpenAI's shape, `schemas.tools`)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    #: stream the answer: ordered `ResponseChunk`s on the reply topic as the provider
    #: writes them, then the one `RouteResponse` with usage and cost, as without it
    stream: bool = False

    @model_validator(mode="after")
    def _tools_agree(self) -> Params:
        check_tool_params(self.tools, self.tool_choice)
        return self

    def wants_json(self) -> bool:
        kind = (self.response_format or {}).get("type")
        return kind in ("json_object", "json_schema")


class Hints(BaseModel):
    """What the application knows about the request; every hint is a constraint routing keeps."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(default=None, max_length=64)
    min_tier: Tier | None = None
    max_tier: Tier | None = None
    latency: LatencyClass = LatencyClass.STANDARD
    sensitivity: str | None = Field(default=None, max_length=64)
    max_cost_usd: Money | None = Field(default=None, ge=0)
    #: how long the request may wait for a usable provider (an outage holds it in Kafka),
    #: counted from `created_at` or, without it, from when a worker took it; unset = the
    #: latency class's default (`[health.deadline_s]`)
    deadline_s: float | None = Field(default=None, gt=0, le=7 * 86400)
    #: serve the request with this catalog model and no other: the router keeps the tier
    #: it decided when that tier lists the model, else the cheapest allowed tier that does;
    #: no cascade, experiment or outage escalation swaps it for another model
    model: str | None = Field(default=None, min_length=1, max_length=128)
    #: answer from the response cache when an identical request was answered before (true),
    #: or never (false); unset = as the policy's `[cache] temperature_zero` says
    cache: bool | None = None
    #: false: never send a model a trimmed history (oldest turns dropped to fit its context
    #: window, as the policy's `[trimming]` allows); a model it overflows is skipped instead
    trim: bool = True

    @model_validator(mode="after")
    def _tiers_in_order(self) -> Hints:
        if self.min_tier and self.max_tier and self.min_tier.rank > self.max_tier.rank:
            raise ValueError(f"min_tier {self.min_tier} is above max_tier {self.max_tier}")
        return self


class Metadata(BaseModel):
    """Who asked and why: the dimensions spend is reported by."""

    model_config = ConfigDict(extra="forbid")

    feature: Identifier | None = None
    user: Identifier | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class RouteRequest(BaseModel):
    """A chat request to route. `id` is chosen by the client and makes delivery idempotent."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Identifier
    tenant: Identifier
    messages: list[ChatMessage] = Field(min_length=1)
    params: Params = Field(default_factory=Params)
    hints: Hints = Field(default_factory=Hints)
    metadata: Metadata = Field(default_factory=Metadata)
    reply_to: str | None = Field(default=None, pattern=TOPIC_NAME_PATTERN)
    created_at: datetime | None = None
    #: how many times `tierline dlq replay` has sent this request again (0 = never)
    replay: int = Field(default=0, ge=0, le=1000)

    @property
    def key(self) -> str:
        """The request's identity: ids are the client's, so they are unique per tenant only."""
        return request_key(self.tenant, self.id)

    def prompt_text(self) -> str:
        """All message text, joined: what classifiers and token estimates read."""
        return "\n".join(message.text() for message in self.messages)


#: between tenant and id in a request key; identifiers hold no control characters
KEY_SEPARATOR = "\x1f"


def request_key(tenant: str, request_id: str) -> str:
    """The key a request is deduplicated by: (tenant, id), as one string."""
    return f"{tenant}{KEY_SEPARATOR}{request_id}"
