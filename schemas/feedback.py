"""`Feedback`: a quality signal about one answered request, produced to `tierline.feedback`.

Applications send what they learn after the fact — a thumbs up, a grader's
score, an "edited by the user" label — keyed by the request id, so it can be
joined to what the request cost and where it was routed (the `decisions`
view in ClickHouse). A signal carries a `score` in [0, 1], a `label`, or both.

Identity: one current signal per (tenant, request id, source). A redelivered signal is
stored once; a newer signal from the same source replaces the older one (the
table keeps the latest `created_at`). Sources that give several independent
signals per request use distinct source names ("rater:alice", "rater:bob").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierline.schemas.identifier import Identifier


class Feedback(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    request_id: Identifier
    #: request ids are unique per tenant only, so a signal names the request's tenant too
    tenant: Identifier
    #: quality in [0, 1], 1 = as good as it gets
    score: float | None = Field(default=None, ge=0, le=1)
    #: a categorical verdict, e.g. "accepted", "edited", "wrong_label"
    label: str | None = Field(default=None, min_length=1, max_length=128)
    #: who says so, e.g. "thumbs", "grader:v2", "user-edit"
    source: str = Field(min_length=1, max_length=128)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _says_something(self) -> Feedback:
        if self.score is None and self.label is None:
            raise ValueError("feedback needs a score, a label, or both")
        return self
