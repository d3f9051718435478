"""The providers' batch APIs: many requests in one job, answered within hours, billed at half.

Each family's client (`openai`, `anthropic`, `gemini` here) does two things:
`submit` a list of `(custom_id, request)` pairs as one provider batch and return
the provider's batch id, and `poll` that id: not ended yet, or ended with each
item's result. An item's request body is exactly what the synchronous adapter
builds for it, and its answer is parsed by the same adapter, so a batched answer
is normalized (and its errors typed) as a synchronous one is. What collects
requests into batches, keeps their state and answers them is
`processors.serving.batch_lane`.
"""

from __future__ import annotations

from tierline.processors.providers.batch.api import (
    BatchApi,
    BatchPoll,
    ItemLost,
    ItemResult,
    batch_api_for,
)

__all__ = ["BatchApi", "BatchPoll", "ItemLost", "ItemResult", "batch_api_for"]
