"""`CachedAnswer`: one answer of the response cache, on the compacted `tierline.cache`.

A worker that served a cacheable request publishes the answer, keyed by its cache key
(a hash of the tenant, the normalized messages and params, and the model that
answered), with the answer's transaction. Every worker reads the topic from the start,
so a restarted one starts warm; compaction keeps the newest answer per key. An answer
past `expires_at` is never served.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tierline.schemas.money import Money
from tierline.schemas.response import FinishReason, Usage


class CachedAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    #: the cache key, also the record's Kafka key: sha256 hex of the normalized request
    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: whose answer it is; the key holds the tenant too, this is for people and checks
    tenant: str = Field(min_length=1, max_length=128)
    #: the model that answered (the catalog's name) and its provider
    model: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    content: str
    finish_reason: FinishReason
    #: the tokens of the first serving, for reference (a hit bills none)
    usage: Usage = Field(default_factory=Usage)
    #: what the first serving cost (every billed attempt): what each hit saves
    cost_usd: Money = Field(default=Decimal(0), ge=0)
    created_at: datetime
    expires_at: datetime
