"""Intake: raw bytes from the request topic become a `RouteRequest` or a `Rejection`.

Nothing here raises: however malformed the input, the caller gets either a
valid request or a rejection that says why, names the request id when one can
be read, and keeps the raw bytes for the DLQ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from tierline.schemas import ErrorInfo, ErrorType, RouteRequest, RouteResponse
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
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _reject(ErrorType.INVALID_REQUEST, f"not JSON: {exc}")
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


def _reject(kind: ErrorType, message: str, data: dict[str, Any] | None = None) -> Rejection:
    data = data or {}
    return Rejection(
        error=ErrorInfo(type=kind, message=message[:2000], retryable=False),
        request_id=_short_str(data.get("id"), 128),
        tenant=_short_str(data.get("tenant"), 128),
        reply_to=_valid_topic(data.get("reply_to")),
    )


def _short_str(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _valid_topic(value: Any) -> str | None:
    return value if isinstance(value, str) and _TOPIC.match(value) else None


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - 5
    return "invalid request: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
