"""What a streamed answer is made of, whatever the provider: events, deltas, a parser.

A streamed call answers `text/event-stream` (Gemini without `alt=sse`: a JSON
array, which tierline does not ask for). `sse.SseDecoder` turns its bytes into
`SseEvent`s; a family's `StreamParser` turns each event into the `StreamDelta`s
it carries (text, and tool-call fragments in OpenAI's streamed shape,
`ToolCallDelta`, whoever sent them) and, once the stream has ended, `finish()`
gives the whole reply, normalized exactly as the adapter's `parse` normalizes
the same answer unstreamed: each parser assembles the unstreamed body from the
events and hands it to the adapter, so the two can never drift apart. A stream
that ends before its final event (the connection cut, an overloaded provider)
is a `SERVER_ERROR` ("stream ended before ..."), retryable like the 5xx it
stands for; an error event is the error the adapter types for that body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tierline.processors.errors import ProviderError
from tierline.processors.providers.base import ProviderReply
from tierline.processors.providers.payload import invalid_response
from tierline.schemas import ErrorType


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    """The `event:` field; "" when the event has none."""
    data: str
    """The `data:` lines, joined with "\\n"."""


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call, in OpenAI's streamed shape whatever the provider: the call's
    `id` and `name` come once (with its first piece), `arguments` in fragments of its JSON
    arguments string, which add up to the whole call's."""

    index: int
    """The call's position among the answer's calls (0, 1, ...)."""
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """What one event added to the answer."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()


class StreamParser(Protocol):
    def feed(self, event: SseEvent) -> list[StreamDelta]:
        """The deltas `event` carries (none for bookkeeping events); raises `ProviderError`,
        typed as the adapter types the same error unstreamed, on an error event."""
        ...

    def finish(self) -> ProviderReply:
        """After the stream ended: the whole reply, as the adapter's `parse` gives the same
        answer unstreamed; raises `ProviderError` when the stream was cut short."""
        ...


def cut_short(what: str) -> ProviderError:
    """The error of a stream that ended before `what`, its final event: a server error."""
    return ProviderError(
        ErrorType.SERVER_ERROR, f"stream ended before {what} (cut short)", status=200
    )


def event_object(event: SseEvent, what: str) -> dict[str, Any]:
    """An event's data as a JSON object; `invalid_response` when it is not one."""
    try:
        data = orjson.loads(event.data)
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise invalid_response(what, exc, 200) from None
    return data
