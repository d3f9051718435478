"""What HTTP status and OpenAI error body each failure gets, so the OpenAI SDKs understand it.

Every error the gateway answers has the body OpenAI's API uses,
`{"error": {"message", "type", "param", "code"}}`, and a status the SDKs map to
their exception classes (400 BadRequestError, 401 AuthenticationError, 429
RateLimitError, 5xx InternalServerError, ...). `code` is tierline's error type
(`schemas.errors.ErrorType`) for failures of the pipeline, or one of the
gateway's own codes (`invalid_api_key`, `model_not_found`, `unsupported`, ...).

    status  pipeline error types                      why this status
    400     invalid_request, unknown_model,            the request is wrong; the same
            bad_request, context_too_long,             request fails again
            content_filtered
    403     policy_denied                              the tenant's policy forbids it
    413     payload_too_large                          over the size limit
    422     no_candidate                               valid, but no model of the catalog
                                                       can serve it as asked (400 would
                                                       say the JSON is wrong)
    429     budget_exceeded                            the tenant's budget is spent: not
                                                       retried (`x-should-retry: false`)
    502     rate_limited, overloaded, server_error,    every provider the request could
            connection, auth, invalid_response         go to failed; `auth` is tierline's
                                                       provider key, not the caller's
    503     unavailable                                no provider usable until the
                                                       request's deadline
    504     timeout                                    the providers did not answer in time
    500     internal                                   tierline's own bug

The SDKs retry 429 and 5xx by themselves. A retry without an `Idempotency-Key` is a
new request, billed again, so the gateway says `x-should-retry: false` where a retry
cannot help or would bill twice (budget, the gateway's own wait timing out) and
`true` where the pipeline said the error is retryable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierline.schemas import ErrorInfo, ErrorType

#: the OpenAI error `type` of each status the gateway answers with
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "insufficient_quota",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}

STATUS_OF: dict[ErrorType, int] = {
    ErrorType.INVALID_REQUEST: 400,
    ErrorType.UNKNOWN_MODEL: 400,
    ErrorType.BAD_REQUEST: 400,
    ErrorType.CONTEXT_TOO_LONG: 400,
    ErrorType.CONTENT_FILTERED: 400,
    ErrorType.POLICY_DENIED: 403,
    ErrorType.PAYLOAD_TOO_LARGE: 413,
    ErrorType.NO_CANDIDATE: 422,
    ErrorType.BUDGET_EXCEEDED: 429,
    ErrorType.RATE_LIMITED: 502,
    ErrorType.OVERLOADED: 502,
    ErrorType.SERVER_ERROR: 502,
    ErrorType.CONNECTION: 502,
    ErrorType.AUTH: 502,
    ErrorType.INVALID_RESPONSE: 502,
    ErrorType.UNAVAILABLE: 503,
    ErrorType.TIMEOUT: 504,
    ErrorType.INTERNAL: 500,
}

#: codes OpenAI's own API uses for the same failure, so clients that test for them work
_OPENAI_CODES = {
    ErrorType.UNKNOWN_MODEL: "model_not_found",
    ErrorType.CONTEXT_TOO_LONG: "context_length_exceeded",
}
_NEVER_RETRIED = {ErrorType.BUDGET_EXCEEDED}


@dataclass(eq=False)
class GatewayError(Exception):
    """A failure answered over HTTP: its status and the fields of its OpenAI error body."""

    status: int
    message: str
    code: str
    param: str | None = None
    #: the `x-should-retry` header for the SDKs; None = let them decide by status
    retry: bool | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": OPENAI_TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        return {} if self.retry is None else {"x-should-retry": "true" if self.retry else "false"}


def from_pipeline(error: ErrorInfo) -> GatewayError:
    """The HTTP answer to a request the pipeline answered with `error`."""
    retry = False if error.type in _NEVER_RETRIED else error.retryable
    return GatewayError(
        status=STATUS_OF.get(error.type, 500),
        message=error.message,
        code=_OPENAI_CODES.get(error.type, error.type.value),
        retry=retry,
    )


def bad_request(
    message: str, param: str | None = None, code: str = "invalid_request"
) -> GatewayError:
    """A 400 for a body or header the gateway refuses before anything reaches Kafka."""
    return GatewayError(400, message, code, param, retry=False)


def unsupported(what: str, param: str | None = None) -> GatewayError:
    """A 400 for an OpenAI feature tierline does not serve (rather than one silently dropped)."""
    return GatewayError(
        400,
        f"{what} is not supported by tierline's gateway",
        "unsupported",
        param,
        retry=False,
    )
