"""OpenAI's Batch API: a JSONL file of requests in, a JSONL file of answers out.

`submit` uploads the items as one `purpose=batch` file (`POST /v1/files`), each
line `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`
with the body the synchronous adapter builds, then creates the batch
(`POST /v1/batches`, 24 h window). `poll` reads `GET /v1/batches/{id}`; once its
status is final (`completed`, `expired`, `cancelled`, `failed`) it downloads the
output and error files (`GET /v1/files/{id}/content`). An output or error line
carries `response.status_code` and `response.body`, parsed as a synchronous reply
of that status; an error line whose `error.code` is `batch_expired` (or
`batch_cancelled`) and has no response is a lost item; so is every item of a
`failed` batch (https://platform.openai.com/docs/api-reference/batch,
https://platform.openai.com/docs/guides/batch).
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
)
from tierline.schemas import RouteRequest

ENDPOINT = "/v1/chat/completions"
JSONL = "application/jsonl"
#: statuses after which the batch changes no more
FINAL = frozenset({"completed", "expired", "cancelled", "failed"})


class OpenAIBatches:
    family = "openai"

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
        lines = []
        for custom_id, request in items:
            call = calls.adapter.build(model, request, api_key)
            line = {
                "custom_id": custom_id,
                "method": "POST",
                "url": ENDPOINT,
                "body": orjson.loads(call.body),
            }
            lines.append(orjson.dumps(line))
        uploaded = await calls.call(
            "POST",
            f"{model.api_base}/files",
            data={"purpose": "batch"},
            files={"file": ("tierline-batch.jsonl", b"\n".join(lines) + b"\n", JSONL)},
        )
        file_id = created_name(uploaded, "batch file upload", "id", "file id")
        created = await calls.post_json(
            f"{model.api_base}/batches",
            {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"},
        )
        return created_name(created, "batch create", "id", "batch id")

    async def poll(
        self, http: httpx.AsyncClient, model: ModelSpec, batch_id: str, api_key: str | None
    ) -> BatchPoll:
        calls = BatchCalls.of(http, model, api_key, self.timeout_s)
        batch = json_reply(await calls.get(f"{model.api_base}/batches/{batch_id}"), "batch status")
        status = str(batch.get("status", ""))
        if status not in FINAL:
            return BatchPoll(ended=False, status=status)
        results: dict[str, ItemResult] = {}
        for field in ("output_file_id", "error_file_id"):
            file_id = batch.get(field)
            if not isinstance(file_id, str) or not file_id:
                continue
            content = await calls.get(f"{model.api_base}/files/{file_id}/content")
            for line in jsonl(content.content, f"batch {field}"):
                custom_id = line.get("custom_id")
                if isinstance(custom_id, str):
                    results[custom_id] = _item(calls.adapter, line)
        if status == "failed":
            errors = batch.get("errors") or {}
            data = errors.get("data") if isinstance(errors, dict) else None
            first = data[0].get("message", "") if isinstance(data, list) and data else ""
            return BatchPoll(True, status, results, ItemLost(f"batch failed: {first}"[:200]))
        return BatchPoll(ended=True, status=status, results=results)


def _item(adapter: Adapter, line: dict[str, object]) -> ItemResult:
    """One output or error line: the answer (or typed error) it carries, or a lost item."""
    response = line.get("response")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        return parsed_item(adapter, int(response["status_code"]), response.get("body"))
    error = line.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if code == "batch_cancelled":
        return ItemLost("canceled")
    return ItemLost("expired" if code in (None, "batch_expired") else str(code))
