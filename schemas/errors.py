"""The error types a response can carry: a closed vocabulary shared by every topic.

Which of them are retryable, and whether another model helps, is decided in
`processors.errors`; here they are only names on the wire.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ErrorType(StrEnum):
    # the request itself is wrong
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_MODEL = "unknown_model"
    NO_CANDIDATE = "no_candidate"
    # policy and money
    BUDGET_EXCEEDED = "budget_exceeded"
    POLICY_DENIED = "policy_denied"
    # the provider failed
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    CONTENT_FILTERED = "content_filtered"
    INVALID_RESPONSE = "invalid_response"
    # no candidate of the tier was usable (circuits open) until the request's deadline
    UNAVAILABLE = "unavailable"
    # ours
    INTERNAL = "internal"


class ErrorInfo(BaseModel):
    """A typed error: what went wrong, in words safe to show, and whether a retry may help."""

    model_config = ConfigDict(frozen=True)

    type: ErrorType
    message: str = Field(max_length=4000)
    retryable: bool = False
    #: what exactly failed, where the type is coarse: for `connection` and `timeout`
    #: one of refused | dns | tls | reset | connect_timeout | read_timeout
    cause: str | None = Field(default=None, max_length=32)
