"""Intake: raw bytes from the request topic become a `RouteRequest` or a `Rejection`.

Nothing here raises: however malformed the input, the caller gets either a
valid request or a rejection that says why, names the request id when one can
be read, and keeps the raw bytes for the DLQ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tierline.processors.routing.strict_json import StrictJSONError, loads_strict
from tierline.schemas import ErrorInfo, ErrorType, RouteRequest, RouteResponse
from tierline.schemas.identifier import MAX_LENGTH, check_identifier
from tierline.schemas.request import TOPIC_NAME_PATTERN

_TOPIC = re.compile(TOPIC_NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was not routed, and what of it could be read (for the DLQ and the reply)."""

    error: ErrorInfo
    request_id: str | None = None
    tenant: str | None = None
    reply_to: str | None = None

    def response(self) -> RouteResponse | None:
        """The client's error response; none when the request id could not be read."""
        if self.request_id is None:
            return None
        return RouteResponse.from_error(self.request_id, self.tenant or "", self.error)


def admit(raw: bytes | None, max_bytes: int) -> RouteRequest | Rejection:
    if raw is None:
        return _reject(ErrorType.INVALID_REQUEST, "empty message (no value)")
    try:
        data = loads_strict(raw)
    except StrictJSONError as exc:
        return _reject(ErrorType.INVALID_REQUEST, str(exc), _readable(raw, exc), trusted=False)
    if not isinstance(data, dict):
        return _reject(ErrorType.INVALID_REQUEST, f"not a JSON object but {type(data).__name__}")
    if len(raw) > max_bytes:
        return _reject(
            ErrorType.PAYLOAD_TOO_LARGE,
            f"request is {len(raw):,} bytes; the limit is {max_bytes:,}",
            data,
        )
    try:
        return RouteRequest.model_validate(data)
    except ValidationError as exc:
        return _reject(ErrorType.INVALID_REQUEST, _summarize(exc), data)


def _reject(
    kind: ErrorType, message: str, data: dict[str, Any] | None = None, *, trusted: bool = True
) -> Rejection:
    """A rejection naming what of the request could be read.

    The id and tenant count as read only when they are valid identifiers; the
    reply_to only when the JSON was sound (`trusted`): an answer to a message that
    did not parse goes to the shared response topic.
    """
    data = data or {}
    return Rejection(
        error=ErrorInfo(type=kind, message=message[:2000], retryable=False),
        request_id=_identifier(data.get("id")),
        tenant=_identifier(data.get("tenant")),
        reply_to=_valid_topic(data.get("reply_to")) if trusted else None,
    )


def _identifier(value: Any) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LENGTH:
        return None
    try:
        return check_identifier(value)
    except ValueError:
        return None


#: a plain JSON string member, for reading the id of a message that does not parse
_MEMBER = re.compile(r'"(id|tenant)"\s*:\s*"([^"\\\x00-\x1f]{1,128})"')
_SCAN_CHARS = 65_536


def _readable(raw: bytes, error: StrictJSONError) -> dict[str, Any]:
    """What can be read of input that is not strict JSON, so its client can be answered.

    A duplicate key: the parsed object, less the top-level keys given twice. Else the
    lenient standard-library reading (NaN, bad UTF-8 replaced), else a plain `"id":
    "..."` member found exactly once in truncated or broken text; else nothing.
    """
    if isinstance(error.value, dict):
        return {k: v for k, v in error.value.items() if k not in error.ambiguous}
    try:
        lenient = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        lenient = None
    if isinstance(lenient, dict):
        return lenient
    found: dict[str, list[str]] = {}
    for name, value in _MEMBER.findall(raw[:_SCAN_CHARS].decode("utf-8", "replace")):
        found.setdefault(name, []).append(value)
    return {name: values[0] for name, values in found.items() if len(values) == 1}


def _valid_topic(value: Any) -> str | None:
    return value if isinstance(value, str) and _TOPIC.match(value) else None


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - 5
    return "invalid request: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
