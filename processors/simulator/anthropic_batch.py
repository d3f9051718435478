"""The Anthropic Message Batches API: `POST /v1/messages/batches` and the calls on a batch.

The shapes, as Anthropic documents them:

* create: ``{"requests": [{"custom_id", "params": {...a Messages body...}}]}``, with
  the auth of `/v1/messages` (`x-api-key`, `anthropic-version`). A missing or empty
  `requests`, more than 100,000 of them, a `custom_id` not matching
  ``^[a-zA-Z0-9_-]{1,64}$`` or used twice, or a request without `params` is a 400
  `invalid_request_error`. The params themselves are read when the batch is
  processed, as Anthropic does: a bad one is that request's `errored` result,
  carrying the 400 `/v1/messages` answers for it;
* the batch (from create, `GET /v1/messages/batches/{id}` and `POST
  .../{id}/cancel`): ``{"id": "msgbatch_...", "type": "message_batch",
  "processing_status": "in_progress" | "canceling" | "ended", "request_counts":
  {"processing", "succeeded", "errored", "canceled", "expired"}, "ended_at",
  "created_at", "expires_at", "cancel_initiated_at", "archived_at", "results_url"}``,
  times in RFC 3339 with microseconds, `expires_at` 24 hours after creation; once
  ended, `results_url` is ``<scheme://host:port>/v1/messages/batches/{id}/results``
  of the server as the client reached it;
* results (`GET .../{id}/results`): JSONL sent as `application/binary` (what the
  official SDKs ask for), one line per request in request order: ``{"custom_id",
  "result": {"type": "succeeded", "message": {...}}}``, ``{"type": "errored",
  "error": <the error body /v1/messages answers>}``, ``{"type": "expired"}`` or
  ``{"type": "canceled"}``. A garbled answer (a `garbage` fate) is `succeeded` with
  the garbled text as a JSON string for `message`. Before the batch ended the
  results are a 404 `not_found_error` (the docs do not say; the SDKs read
  `results_url` first, which is null until then);
* an unknown batch id: 404 `not_found_error`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.batch_desk import BatchDesk
from tierline.processors.simulator.batches import Batch, BatchItem, ItemAnswer
from tierline.processors.simulator.wire import WireFormat

__all__ = ["AnthropicBatches"]

_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_MAX_REQUESTS = 100_000
_EXPIRES_S = 24 * 3600.0
_STATUSES = {"running": "in_progress", "canceling": "canceling", "ended": "ended"}


def _time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AnthropicBatches:
    """The route handlers of the Message Batches API, on the Anthropic wire format."""

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
        models = {str(i.body["model"]) for i in read if isinstance(i.body.get("model"), str)}
        batch = self._desk.submit(self._wire, f"msgbatch_{self._desk.new_id(24)}", read, models)
        return self._batch(batch, request)

    async def retrieve(self, request: web.Request) -> web.Response:
        found = await self._find(request, poll=True)
        return found if isinstance(found, web.Response) else self._batch(found, request)

    async def cancel(self, request: web.Request) -> web.Response:
        found = await self._find(request)
        if isinstance(found, web.Response):
            return found
        found.cancel(time.time())
        return self._batch(found, request)

    async def results(self, request: web.Request) -> web.Response:
        found = await self._find(request)
        if isinstance(found, web.Response):
            return found
        rid = self._desk.rid()
        if found.phase != "ended":
            return self._wire.refuse(
                404, f"Results of message batch {found.id} are not available until it ends.", rid
            )
        lines = [
            orjson.dumps({"custom_id": item.custom_id, "result": _result(answer)})
            for item, answer in found.results()
        ]
        return self._wire.reply(b"\n".join(lines) + b"\n", rid, content_type="application/binary")

    # ------------------------------------------------------------------ reading and rendering

    def _items(self, data: dict[str, Any]) -> list[BatchItem] | str:
        """The submission's requests, or the message of the 400 it gets."""
        if "requests" not in data:
            return "requests: Field required"
        requests = data["requests"]
        if not isinstance(requests, list):
            return "requests: Input should be a valid list"
        if not requests or len(requests) > _MAX_REQUESTS:
            return (
                f"requests: List should have at least 1 item and at most {_MAX_REQUESTS} "
                f"items, not {len(requests)}"
            )
        items: list[BatchItem] = []
        seen: set[str] = set()
        for i, r in enumerate(requests):
            if not isinstance(r, dict):
                return f"requests.{i}: Input should be a valid dictionary"
            for required in ("custom_id", "params"):
                if required not in r:
                    return f"requests.{i}.{required}: Field required"
            custom_id, params = r["custom_id"], r["params"]
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                return (
                    f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )
            if custom_id in seen:
                return (
                    f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}'. Each request "
                    "in a message batch must have a unique custom_id."
                )
            if not isinstance(params, dict):
                return f"requests.{i}.params: Input should be a valid dictionary"
            seen.add(custom_id)
            items.append(BatchItem(custom_id, params))
        return items

    def _batch(self, batch: Batch, request: web.Request) -> web.Response:
        ended = batch.phase == "ended"
        tally = batch.tally()
        results_url = None
        if ended:
            results_url = f"{request.url.origin()}/v1/messages/batches/{batch.id}/results"
        body = {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": _STATUSES[batch.phase],
            "request_counts": {
                k: tally[k] for k in ("processing", "succeeded", "errored", "canceled", "expired")
            },
            "ended_at": _time(batch.ended_at),
            "created_at": _time(batch.created_at),
            "expires_at": _time(batch.created_at + _EXPIRES_S),
            "cancel_initiated_at": _time(batch.cancel_at),
            "archived_at": None,
            "results_url": results_url,
        }
        return self._wire.reply(body, self._desk.rid())

    async def _find(self, request: web.Request, *, poll: bool = False) -> Batch | web.Response:
        refused = await self._desk.gate(request, self._wire)
        if refused is not None:
            return refused
        batch_id = request.match_info["id"]
        batch = self._desk.look(self._wire, batch_id, poll=poll)
        if batch is None:
            return self._wire.refuse(404, f"message_batch {batch_id} not found", self._desk.rid())
        return batch


def _result(answer: ItemAnswer) -> dict[str, Any]:
    if answer.fate != "answered":
        return {"type": answer.fate}
    if answer.ok:
        return {"type": "succeeded", "message": answer.body}
    return {"type": "errored", "error": answer.body}
