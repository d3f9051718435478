"""The error taxonomy: what failed, whether to retry, whether another model helps.

    TierlineError
    ├── InputError                  the request itself; never retried, answered at once
    │   ├── invalid_request         not JSON, wrong types, missing fields
    │   ├── payload_too_large       over the configured request size
    │   ├── unknown_model           a candidate the catalog does not know
    │   └── no_candidate            no model of the tier fits (window, policy, keys)
    ├── PolicyError                 money and rules; never retried
    │   ├── budget_exceeded
    │   └── policy_denied
    └── ProviderError               one provider call failed
        ├── retryable, same model   (back off, honour Retry-After)
        │   ├── rate_limited        429
        │   ├── overloaded          529 / 503 "overloaded" / DeepSeek insufficient_system_resource
        │   ├── timeout             no answer within the call timeout; the provider's 408/504
        │   ├── connection          refused, reset, DNS
        │   └── server_error        5xx
        ├── not retryable, next model helps
        │   ├── auth                401/403 bad key, 402 billing/quota, 404 model not reachable
        │   │                       with this key: another provider, and an alert
        │   ├── context_too_long    a model with a larger window
        │   ├── content_filtered    another provider's filter may differ (billed if charged)
        │   └── invalid_response    empty or unparseable reply (billed if charged)
        └── not retryable, final
            └── bad_request         400: our request is wrong everywhere; except when
                                    the model refused a capability the request needs
                                    (`unsupported`: "does not support tools"), which
                                    another model may have: the next model helps

Retryable errors are retried on the same model until its retries run out, then
the walk moves to the next candidate, as for the "next model helps" kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierline.schemas import ErrorInfo, ErrorType


@dataclass(frozen=True, slots=True)
class ErrorKind:
    retryable: bool
    next_model_helps: bool


KINDS: dict[ErrorType, ErrorKind] = {
    ErrorType.RATE_LIMITED: ErrorKind(retryable=True, next_model_helps=True),
    ErrorType.OVERLOADED: ErrorKind(retryable=True, next_model_helps=True),
    ErrorType.TIMEOUT: ErrorKind(retryable=True, next_model_helps=True),
    ErrorType.CONNECTION: ErrorKind(retryable=True, next_model_helps=True),
    ErrorType.SERVER_ERROR: ErrorKind(retryable=True, next_model_helps=True),
    ErrorType.AUTH: ErrorKind(retryable=False, next_model_helps=True),
    ErrorType.CONTEXT_TOO_LONG: ErrorKind(retryable=False, next_model_helps=True),
    ErrorType.CONTENT_FILTERED: ErrorKind(retryable=False, next_model_helps=True),
    ErrorType.INVALID_RESPONSE: ErrorKind(retryable=False, next_model_helps=True),
    ErrorType.BAD_REQUEST: ErrorKind(retryable=False, next_model_helps=False),
}
_FINAL = ErrorKind(retryable=False, next_model_helps=False)
#: a model that refused a capability the request needs: another model may have it
_CAPABILITY = ErrorKind(retryable=False, next_model_helps=True)


def kind_of(error_type: ErrorType) -> ErrorKind:
    return KINDS.get(error_type, _FINAL)


class TierlineError(Exception):
    """Base of every error tierline turns into a typed error response."""

    error_type: ErrorType = ErrorType.INTERNAL

    def __init__(self, message: str, error_type: ErrorType | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_type is not None:
            self.error_type = error_type

    def info(self) -> ErrorInfo:
        return ErrorInfo(
            type=self.error_type,
            message=self.message[:4000],
            retryable=kind_of(self.error_type).retryable,
        )


class InputError(TierlineError):
    error_type = ErrorType.INVALID_REQUEST


class PolicyError(TierlineError):
    error_type = ErrorType.POLICY_DENIED


class ProviderError(TierlineError):
    """A failed provider call, with the provider's status and Retry-After when it gave them."""

    def __init__(
        self,
        error_type: ErrorType,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        cause: str | None = None,
        unsupported: str | None = None,
    ) -> None:
        super().__init__(message, error_type)
        self.status = status
        self.retry_after_s = retry_after_s
        #: refused | dns | tls | reset | connect_timeout | read_timeout, where it is one
        self.cause = cause
        #: the capability the model said it lacks (tools | images | json_schema), if any
        self.unsupported = unsupported

    def info(self) -> ErrorInfo:
        return super().info().model_copy(update={"cause": self.cause})

    @property
    def kind(self) -> ErrorKind:
        if self.unsupported is not None:
            return _CAPABILITY
        return kind_of(self.error_type)


class StreamBroken(ProviderError):
    """A streamed answer failed after its first piece went out: the client holds part of
    it, so it is neither retried nor sent to another model, whatever the cause."""

    @property
    def kind(self) -> ErrorKind:
        return _FINAL
