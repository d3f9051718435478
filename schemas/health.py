"""`HealthSnapshot`: one model's health as a worker sees it, on the compacted `tierline.health`.

Each worker publishes a snapshot of a (provider, model) when its circuit changes
state and every few seconds while the model has traffic; the topic is compacted and
keyed `provider/model`, so a worker or router that starts reads the newest snapshot
of every model and starts warm. Every replica's snapshots share the key: the newest
one wins, whoever sent it (`replica` says who).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CircuitState = Literal["closed", "open", "half_open"]


class HealthSnapshot(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=200)
    circuit: CircuitState = "closed"
    #: when the circuit last changed state (what replicas compare to adopt a change)
    changed_at: datetime
    #: set while open: when it lets probe calls through again
    open_until: datetime | None = None
    #: why the circuit is as it is, in words ("5 consecutive failures: connection refused")
    reason: str = Field(default="", max_length=500)
    #: latency of the calls in the window (successful calls only), ms
    p50_ms: float | None = None
    p95_ms: float | None = None
    calls: int = Field(default=0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limited_rate: float = Field(default=0.0, ge=0, le=1)
    #: the provider's announced limits, as last seen in its headers
    rpm_limit: int | None = None
    rpm_remaining: int | None = None
    tpm_limit: int | None = None
    tpm_remaining: int | None = None
    #: a 429's Retry-After, or an exhausted limit's reset: no calls before it
    cool_until: datetime | None = None
    #: requests this replica holds waiting for this model (an outage), as it sent this
    held: int = Field(default=0, ge=0)
    replica: str = Field(default="", max_length=200)
    updated_at: datetime

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"
