"""Map a provider's failure to the error taxonomy, the part every wire format shares.

Each adapter extracts the provider's own message and error code (OpenAI's
`error.code`, Anthropic's `error.type`, Gemini's `error.status` plus its
`ErrorInfo` reasons) and hands them here. The code decides first, because it is
exact; then the HTTP status; then, for a 4xx, words in the message:

| what the provider said                                            | type             |
|-------------------------------------------------------------------|------------------|
| 402, `insufficient_quota`, `billing_error` (the account can't pay) | auth             |
| 401, 403, `invalid_api_key`, `authentication_error`,               | auth             |
|   `permission_error`, `API_KEY_INVALID`, `PERMISSION_DENIED`       |                  |
| 404, `model_not_found`, `not_found_error`, `NOT_FOUND`             | auth (this key   |
|   (this key cannot reach this model; another model helps)          |   can't use it)  |
| 408, 504, `timeout_error`, `DEADLINE_EXCEEDED`                     | timeout          |
| 429, `rate_limit_error`, `RESOURCE_EXHAUSTED`                      | rate_limited     |
| 529, `overloaded_error`, "overloaded"                              | overloaded       |
| other 5xx                                                          | server_error     |
| 413, `context_length_exceeded`, "prompt is too long", "maximum     | context_too_long |
|   context length", "input token count (N) exceeds ..."             |                  |
| `content_filter`, "safety", "content management policy"           | content_filtered |
| any other 4xx                                                      | bad_request      |

A `bad_request` whose message says the model lacks a capability ("does not
support tools", `capability_errors`) carries it as `ProviderError.unsupported`,
which makes it an error another model may not have.

`Retry-After` (seconds) is read from the headers unless the adapter found a
more precise delay (OpenAI's `retry-after-ms`, Gemini's `RetryInfo`).
"""

from __future__ import annotations

from collections.abc import Mapping

from tierline.processors.errors import ProviderError
from tierline.processors.providers.capability_errors import unsupported_capability
from tierline.schemas import ErrorType

_BILLING = ("insufficient_quota", "billing_error")
_AUTH = (
    "invalid_api_key",
    "authentication_error",
    "permission_error",
    "api_key_invalid",
    "permission_denied",
    "unauthenticated",
)
_NOT_FOUND = ("model_not_found", "not_found_error", "not_found")
_TIMEOUT = ("timeout_error", "deadline_exceeded")
_RATE = ("rate_limit_error", "rate_limit_exceeded", "resource_exhausted")
_OVERLOADED = ("overloaded_error",)
_CONTEXT_CODES = ("context_length_exceeded",)
_CONTEXT_WORDS = (
    "context_length",
    "context length",
    "context limit",
    "context window",
    "maximum context",
    "prompt is too long",
    "too long",
    "too many tokens",
    "input token count",
    "exceeds the maximum number of tokens",
)
_FILTER_WORDS = (
    "content_filter",
    "content filter",
    "content_policy",
    "content management",
    "safety",
)


def classify(status: int, code: str, message: str) -> ErrorType:
    """The error type for an HTTP `status`, the provider's `code` and its `message`."""
    codes = code.lower().replace(",", " ").split()
    low = message.lower()
    if any(c in _BILLING for c in codes) or status == 402:
        return ErrorType.AUTH
    if any(c in _AUTH for c in codes) or status in (401, 403):
        return ErrorType.AUTH
    if any(c in _NOT_FOUND for c in codes) or status == 404:
        return ErrorType.AUTH
    if any(c in _TIMEOUT for c in codes) or status in (408, 504):
        return ErrorType.TIMEOUT
    if status == 429 or any(c in _RATE for c in codes):
        return ErrorType.RATE_LIMITED
    if status == 529 or any(c in _OVERLOADED for c in codes) or "overloaded" in low:
        return ErrorType.OVERLOADED
    if status >= 500:
        return ErrorType.SERVER_ERROR
    if any(c in _CONTEXT_CODES for c in codes) or status == 413:
        return ErrorType.CONTEXT_TOO_LONG
    if any(w in low for w in _CONTEXT_WORDS):
        return ErrorType.CONTEXT_TOO_LONG
    if any(w in low or w in code.lower() for w in _FILTER_WORDS):
        return ErrorType.CONTENT_FILTERED
    return ErrorType.BAD_REQUEST


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    message: str,
    *,
    code: str = "",
    retry_after_s: float | None = None,
) -> ProviderError:
    """The typed error for a non-2xx reply; `code` is the provider's own error code, if any."""
    if retry_after_s is None:
        retry_after_s = parse_retry_after(headers.get("retry-after"))
    shown = f"{code}: {message}" if code and code not in message else message
    error_type = classify(status, code, message)
    unsupported = unsupported_capability(message) if error_type == ErrorType.BAD_REQUEST else None
    return ProviderError(
        error_type,
        f"HTTP {status}: {shown}"[:1000],
        status=status,
        retry_after_s=retry_after_s,
        unsupported=unsupported,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; HTTP dates are rare from LLM APIs)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
