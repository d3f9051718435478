"""Anthropic Messages streamed: the adapter's body plus `"stream": true`.

Reply (https://platform.claude.com/docs/en/build-with-claude/streaming,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use):
server-sent events whose `event:` name is their data's `type`:

* `message_start`: the message with empty `content`; its `usage` has the input
  tokens (`input_tokens`, `cache_creation_input_tokens`,
  `cache_read_input_tokens`, `cache_creation` by TTL) and a placeholder
  `output_tokens`;
* per content block, at its `index` in the final `content`: `content_block_start`
  (a `text` block with `text: ""`, a `tool_use` block with `id`, `name` and
  `input: {}`), `content_block_delta`s (`text_delta` with `text`;
  `input_json_delta` with `partial_json`, fragments of the input's JSON to be
  joined; `thinking_delta`, `signature_delta`, `citations_delta`, which are no
  answer), `content_block_stop`;
* `message_delta`: `delta.stop_reason` and cumulative `usage` (at least
  `output_tokens`; recent models repeat the input counts), merged over
  `message_start`'s;
* `message_stop`; `ping`s anywhere;
* `error`: `{"type": "error", "error": {"type": "overloaded_error", ...}}` when
  the answer fails mid-stream, typed by the adapter as the same body in a 200
  (overloaded, rate limited, ...).

Each `tool_use` block is tool call number n (in block order) for the deltas:
its `id` and `name` with the first delta, then the `partial_json` fragments as
`arguments`. `finish()` needs `message_start` and the `stop_reason` of a
`message_delta` (`message_stop` itself is not needed once both came); it
assembles the `message` (text blocks, `tool_use` blocks with the joined input
parsed as JSON, the stop reason, the merged usage) and hands it to the adapter's
`parse`: the request id is the `request-id` header when the parser was given
the response headers, else the message `id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.anthropic import AnthropicAdapter
from tierline.processors.providers.base import HttpCall, ProviderReply
from tierline.processors.providers.payload import invalid_response
from tierline.processors.providers.streaming.base import (
    SseEvent,
    StreamDelta,
    ToolCallDelta,
    cut_short,
    event_object,
)
from tierline.schemas import RouteRequest


def streaming_call(
    adapter: AnthropicAdapter, model: ModelSpec, request: RouteRequest, api_key: str | None
) -> HttpCall:
    """`adapter.build()`'s call, asking for a stream."""
    call = adapter.build(model, request, api_key)
    body = orjson.loads(call.body)
    body["stream"] = True
    headers = {**call.headers, "accept": "text/event-stream"}
    return HttpCall(call.url, headers, orjson.dumps(body))


class _Block:
    __slots__ = ("call", "json", "start", "text")

    def __init__(self, start: dict[str, Any], call: int | None) -> None:
        self.start = start
        self.call = call  # the tool call's number, for a tool_use block
        self.text: list[str] = []
        self.json: list[str] = []


class AnthropicStreamParser:
    """One streamed message's events, in order, to deltas and the whole reply."""

    def __init__(self, adapter: AnthropicAdapter, headers: Mapping[str, str] | None = None) -> None:
        self._adapter = adapter
        self._headers: Mapping[str, str] = headers or {}
        self._message: dict[str, Any] | None = None
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._stop_reason: str | None = None

    def feed(self, event: SseEvent) -> list[StreamDelta]:
        data = event_object(event, "Anthropic stream event")
        kind = data.get("type", event.event)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            message = data.get("message")
            if not isinstance(message, dict):
                raise invalid_response("Anthropic message_start", TypeError(event.data), 200)
            self._message = message
            self._usage = dict(message.get("usage") or {})
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self._stop_reason = str(delta["stop_reason"])
            usage = data.get("usage")
            if isinstance(usage, dict):
                self._usage.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "error":
            # the adapter types an error event in a 200 body: parse raises it
            self._adapter.parse(200, self._headers, event.data.encode())
            raise invalid_response("Anthropic error event", ValueError(event.data), 200)
        return []  # ping, content_block_stop, message_stop, and events yet unknown

    def _block_start(self, data: dict[str, Any]) -> list[StreamDelta]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise invalid_response("Anthropic content_block_start", TypeError(data), 200)
        call = None
        if block.get("type") == "tool_use":
            call, self._calls = self._calls, self._calls + 1
        entry = self._blocks[index] = _Block(block, call)
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str) and text:
            entry.text.append(text)
            return [StreamDelta(text)]
        if call is not None:
            head = ToolCallDelta(call, _str(block.get("id")), _str(block.get("name")))
            return [StreamDelta(tool_calls=(head,))]
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[StreamDelta]:
        index = data.get("index")
        entry = self._blocks.get(index) if isinstance(index, int) else None
        delta = data.get("delta")
        if entry is None or not isinstance(delta, dict):
            raise invalid_response("Anthropic content_block_delta", KeyError(data), 200)
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            entry.text.append(delta["text"])
            return [StreamDelta(delta["text"])] if delta["text"] else []
        if kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            fragment = delta["partial_json"]
            entry.json.append(fragment)
            if entry.call is None or not fragment:
                return []
            return [StreamDelta(tool_calls=(ToolCallDelta(entry.call, arguments=fragment),))]
        return []  # thinking, signatures, citations: no part of the answer

    def finish(self) -> ProviderReply:
        if self._message is None:
            raise cut_short("its message_start")
        if self._stop_reason is None:
            raise cut_short("its message_delta (stop_reason)")
        content: list[dict[str, Any]] = []
        for _, entry in sorted(self._blocks.items()):
            block = dict(entry.start)
            if block.get("type") == "text":
                block["text"] = "".join(entry.text)
            elif entry.json:
                raw = "".join(entry.json)
                try:
                    block["input"] = orjson.loads(raw) if raw.strip() else {}
                except orjson.JSONDecodeError as exc:
                    raise invalid_response("Anthropic tool_use input", exc, 200) from None
            content.append(block)
        body = self._message | {
            "content": content,
            "stop_reason": self._stop_reason,
            "usage": self._usage,
        }
        return self._adapter.parse(200, self._headers, orjson.dumps(body))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
