"""`OpenBatch`: one provider batch tierline submitted and has not finished answering.

Kept on the compacted `tierline.batches`, keyed by `key`. A worker journals the
batch as soon as the provider has accepted it, before any of its requests is
answered; the record says which provider batch holds which requests
(`custom_ids`, each derived from a request's tenant, id, replay generation and the
model: `processors.serving.batch_lane.custom_id_for`). A worker that restarts, or
takes over the partitions, finds a redelivered request's item here and polls the
provider's batch for it instead of submitting it again. Once every item's answer
is published (or the batch ended long enough ago that no one will ask), a
tombstone (a null value under the key) closes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenBatch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    #: tierline's id for the batch, also the record's Kafka key
    key: str = Field(pattern=r"^[0-9a-f]{32}$")
    #: the catalog model the batch was sent to, and its provider family
    model: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    #: the provider's id for the batch (`batch_...`, `msgbatch_...`, Gemini's `batches/<id>`)
    provider_batch_id: str = Field(min_length=1, max_length=256)
    custom_ids: list[str] = Field(min_length=1)
    submitted_at: datetime
