"""Anthropic's Message Batches: the requests in one JSON body, the results as JSONL.

`submit` posts `{"requests": [{"custom_id", "params"}]}` to
`/v1/messages/batches`, each `params` the Messages body the synchronous adapter
builds. `poll` reads `GET /v1/messages/batches/{id}`; once `processing_status`
is `ended` it streams the JSONL at `results_url`. Each line's `result` is
`succeeded` (its `message` parsed as a synchronous reply), `errored` (its error
body parsed as the synchronous error of the status its type means:
`invalid_request_error` a 400, `api_error` a 500, ...), or `expired` /
`canceled`: lost items
(https://docs.anthropic.com/en/api/creating-message-batches,
https://docs.anthropic.com/en/api/retrieving-message-batch-results).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    jsonl,
    parsed_item,
    unusable,
)
from tierline.schemas import RouteRequest

#: the HTTP status each error type of Anthropic's stands for
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatches:
    family = "anthropic"

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
        requests = [
            {
                "custom_id": custom_id,
                "params": orjson.loads(calls.adapter.build(model, r, api_key).body),
            }
            for custom_id, r in items
        ]
        created = await calls.post_json(
            f"{model.api_base}/v1/messages/batches", {"requests": requests}
        )
        return created_name(created, "message batch create", "id", "batch id")

    async def poll(
        self, http: httpx.AsyncClient, model: ModelSpec, batch_id: str, api_key: str | None
    ) -> BatchPoll:
        calls = BatchCalls.of(http, model, api_key, self.timeout_s)
        reply = await calls.get(f"{model.api_base}/v1/messages/batches/{batch_id}")
        batch = json_reply(reply, "message batch status")
        status = str(batch.get("processing_status", ""))
        if status != "ended":
            return BatchPoll(ended=False, status=status)
        url = batch.get("results_url")
        if not isinstance(url, str) or not url:
            raise unusable("message batch status: ended, but no results_url")
        results: dict[str, ItemResult] = {}
        for line in jsonl((await calls.get(url)).content, "message batch results"):
            custom_id = line.get("custom_id")
            result = line.get("result")
            if isinstance(custom_id, str) and isinstance(result, dict):
                results[custom_id] = _item(calls.adapter, result)
        return BatchPoll(ended=True, status=status, results=results)


def _item(adapter: Adapter, result: dict[str, object]) -> ItemResult:
    kind = result.get("type")
    if kind == "succeeded":
        return parsed_item(adapter, 200, result.get("message"))
    if kind == "errored":
        body = result.get("error")
        inner = body.get("error") if isinstance(body, dict) else None
        error_type = inner.get("type") if isinstance(inner, dict) else None
        status = ERROR_STATUS.get(str(error_type), 500)
        return parsed_item(adapter, status, body)
    return ItemLost("canceled" if kind == "canceled" else "expired")
