"""The Gemini Batch API: `models/{model}:batchGenerateContent`, and the batch operations.

The shapes, as Google documents them (and as the live API renders them):

* create: `POST /v1beta/models/{model}:batchGenerateContent` (also under `/v1`),
  with the auth of `generateContent` (`x-goog-api-key` or `?key=`), body
  ``{"batch": {"displayName"?, "inputConfig": {"requests": {"requests": [{"request":
  {...a GenerateContentRequest...}, "metadata"?: {"key": ...}}]}}}}``; the
  snake_case spellings (`display_name`, `input_config`) are read too, as the API
  does. Only inlined requests are simulated (`inputConfig.fileName` is a 400), and
  a missing `batch`, `inputConfig` or `request`, or no requests, is a 400
  `INVALID_ARGUMENT`. Every request is for the model of the URL. Metadata keys need
  not be unique (the API does not ask it): answers come in request order, each
  with its request's `metadata`;
* the answer is a long-running Operation ``{"name": "batches/<id>", "metadata":
  {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
  "model": "models/<model>", "displayName", "createTime", "updateTime",
  "batchStats": {"requestCount", "pendingRequestCount"}, "state":
  "BATCH_STATE_PENDING", "name"}}``, with no `done` (proto3 JSON leaves out a false
  bool, and int64 counts are strings, zero counts left out);
* `GET /v1beta/batches/{id}`: the same Operation, `BATCH_STATE_RUNNING` until the
  batch ends; then `"done": true`, `endTime`, `successfulRequestCount` /
  `failedRequestCount` and `BATCH_STATE_SUCCEEDED`, with the answers both in
  `metadata.output` and in ``"response": {"@type":
  "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
  "inlinedResponses": {"inlinedResponses": [...]}}``: per request
  ``{"response": {...the generateContent answer...}, "metadata"}`` or
  ``{"error": {"code", "message", "status"}, "metadata"}`` (the error object
  `generateContent` answers; an expired request gets 504 `DEADLINE_EXCEEDED`; a
  garbled answer is a `response` holding the garbled text as a JSON string). A
  batch whose every request expired is `BATCH_STATE_EXPIRED` with an Operation
  `error` (code 4, DEADLINE_EXCEEDED) and no output;
* `POST /v1beta/batches/{id}:cancel`: ``{}``; the batch then reads
  `BATCH_STATE_CANCELLED`, done, with the Operation `error` code 1 (CANCELLED), as
  the docs say of a cancelled operation;
* an unknown batch: 404 `NOT_FOUND` "Requested entity was not found.".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tierline.processors.simulator.batch_desk import BatchDesk
from tierline.processors.simulator.batches import Batch, BatchItem, ItemAnswer
from tierline.processors.simulator.wire import WireFormat

__all__ = ["GeminiBatches"]

_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
_EXPIRED = {
    "code": 504,
    "message": "The request expired before the batch could process it.",
    "status": "DEADLINE_EXCEEDED",
}
_FIELD = "* BatchGenerateContentRequest.batch"


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _error(answer: ItemAnswer) -> dict[str, Any]:
    """The `error` of a request answered with an error: the object `generateContent`
    sends in its error body."""
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return dict(body["error"])
    return {"code": answer.status, "message": str(body), "status": "UNKNOWN"}


class GeminiBatches:
    """The route handlers of the Gemini Batch API, on the Gemini wire format."""

    def __init__(self, desk: BatchDesk, wire: WireFormat) -> None:
        self._desk = desk
        self._wire = wire

    async def create(self, request: web.Request) -> web.Response:
        read_in = await self._desk.submission(request, self._wire)
        if isinstance(read_in, web.Response):
            return read_in
        rid, data = read_in
        read = self._items(data)
        if isinstance(read, str):
            return self._wire.refuse(400, read, rid)
        items, display_name = read
        model = request.match_info["model"].removeprefix("models/")
        batch = self._desk.submit(
            self._wire,
            self._desk.new_id(36),
            items,
            {model},
            path_model=model,
            info={"display_name": display_name},
        )
        return self._wire.reply(_operation(batch, fresh=True), rid)

    async def retrieve(self, request: web.Request) -> web.Response:
        found = await self._find(request, poll=True)
        if isinstance(found, web.Response):
            return found
        return self._wire.reply(_operation(found), self._desk.rid())

    async def cancel(self, request: web.Request) -> web.Response:
        found = await self._find(request)
        if isinstance(found, web.Response):
            return found
        found.cancel(time.time())
        return self._wire.reply({}, self._desk.rid())

    # ------------------------------------------------------------------ plumbing

    def _items(self, data: dict[str, Any]) -> tuple[list[BatchItem], str] | str:
        """The requests and display name of a submission, or the message of its 400."""
        batch = data.get("batch")
        if not isinstance(batch, dict):
            return f"{_FIELD}: batch is required\n"
        config = _get(batch, "inputConfig", "input_config")
        if not isinstance(config, dict):
            return f"{_FIELD}.input_config: input_config is required\n"
        if _get(config, "fileName", "file_name") is not None:
            return (
                f"{_FIELD}.input_config.file_name: the simulator takes inlined requests "
                "only (inputConfig.requests)\n"
            )
        inlined = config.get("requests")
        requests = inlined.get("requests") if isinstance(inlined, dict) else None
        if not isinstance(requests, list) or not requests:
            return f"{_FIELD}.input_config.requests.requests: requests must not be empty\n"
        items: list[BatchItem] = []
        for i, r in enumerate(requests):
            where = f"{_FIELD}.input_config.requests.requests[{i}]"
            if not isinstance(r, dict) or not isinstance(r.get("request"), dict):
                return f"{where}.request: request is required\n"
            metadata = r.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                return f"{where}.metadata: metadata must be an object\n"
            key = metadata.get("key") if metadata is not None else None
            items.append(BatchItem(key if isinstance(key, str) else "", r["request"], metadata))
        display_name = _get(batch, "displayName", "display_name")
        return items, display_name if isinstance(display_name, str) else ""

    async def _find(self, request: web.Request, *, poll: bool = False) -> Batch | web.Response:
        refused = await self._desk.gate(request, self._wire)
        if refused is not None:
            return refused
        batch = self._desk.look(self._wire, request.match_info["id"], poll=poll)
        if batch is None:
            return self._wire.refuse(404, "Requested entity was not found.", self._desk.rid())
        return batch


def _operation(batch: Batch, *, fresh: bool = False) -> dict[str, Any]:
    """The batch as its long-running Operation; `fresh` = the create call's answer."""
    name = f"batches/{batch.id}"
    tally = batch.tally()
    total = len(batch.items)
    meta: dict[str, Any] = {"@type": _BATCH_TYPE, "model": f"models/{batch.path_model}"}
    if batch.info.get("display_name"):
        meta["displayName"] = batch.info["display_name"]
    stats = {"requestCount": str(total)}
    result: dict[str, Any] = {}
    ended = batch.ended_at
    if ended is None:
        meta["createTime"] = meta["updateTime"] = _time(batch.created_at)
        stats["pendingRequestCount"] = str(total)
        state = "BATCH_STATE_PENDING" if fresh else "BATCH_STATE_RUNNING"
    else:
        if batch.cancel_at is not None:
            state = "BATCH_STATE_CANCELLED"
            result["error"] = {"code": 1, "message": "The batch was cancelled."}
        elif tally["expired"] == total:
            state = "BATCH_STATE_EXPIRED"
            result["error"] = {"code": 4, "message": "The batch expired before it was processed."}
        else:
            state = "BATCH_STATE_SUCCEEDED"
            output = {"inlinedResponses": {"inlinedResponses": _responses(batch)}}
            meta["output"] = output
            result["response"] = {"@type": _OUTPUT_TYPE, **output}
        meta["createTime"] = _time(batch.created_at)
        meta["endTime"] = meta["updateTime"] = _time(ended)
        failed = tally["errored"] + tally["expired"] + tally["canceled"]
        if tally["succeeded"]:
            stats["successfulRequestCount"] = str(tally["succeeded"])
        if failed:
            stats["failedRequestCount"] = str(failed)
    meta["batchStats"] = stats
    meta["state"] = state
    meta["name"] = name
    op: dict[str, Any] = {"name": name, "metadata": meta}
    if ended is not None:
        op["done"] = True
        op.update(result)
    return op


def _responses(batch: Batch) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item, answer in batch.results():
        if answer.ok:
            entry: dict[str, Any] = {"response": answer.body}
        elif answer.fate == "answered":
            entry = {"error": _error(answer)}
        else:
            entry = {"error": dict(_EXPIRED)}
        if item.echo is not None:
            entry["metadata"] = item.echo
        out.append(entry)
    return out
