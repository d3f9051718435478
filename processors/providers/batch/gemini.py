"""Gemini's Batch Mode: inline requests in, a long-running operation out.

`submit` posts `{"batch": {"display_name", "input_config": {"requests":
{"requests": [{"request", "metadata": {"key"}}]}}}}` to
`/v1beta/models/{model}:batchGenerateContent`, each `request` the
GenerateContentRequest the synchronous adapter builds and `key` the item's id;
the reply is an operation named `batches/{id}`. `poll` reads
`GET /v1beta/batches/{id}`; once `done`, the batch's `inlinedResponses` hold each
item's `response` (parsed as a synchronous reply) or `error` (a `google.rpc.Status`,
parsed as the synchronous error of its code). A batch that ended
`BATCH_STATE_FAILED`, `_CANCELLED` or `_EXPIRED` loses the items it did not answer
(https://ai.google.dev/gemini-api/docs/batch-mode,
https://ai.google.dev/api/batch-mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import Adapter
from tierline.processors.providers.batch.api import (
    BatchCalls,
    BatchPoll,
    ItemLost,
    ItemResult,
    created_name,
    json_reply,
    parsed_item,
    unusable,
)
from tierline.schemas import RouteRequest

LOST_STATES = {
    "BATCH_STATE_FAILED": "batch failed",
    "BATCH_STATE_CANCELLED": "canceled",
    "BATCH_STATE_EXPIRED": "expired",
}


class GeminiBatches:
    family = "gemini"

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s

    async def submit(
        self,
        http: httpx.AsyncClient,
        model: ModelSpec,
        items: Sequence[tuple[str, RouteRequest]],
        api_key: str | None,
    ) -> str:
        calls = BatchCalls.of(http, model, api_key, self.timeout_s)
        requests, url = [], ""
        for custom_id, request in items:
            call = calls.adapter.build(model, request, api_key)
            url = call.url.replace(":generateContent", ":batchGenerateContent")
            requests.append({"request": orjson.loads(call.body), "metadata": {"key": custom_id}})
        body = {
            "batch": {
                "display_name": f"tierline-{items[0][0]}",
                "input_config": {"requests": {"requests": requests}},
            }
        }
        name = created_name(
            await calls.post_json(url, body), "batchGenerateContent", "name", "batch name"
        )
        if not name.startswith("batches/"):
            raise unusable("batchGenerateContent: the reply names no batches/... operation")
        return name.removeprefix("batches/")

    async def poll(
        self, http: httpx.AsyncClient, model: ModelSpec, batch_id: str, api_key: str | None
    ) -> BatchPoll:
        calls = BatchCalls.of(http, model, api_key, self.timeout_s)
        reply = await calls.get(f"{model.api_base}/v1beta/batches/{batch_id}")
        operation = json_reply(reply, "batch status")
        metadata = operation.get("metadata")
        state = str(metadata.get("state", "")) if isinstance(metadata, dict) else ""
        if not operation.get("done"):
            return BatchPoll(ended=False, status=state)
        results: dict[str, ItemResult] = {}
        for entry in _inlined(operation):
            key = entry.get("metadata", {}).get("key") if isinstance(entry, dict) else None
            if isinstance(key, str):
                results[key] = _item(calls.adapter, entry)
        lost = LOST_STATES.get(state)
        if lost is not None:
            return BatchPoll(True, state, results, ItemLost(lost))
        return BatchPoll(ended=True, status=state, results=results)


def _inlined(operation: dict[str, Any]) -> list[Any]:
    """The operation's inlined responses: in `response`, or (as the docs also show) in
    `metadata.output`."""
    for holder in (operation.get("response"), (operation.get("metadata") or {}).get("output")):
        if isinstance(holder, dict):
            inlined = holder.get("inlinedResponses")
            if isinstance(inlined, dict):
                inlined = inlined.get("inlinedResponses")
            if isinstance(inlined, list):
                return inlined
    return []


def _item(adapter: Adapter, entry: dict[str, Any]) -> ItemResult:
    if "response" in entry:
        return parsed_item(adapter, 200, entry["response"])
    error = entry.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
        return parsed_item(adapter, status, {"error": error})
    return ItemLost("expired")
