"""`FeatureRecord`: what the router decided for a request, and the features it decided on.

The quality loop's raw material, produced to `tierline.features` and stored in
ClickHouse `request_features`, joined to feedback and costs by request id.
It holds no prompt text: the prompt's terms are hashed ids with counts (see
`processors/routing/classifiers/hashed_terms.py` for what that does and does
not protect), plus the dense prompt features. `prompt` is filled only when the
operator sets `[learning] store_prompts = true`.

Identity: one row per (tenant, request id); a redelivered record is the same row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tierline.schemas.identifier import Identifier
from tierline.schemas.tier import Tier


class FeatureRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    request_id: Identifier
    tenant: Identifier
    feature: str = Field(default="", max_length=128)
    #: the task the classifier named (or the request's hint)
    task: str = Field(default="", max_length=64)
    #: the tier the router chose (the worker may end elsewhere: costs say where)
    tier: Tier
    #: the classifier that scored it ("rules", "learned") and its artifact's id ("" = none)
    classifier: str = Field(max_length=64)
    artifact: str = Field(default="", max_length=128)
    score: float = Field(ge=0, le=1)
    confidence: float = Field(ge=0, le=1)
    #: the scheme the ids come from (`hashed_terms.HASHING`)
    hashing: str = Field(max_length=32)
    term_ids: list[int] = Field(default_factory=list)
    term_counts: list[int] = Field(default_factory=list)
    #: the dense prompt features, in the order `dense_names` gives
    dense: list[float] = Field(default_factory=list)
    dense_names: list[str] = Field(default_factory=list)
    #: the prompt text, only with `store_prompts = true`
    prompt: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
