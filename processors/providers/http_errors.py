"""Map an HTTP failure to the error taxonomy, the part every wire format shares."""

from __future__ import annotations

from collections.abc import Mapping

from processors.backoff import parse_retry_after
from processors.errors import ProviderError
from schemas import ErrorType


def error_for_status(
    status: int, headers: Mapping[str, str], message: str, *, code: str = ""
) -> ProviderError:
    """The typed error for a non-2xx reply; `code` is the provider's own error code, if any."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    low = f"{code} {message}".lower()
    if status == 429:
        kind = ErrorType.RATE_LIMITED
    elif status == 529 or "overloaded" in low:
        kind = ErrorType.OVERLOADED
    elif status in (401, 403):
        kind = ErrorType.AUTH
    elif status == 408:
        kind = ErrorType.TIMEOUT
    elif status >= 500:
        kind = ErrorType.SERVER_ERROR
    elif "context_length" in low or "too long" in low or "maximum context" in low:
        kind = ErrorType.CONTEXT_TOO_LONG
    elif "content_filter" in low or "safety" in low:
        kind = ErrorType.CONTENT_FILTERED
    else:
        kind = ErrorType.BAD_REQUEST
    return ProviderError(
        kind, f"HTTP {status}: {message}"[:1000], status=status, retry_after_s=retry_after
    )
