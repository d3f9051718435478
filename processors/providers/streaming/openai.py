"""OpenAI Chat Completions streamed (and the OpenAI-compatible family through it).

Request: the adapter's body plus `"stream": true` and `"stream_options":
{"include_usage": true}`, without which OpenAI sends no usage at all when it
streams; a member that refuses unknown fields and always reports usage in its
last chunk anyway (Mistral: no `stream_options` in its API, 422 for fields it
does not know) gets `stream` alone (`NO_STREAM_OPTIONS`).

Reply (https://platform.openai.com/docs/api-reference/chat-streaming,
https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options):
server-sent events without `event:` names, each `data:` a `chat.completion.chunk`
(`id`, `model`, `choices[{index, delta, finish_reason}]`), the stream ending with
`data: [DONE]`. The first delta carries `role: assistant`; then `delta.content`
pieces (a member may send a list of content parts, as unstreamed), `delta.refusal`
pieces, and tool calls as `delta.tool_calls[{index, id, type, function: {name,
arguments}}]`: `id` and `name` with a call's first fragment, `arguments` as
fragments of its JSON text to be joined by `index` (a legacy `delta.function_call`
is call 0). The chunk with `finish_reason` ends the answer; with `include_usage`
one more chunk has `choices: []` and the `usage` of the whole request (every other
chunk `usage: null`); members that always report usage put it in the last chunk
with the `finish_reason` (Mistral, Together) - whichever chunk carries a `usage`,
the last one counts. A chunk `{"error": {...}}` (OpenRouter, vLLM, sent when the
answer fails mid-stream) is the error the adapter reads in such a body.

`finish()` needs a `finish_reason` and a `usage` (`[DONE]` itself is not needed
once both came): without them the stream was cut. The assembled
`chat.completion` (the joined content, refusal and calls, the finish reason, the
usage, the first chunk's `id`) goes through the adapter's `parse`, so the dialect
decides usage fields, finish reasons (DeepSeek's `insufficient_system_resource`
is an overload), refusals and the request id (`x-request-id` when the parser was
given the response headers, else the chunk `id`) exactly as unstreamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import HttpCall, ProviderReply
from tierline.processors.providers.openai import OpenAIAdapter, content_text
from tierline.processors.providers.payload import invalid_response
from tierline.processors.providers.streaming.base import (
    SseEvent,
    StreamDelta,
    ToolCallDelta,
    cut_short,
    event_object,
)
from tierline.schemas import RouteRequest

#: members that take no `stream_options` (and report usage in their last chunk anyway)
NO_STREAM_OPTIONS = frozenset({"mistral"})
DONE = "[DONE]"


def streaming_call(
    adapter: OpenAIAdapter, model: ModelSpec, request: RouteRequest, api_key: str | None
) -> HttpCall:
    """`adapter.build()`'s call, asking for a stream (with the usage, where it is asked)."""
    call = adapter.build(model, request, api_key)
    body = orjson.loads(call.body)
    body["stream"] = True
    if adapter.family not in NO_STREAM_OPTIONS:
        body["stream_options"] = {"include_usage": True}
    headers = {**call.headers, "accept": "text/event-stream"}
    return HttpCall(call.url, headers, orjson.dumps(body))


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class OpenAIStreamParser:
    """One streamed chat completion's events, in order, to deltas and the whole reply."""

    def __init__(self, adapter: OpenAIAdapter, headers: Mapping[str, str] | None = None) -> None:
        self._adapter = adapter
        self._headers: Mapping[str, str] = headers or {}
        self._id: str | None = None
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._legacy = False  # the calls came as `function_call`
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, event: SseEvent) -> list[StreamDelta]:
        if event.data.strip() == DONE:
            return []
        chunk = event_object(event, "chat completion chunk")
        if "error" in chunk and not chunk.get("choices"):
            # the adapter types an error sent in a 200 body: parse raises it
            self._adapter.parse(200, self._headers, orjson.dumps({"error": chunk["error"]}))
            raise invalid_response("chat completion chunk", ValueError(event.data), 200)
        if self._id is None and isinstance(chunk.get("id"), str):
            self._id = chunk["id"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return []
        if choice.get("finish_reason") is not None:
            self._finish = str(choice["finish_reason"])
        delta = choice.get("delta")
        return self._delta(delta) if isinstance(delta, dict) else []

    def _delta(self, delta: dict[str, Any]) -> list[StreamDelta]:
        try:
            text = content_text(delta.get("content"))
        except TypeError:
            text = ""
        if isinstance(delta.get("refusal"), str):
            self._refusal.append(delta["refusal"])
        raw = delta.get("tool_calls")
        fragments = raw if isinstance(raw, list) else []
        legacy = delta.get("function_call")
        if not fragments and isinstance(legacy, dict):
            self._legacy = True
            fragments = [{"index": 0, "function": legacy}]
        calls = tuple(self._fragment(f) for f in fragments if isinstance(f, dict))
        if text:
            self._text.append(text)
        if not text and not calls:
            return []
        return [StreamDelta(text, calls)]

    def _fragment(self, fragment: dict[str, Any]) -> ToolCallDelta:
        index = fragment.get("index")
        index = index if isinstance(index, int) else len(self._calls)
        call = self._calls.setdefault(index, _Call())
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        call_id, name, arguments = (
            fragment.get("id"),
            function.get("name"),
            function.get("arguments"),
        )
        call_id = call_id if isinstance(call_id, str) and call_id else None
        name = name if isinstance(name, str) and name else None
        if isinstance(arguments, dict):  # a member that sends the arguments as an object
            arguments = orjson.dumps(arguments).decode()
        arguments = arguments if isinstance(arguments, str) else ""
        if call_id is not None and call.id is None:
            call.id = call_id
        if name is not None and call.name is None:
            call.name = name
        if arguments:
            call.arguments.append(arguments)
        return ToolCallDelta(index, call_id, name, arguments)

    def finish(self) -> ProviderReply:
        if self._finish is None:
            raise cut_short("its finish_reason")
        if self._usage is None:
            raise cut_short("its usage")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._text)}
        if self._refusal:
            message["refusal"] = "".join(self._refusal)
        calls = [
            {"id": c.id, "function": {"name": c.name, "arguments": "".join(c.arguments)}}
            for _, c in sorted(self._calls.items())
        ]
        if self._legacy and calls:
            message["function_call"] = calls[0]["function"]
        elif calls:
            message["tool_calls"] = calls
        body = {
            "id": self._id,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish}],
            "usage": self._usage,
        }
        return self._adapter.parse(200, self._headers, orjson.dumps(body))
