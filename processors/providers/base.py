"""The adapter contract: our request in, the provider's wire format out, and back.

An adapter is two pure functions. `build` turns a `RouteRequest` into the HTTP
call a provider expects; `parse` turns the provider's HTTP reply into a
`ProviderReply`, or raises a `ProviderError` of the right type. The HTTP
exchange itself happens once, in `processors.providers.call`, for every adapter.

Whatever the provider, a reply is normalized to the same shape: the text, the
tool calls in OpenAI's shape (`schemas.tools.ToolCall`: an id, the function's
name, its arguments as a JSON string), a `finish_reason` (stop | length |
content_filter | tool_calls), the `truncated` and `content_filtered` flags
derived from it, usage (input tokens including the cached ones, cached-read,
cache-write and output tokens) and the provider's request id. Every adapter
ends in `normalized()`, which holds the rules they share: an answer with
neither text nor a tool call is never a success (a `content_filtered` error
when the provider withheld it, an `invalid_response` otherwise; those errors
carry the usage the provider billed for the useless reply,
`BilledReplyError.usage`), and an answer ends in `tool_calls` exactly when it
calls tools and was not cut off (`length`), whatever the provider named its stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import ModelSpec
from tierline.schemas import ErrorType, RouteRequest, ToolCall, Usage
from tierline.schemas.response import FinishReason


@dataclass(frozen=True, slots=True)
class HttpCall:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """A provider's answer, normalized: the same shape whoever answered."""

    content: str
    finish_reason: FinishReason
    usage: Usage
    request_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    @property
    def content_filtered(self) -> bool:
        return self.finish_reason == "content_filter"


class BilledReplyError(ProviderError):
    """A well-formed reply that cannot be used (refused, empty) but whose tokens were billed."""

    def __init__(
        self, error_type: ErrorType, message: str, usage: Usage, *, status: int | None = None
    ) -> None:
        super().__init__(error_type, message, status=status)
        self.usage = usage


class Adapter(Protocol):
    family: str

    def build(self, model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall: ...

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderReply: ...


def normalized(
    content: str,
    finish_reason: FinishReason,
    usage: Usage,
    request_id: str | None,
    *,
    status: int,
    detail: str = "",
    tool_calls: tuple[ToolCall, ...] = (),
) -> ProviderReply:
    """The reply, or the error an unusable one is: the rule every adapter ends with."""
    if finish_reason == "error":
        raise BilledReplyError(
            ErrorType.SERVER_ERROR,
            f"the provider ended the reply with an error{detail}",
            usage,
            status=status,
        )
    if tool_calls and finish_reason in ("stop", "tool_calls"):
        finish_reason = "tool_calls"
    elif finish_reason == "tool_calls" and content:
        finish_reason = "stop"  # said it called tools, but called none: its text is the answer
    elif not content and not tool_calls:
        if finish_reason == "content_filter":
            raise BilledReplyError(
                ErrorType.CONTENT_FILTERED,
                f"reply withheld by the provider's content filter{detail}",
                usage,
                status=status,
            )
        raise BilledReplyError(
            ErrorType.INVALID_RESPONSE,
            f"empty completion (finish_reason={finish_reason}{detail})",
            usage,
            status=status,
        )
    return ProviderReply(
        content=content,
        finish_reason=finish_reason,
        usage=usage,
        request_id=request_id,
        tool_calls=tool_calls,
    )
