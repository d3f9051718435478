"""`CostRecord`: one row per billed provider attempt, produced to `tierline.costs`.

`record_id` (request id and attempt number) is the row's identity: the cost
table collapses rows with the same `record_id`, so a redelivered record is
stored once and counted once.

The token counts are those of `Usage`, one column per class of token billed:
`input_tokens` (the whole prompt), `cached_input_tokens` (read from the prompt
cache), `cache_write_tokens` (written to it) and `cache_write_1h_tokens` (of the
writes, the 1-hour ones), then `output_tokens`.

A request answered from tierline's response cache has one record too, with no
tokens and `cost_usd` 0, its `saved_usd` what the answer cost when it was first
served; its `record_id` is `cache_id`, never an attempt's, so it cannot replace
the bill of an attempt the same request made.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from tierline.schemas.money import Money
from tierline.schemas.tier import Tier


class CostRecord(BaseModel):
    schema_version: Literal[1] = 1
    record_id: str = Field(max_length=160)
    request_id: str = Field(max_length=128)
    attempt: int = Field(ge=1)
    tenant: str
    feature: str = ""
    user: str = ""
    task: str = ""
    tier: Tier
    model: str
    provider: str
    status: Literal["ok", "error"]
    error_type: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    #: of `cache_write_tokens`, those written to a 1-hour cache (Anthropic); the rest are
    #: 5-minute writes. 0 in records older than the field, which priced every write as 5-minute
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Money
    latency_ms: float = 0.0
    reasons: list[str] = Field(default_factory=list)
    created_at: datetime
    #: answered from the response cache: what the answer cost when it was first served
    #: (0 for every provider attempt)
    saved_usd: Money = Decimal(0)

    @staticmethod
    def make_id(request_id: str, attempt: int) -> str:
        return f"{request_id}#{attempt}"

    @staticmethod
    def cache_id(request_id: str) -> str:
        """The record id of a request answered from the response cache."""
        return f"{request_id}#cache"
