"""The OpenAI Batch API, with the Files API it reads from and writes to.

The flow, as OpenAI documents it: upload a JSONL file of requests, create a batch
over it, poll the batch, download its output and error files. The shapes:

* `POST /v1/files` (multipart: `purpose`, `file`), with the auth of
  `/v1/chat/completions` (`Authorization: Bearer`): the file object ``{"id":
  "file-...", "object": "file", "bytes", "created_at", "expires_at", "filename",
  "purpose", "status": "processed", "status_details": null}``. Only `purpose:
  batch` is stored here (any other purpose is a 400), and, as OpenAI answers, a
  file not named `*.jsonl` is a 400 "Invalid file format for Batch API. Must be
  .jsonl". The lines are not read on upload (OpenAI reads them at batch creation);
  `GET /v1/files/{id}` answers the file object, `GET /v1/files/{id}/content` its
  bytes;
* `POST /v1/batches` ``{"input_file_id", "endpoint": "/v1/chat/completions",
  "completion_window": "24h", "metadata"?}`` (the simulator has chat completions
  only): the batch object, status `validating`. A missing field, another endpoint
  or window, a bad `metadata` is a 400, an unknown file a 404. A file whose lines
  do not validate still makes a batch, as with OpenAI: it is `failed`, with
  ``errors: {"object": "list", "data": [{"code", "message", "param", "line"}]}``
  and the documented codes `empty_file`, `invalid_json_line`, `duplicate_custom_id`,
  `url_mismatch`, `model_mismatch` (one model per batch), `too_many_tasks` (over
  50,000), and `missing_required_parameter` / `invalid_value` for a line without
  `custom_id`, `method: POST`, `url` or `body`;
* the batch object (`GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`):
  ``{"id": "batch_...", "object": "batch", "endpoint", "errors", "input_file_id",
  "completion_window", "status", "output_file_id", "error_file_id", "created_at",
  "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
  "expired_at", "cancelling_at", "cancelled_at", "request_counts": {"total",
  "completed", "failed"}, "metadata"}``. Status `in_progress` until the batch
  ends, then `completed`, or `expired` when any item expired (OpenAI expires a
  batch whose window passed, its unfinished requests with it), or `cancelled`
  after a cancel (the cancel call answers `cancelling`; cancelling an ended batch
  is a 400). `completed` counts the items answered with a 2xx, `failed` all others;
* the output file holds a line per item answered with a 2xx, the error file one per
  other item, each ``{"id": "batch_req_...", "custom_id", "response": {"status_code",
  "request_id", "body"}, "error": null}`` with the status and body
  `/v1/chat/completions` answers for that body (a non-JSON body, OpenAI's HTML
  502 or a `garbage` fate, as a JSON string); an expired item is ``{"response":
  null, "error": {"code": "batch_expired", "message"}}``, a canceled one the same
  with `batch_cancelled`. A file with no lines is not made (its id stays null);
* an unknown batch or file id: 404 in OpenAI's error shape.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.batch_desk import BatchDesk
from tierline.processors.simulator.batches import Batch, BatchItem, StoredFile
from tierline.processors.simulator.wire import WireFormat

__all__ = ["OpenAIBatches"]

_ENDPOINT = "/v1/chat/completions"
_WINDOW = "24h"
_WINDOW_S = 24 * 3600
_FILE_TTL_S = 30 * 24 * 3600
_MAX_TASKS = 50_000
_EXPIRED_TEXT = "This request could not be executed before the completion window expired."
_CANCELLED_TEXT = "This request was not executed because the batch was cancelled."


def _line_error(code: str, message: str, line: int | None, param: str | None = None) -> Any:
    return {"code": code, "message": message, "param": param, "line": line}


def read_input(data: bytes) -> tuple[list[BatchItem], set[str], list[dict[str, Any]]]:
    """An input file's requests, the models they name, and what is wrong with its lines
    (nothing, for a file that makes a running batch)."""
    lines = data.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last line
    if not lines:
        return [], set(), [_line_error("empty_file", "The batch input file is empty.", None)]
    if len(lines) > _MAX_TASKS:
        message = f"The batch input file has {len(lines)} requests; at most {_MAX_TASKS} fit."
        return [], set(), [_line_error("too_many_tasks", message, None)]
    items: list[BatchItem] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for n, line in enumerate(lines, 1):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            errors.append(
                _line_error("invalid_json_line", "This line is not parseable as valid JSON.", n)
            )
            continue
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in obj]
        if missing:
            name = missing[0]
            errors.append(
                _line_error(
                    "missing_required_parameter",
                    f"Missing required parameter: '{name}'.",
                    n,
                    name,
                )
            )
            continue
        custom_id, body = obj["custom_id"], obj["body"]
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _line_error(
                    "invalid_value", "'custom_id' must be a non-empty string.", n, "custom_id"
                )
            )
        elif obj["method"] != "POST":
            errors.append(
                _line_error(
                    "invalid_value",
                    f"Invalid value: '{obj['method']}'. Supported values are: 'POST'.",
                    n,
                    "method",
                )
            )
        elif obj["url"] != _ENDPOINT:
            errors.append(
                _line_error(
                    "url_mismatch",
                    f"The URL provided for this request does not match the batch endpoint "
                    f"'{_ENDPOINT}'.",
                    n,
                    "url",
                )
            )
        elif not isinstance(body, dict):
            errors.append(_line_error("invalid_value", "'body' must be an object.", n, "body"))
        elif custom_id in seen:
            errors.append(
                _line_error(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. The "
                    "custom_id parameter must be unique for each request in a batch.",
                    n,
                    "custom_id",
                )
            )
        elif isinstance(body.get("model"), str) and model not in (None, body["model"]):
            errors.append(
                _line_error(
                    "model_mismatch",
                    f"The model '{body['model']}' of this request does not match the model "
                    f"'{model}' of the other requests in the batch; a batch takes requests to "
                    "one model.",
                    n,
                    "body.model",
                )
            )
        else:
            seen.add(custom_id)
            if isinstance(body.get("model"), str):
                model = body["model"]
            items.append(BatchItem(custom_id, body))
    return items, ({model} if model else set()), errors


class OpenAIBatches:
    """The route handlers of the Batch and Files APIs, on the OpenAI wire format."""

    def __init__(self, desk: BatchDesk, wire: WireFormat) -> None:
        self._desk = desk
        self._wire = wire

    # ------------------------------------------------------------------ files

    async def upload(self, request: web.Request) -> web.Response:
        refused = await self._desk.gate(request, self._wire)
        if refused is not None:
            return refused
        rid = self._desk.rid()
        if not request.content_type.startswith("multipart/"):
            return self._refuse(
                400, "The request must be multipart/form-data with 'purpose' and 'file'.", rid
            )
        form = await request.post()
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose is None:
            return self._missing("purpose", rid)
        if not isinstance(upload, web.FileField):
            return self._missing("file", rid)
        if purpose != "batch":
            return self._refuse(
                400,
                f"Invalid value for 'purpose': {purpose!r}. The simulator stores batch input "
                "files only (purpose 'batch').",
                rid,
                param="purpose",
                code="invalid_value",
            )
        if not upload.filename.endswith(".jsonl"):
            return self._refuse(400, "Invalid file format for Batch API. Must be .jsonl", rid)
        stored = StoredFile(
            f"file-{self._desk.new_id(24)}",
            upload.filename,
            "batch",
            upload.file.read(),
            time.time(),
        )
        self._desk.store.add_file(stored)
        return self._wire.reply(_file_object(stored), rid)

    async def file(self, request: web.Request) -> web.Response:
        found = await self._find_file(request)
        if isinstance(found, web.Response):
            return found
        return self._wire.reply(_file_object(found), self._desk.rid())

    async def content(self, request: web.Request) -> web.Response:
        found = await self._find_file(request)
        if isinstance(found, web.Response):
            return found
        return self._wire.reply(
            found.data, self._desk.rid(), content_type="application/octet-stream"
        )

    # ------------------------------------------------------------------ batches

    async def create(self, request: web.Request) -> web.Response:
        read_in = await self._desk.submission(request, self._wire)
        if isinstance(read_in, web.Response):
            return read_in
        rid, data = read_in
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in data:
                return self._missing(name, rid)
        for name, allowed in (("endpoint", _ENDPOINT), ("completion_window", _WINDOW)):
            if data[name] != allowed:
                return self._refuse(
                    400,
                    f"Invalid value: '{data[name]}'. Supported values are: '{allowed}'.",
                    rid,
                    param=name,
                    code="invalid_value",
                )
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return self._refuse(
                400,
                f"Invalid type for 'metadata': expected an object, but got "
                f"{type(metadata).__name__} instead.",
                rid,
                param="metadata",
                code="invalid_type",
            )
        file_id = str(data["input_file_id"])
        stored = self._desk.store.get_file(file_id)
        if stored is None:
            return self._refuse(404, f"No such File object: {file_id}", rid, param="input_file_id")
        if stored.purpose != "batch":
            return self._refuse(
                400,
                f"File {file_id} has purpose '{stored.purpose}'; a batch needs a file "
                "uploaded with purpose 'batch'.",
                rid,
                param="input_file_id",
            )
        info = {
            "input_file_id": file_id,
            "endpoint": _ENDPOINT,
            "completion_window": _WINDOW,
            "metadata": metadata,
        }
        items, models, errors = read_input(stored.data)
        batch_id = f"batch_{self._desk.new_id(32)}"
        if errors:
            batch = self._desk.fail(self._wire, batch_id, errors, info)
        else:
            batch = self._desk.submit(self._wire, batch_id, items, models, info=info)
        return self._wire.reply(_batch_object(batch, validating=True), rid)

    async def retrieve(self, request: web.Request) -> web.Response:
        found = await self._find(request, poll=True)
        if isinstance(found, web.Response):
            return found
        return self._wire.reply(_batch_object(found), self._desk.rid())

    async def cancel(self, request: web.Request) -> web.Response:
        found = await self._find(request)
        if isinstance(found, web.Response):
            return found
        if not found.cancel(time.time()):
            status = _batch_object(found)["status"]
            return self._refuse(
                400, f"Cannot cancel a batch with status '{status}'.", self._desk.rid()
            )
        return self._wire.reply(_batch_object(found), self._desk.rid())

    # ------------------------------------------------------------------ plumbing

    async def _find(self, request: web.Request, *, poll: bool = False) -> Batch | web.Response:
        refused = await self._desk.gate(request, self._wire)
        if refused is not None:
            return refused
        batch_id = request.match_info["id"]
        batch = self._desk.look(self._wire, batch_id, poll=poll)
        if batch is None:
            return self._refuse(404, f"No batch found with id '{batch_id}'.", self._desk.rid())
        if batch.phase == "ended" and "output_file_id" not in batch.info:
            self._write_files(batch)
        return batch

    async def _find_file(self, request: web.Request) -> StoredFile | web.Response:
        refused = await self._desk.gate(request, self._wire)
        if refused is not None:
            return refused
        file_id = request.match_info["id"]
        stored = self._desk.store.get_file(file_id)
        if stored is None:
            return self._refuse(404, f"No such File object: {file_id}", self._desk.rid())
        return stored

    def _write_files(self, batch: Batch) -> None:
        """The output and error files of an ended batch, stored; their ids in its info."""
        output: list[bytes] = []
        failed: list[bytes] = []
        for item, answer in batch.results():
            line: dict[str, Any] = {"id": f"batch_req_{self._desk.new_id(32)}"}
            line["custom_id"] = item.custom_id
            if answer.fate == "answered":
                line["response"] = {
                    "status_code": answer.status,
                    "request_id": answer.request_id,
                    "body": answer.body,
                }
                line["error"] = None
            else:
                expired = answer.fate == "expired"
                line["response"] = None
                line["error"] = {
                    "code": "batch_expired" if expired else "batch_cancelled",
                    "message": _EXPIRED_TEXT if expired else _CANCELLED_TEXT,
                }
            (output if answer.ok else failed).append(orjson.dumps(line))
        for key, lines, kind in (
            ("output_file_id", output, "output"),
            ("error_file_id", failed, "error"),
        ):
            batch.info[key] = None
            if lines:
                stored = StoredFile(
                    f"file-{self._desk.new_id(24)}",
                    f"batch_{batch.id.removeprefix('batch_')}_{kind}.jsonl",
                    "batch_output",
                    b"\n".join(lines) + b"\n",
                    batch.ended_at or time.time(),
                )
                self._desk.store.add_file(stored)
                batch.info[key] = stored.id

    def _missing(self, name: str, rid: str) -> web.Response:
        return self._refuse(
            400,
            f"Missing required parameter: '{name}'.",
            rid,
            param=name,
            code="missing_required_parameter",
        )

    def _refuse(self, status: int, message: str, rid: str, **fields: Any) -> web.Response:
        return self._wire.refuse(status, message, rid, **fields)


def _file_object(stored: StoredFile) -> dict[str, Any]:
    created = int(stored.created_at)
    return {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.data),
        "created_at": created,
        "expires_at": created + _FILE_TTL_S,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
    }


def _batch_object(batch: Batch, *, validating: bool = False) -> dict[str, Any]:
    """The batch object as OpenAI renders it; `validating` = the create call's answer."""
    info = batch.info
    created = int(batch.created_at)
    phase = batch.phase
    tally = batch.tally()
    total = len(batch.items)
    stamps: dict[str, int | None] = dict.fromkeys(
        (
            "in_progress_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        )
    )
    ended = int(batch.ended_at) if batch.ended_at is not None else None
    if validating:
        status, total = "validating", 0
    elif phase == "failed":
        status, stamps["failed_at"] = "failed", created
    else:
        stamps["in_progress_at"] = created
        if batch.cancel_at is not None:
            stamps["cancelling_at"] = int(batch.cancel_at)
        if phase == "running":
            status = "in_progress"
        elif phase == "canceling":
            status = "cancelling"
        elif batch.cancel_at is not None:
            status, stamps["cancelled_at"] = "cancelled", ended
        elif tally["expired"]:
            status, stamps["finalizing_at"], stamps["expired_at"] = "expired", ended, ended
        else:
            status, stamps["finalizing_at"], stamps["completed_at"] = "completed", ended, ended
    failed = tally["errored"] + tally["expired"] + tally["canceled"]
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": info.get("endpoint", _ENDPOINT),
        "errors": (
            {"object": "list", "data": batch.errors} if batch.errors and not validating else None
        ),
        "input_file_id": info.get("input_file_id"),
        "completion_window": info.get("completion_window", _WINDOW),
        "status": status,
        "output_file_id": None if validating else info.get("output_file_id"),
        "error_file_id": None if validating else info.get("error_file_id"),
        "created_at": created,
        "in_progress_at": stamps["in_progress_at"],
        "expires_at": created + _WINDOW_S,
        "finalizing_at": stamps["finalizing_at"],
        "completed_at": stamps["completed_at"],
        "failed_at": stamps["failed_at"],
        "expired_at": stamps["expired_at"],
        "cancelling_at": stamps["cancelling_at"],
        "cancelled_at": stamps["cancelled_at"],
        "request_counts": {"total": total, "completed": tally["succeeded"], "failed": failed},
        "metadata": info.get("metadata"),
    }
