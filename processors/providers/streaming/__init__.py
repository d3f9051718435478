"""Streamed provider calls: the request that asks for a stream, and the parser of its events.

One module per idea: `sse` decodes `text/event-stream` bytes into `SseEvent`s
(WHATWG rules); `base` holds what every family's stream is made of (`SseEvent`,
`StreamDelta`, `ToolCallDelta` in OpenAI's streamed shape, the `StreamParser`
protocol); `openai`, `anthropic`, `gemini` each turn their adapter's call into
its streaming variant and parse its events, then hand the assembled unstreamed
body to the adapter's `parse`, so a streamed reply is normalized exactly as the
same reply unstreamed.

    call = streaming_call(model, request, api_key)       # POST it, read the stream
    decoder, parser = SseDecoder(), stream_parser(model.provider, reply.headers)
    for chunk in body_chunks:
        for event in decoder.feed(chunk):
            deltas = parser.feed(event)                   # text and tool-call pieces
    for event in decoder.close(): parser.feed(event)
    reply = parser.finish()                               # the ProviderReply

| family         | asked by                     | events                    | ends with       |
|----------------|------------------------------|---------------------------|-----------------|
| OpenAI (and    | `"stream": true`,            | `data: {chat.completion.  | finish_reason,  |
| the compatible | `stream_options: {"include_  | chunk}`, no event names   | usage chunk,    |
| ones)          | usage": true}` (not Mistral) |                           | `data: [DONE]`  |
| Anthropic      | `"stream": true`             | `event: <type>`: message_ | message_delta,  |
|                |                              | start, content_block_*,   | message_stop    |
|                |                              | ping, error               |                 |
| Gemini         | `:streamGenerateContent?     | `data: {GenerateContent-  | finishReason    |
|                | alt=sse`                     | Response}`, no names      | (no end marker) |

`stream_parser(family, headers)` takes the response headers optionally: given
them, the reply's request id is the header the adapter reads unstreamed
(`x-request-id`, `request-id`); without, the id in the events.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.anthropic import AnthropicAdapter
from tierline.processors.providers.base import HttpCall
from tierline.processors.providers.gemini import GeminiAdapter
from tierline.processors.providers.openai import OpenAIAdapter
from tierline.processors.providers.registry import adapter_for
from tierline.processors.providers.streaming import anthropic, gemini, openai
from tierline.processors.providers.streaming.base import (
    SseEvent,
    StreamDelta,
    StreamParser,
    ToolCallDelta,
)
from tierline.processors.providers.streaming.sse import SseDecoder
from tierline.schemas import RouteRequest

__all__ = [
    "SseDecoder",
    "SseEvent",
    "StreamDelta",
    "StreamParser",
    "ToolCallDelta",
    "stream_parser",
    "streaming_call",
    "supports_streaming",
]


def streaming_call(model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall:
    """The adapter's `build()` for `request`, turned into its streaming variant."""
    adapter = adapter_for(model.provider)
    if isinstance(adapter, OpenAIAdapter):
        return openai.streaming_call(adapter, model, request, api_key)
    if isinstance(adapter, AnthropicAdapter):
        return anthropic.streaming_call(adapter, model, request, api_key)
    if isinstance(adapter, GeminiAdapter):
        return gemini.streaming_call(adapter, model, request, api_key)
    raise ValueError(f"provider family {model.provider!r} does not stream")


def stream_parser(family: str, headers: Mapping[str, str] | None = None) -> StreamParser:
    """A new parser for one streamed call of `family`; `ValueError` for an unknown family.

    `headers`, the response's, make the request id the header the adapter reads."""
    adapter = adapter_for(family)
    if isinstance(adapter, OpenAIAdapter):
        return openai.OpenAIStreamParser(adapter, headers)
    if isinstance(adapter, AnthropicAdapter):
        return anthropic.AnthropicStreamParser(adapter, headers)
    if isinstance(adapter, GeminiAdapter):
        return gemini.GeminiStreamParser(adapter, headers)
    raise ValueError(f"provider family {family!r} does not stream")


def supports_streaming(family: str) -> bool:
    """Whether calls to `family` can stream (every family with an adapter does)."""
    try:
        adapter = adapter_for(family)
    except ValueError:
        return False
    return isinstance(adapter, OpenAIAdapter | AnthropicAdapter | GeminiAdapter)
