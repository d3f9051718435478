"""Gemini `generateContent` streamed: `POST .../models/{id}:streamGenerateContent?alt=sse`.

The body is the adapter's, unchanged; the method and `alt=sse` ask for the
stream (https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent,
https://ai.google.dev/gemini-api/docs/text-generation#streaming-responses). Without
`alt=sse` Gemini streams one JSON array of responses instead, which tierline
does not ask for.

Reply: server-sent events without `event:` names (lines end in `\r\n`), each
`data:` a whole `GenerateContentResponse`: `candidates[0].content.parts` holds
this chunk's parts (text pieces to be joined; `thought` parts, which are no
answer; `functionCall` parts, each whole in one chunk, with its
`thoughtSignature`); `usageMetadata` comes with every chunk, the last one's
counting; `responseId` and `modelVersion` are repeated. The last response has
the candidate's `finishReason`; a prompt blocked outright is one response with
`promptFeedback.blockReason` and no candidates. There is no end marker: a stream
that ends without a `finishReason` (or a block reason) was cut. An error
mid-stream is a `data: {"error": {"code", "message", "status"}}` event, typed by
the adapter as that body with the HTTP status its `code` gives.

A function call's id is the one Gemini gives, else `call_<responseId>_<n>`, as
the adapter names it, so the deltas' ids are `finish()`'s. `finish()` merges every
chunk's parts into one candidate, with the last `finishReason` and
`usageMetadata`, and hands that response to the adapter's `parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import HttpCall, ProviderReply
from tierline.processors.providers.gemini import GeminiAdapter, fallback_call_id
from tierline.processors.providers.payload import invalid_response
from tierline.processors.providers.streaming.base import (
    SseEvent,
    StreamDelta,
    ToolCallDelta,
    cut_short,
    event_object,
)
from tierline.processors.providers.tool_calls import arguments_text
from tierline.schemas import RouteRequest

UNARY = ":generateContent"
STREAMED = ":streamGenerateContent?alt=sse"


def streaming_call(
    adapter: GeminiAdapter, model: ModelSpec, request: RouteRequest, api_key: str | None
) -> HttpCall:
    """`adapter.build()`'s call, sent to the streaming method."""
    call = adapter.build(model, request, api_key)
    if not call.url.endswith(UNARY):
        raise ValueError(f"not a generateContent URL: {call.url}")
    url = call.url.removesuffix(UNARY) + STREAMED
    return HttpCall(url, {**call.headers, "accept": "text/event-stream"}, call.body)


class GeminiStreamParser:
    """One streamed generateContent's events, in order, to deltas and the whole reply."""

    def __init__(self, adapter: GeminiAdapter, headers: Mapping[str, str] | None = None) -> None:
        self._adapter = adapter
        self._headers: Mapping[str, str] = headers or {}
        self._parts: list[Any] = []
        self._calls = 0
        self._candidate = False
        self._finish: Any = None
        self._top: dict[str, Any] = {}  # the last usageMetadata, responseId, ...

    def feed(self, event: SseEvent) -> list[StreamDelta]:
        data = event_object(event, "Gemini stream response")
        if "error" in data and "candidates" not in data:
            error = data["error"]
            code = error.get("code") if isinstance(error, dict) else None
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            # the adapter types an error body with its status: parse raises it
            self._adapter.parse(status, self._headers, event.data.encode())
            raise invalid_response("Gemini error event", ValueError(event.data), status)
        for key in _TOP_LEVEL:
            if data.get(key) is not None:
                self._top[key] = data[key]
        candidates = data.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if not isinstance(candidate, dict):
            return []
        self._candidate = True
        if candidate.get("finishReason") is not None:
            self._finish = candidate["finishReason"]
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        deltas: list[StreamDelta] = []
        for part in parts if isinstance(parts, list) else []:
            self._parts.append(part)
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str) and text and not part.get("thought"):
                deltas.append(StreamDelta(text))
            call = part.get("functionCall")
            if isinstance(call, dict):
                deltas.append(StreamDelta(tool_calls=(self._call(call),)))
        return deltas

    def _call(self, call: dict[str, Any]) -> ToolCallDelta:
        n, self._calls = self._calls, self._calls + 1
        given = call.get("id")
        response_id = self._top.get("responseId")
        response_id = response_id if isinstance(response_id, str) else None
        call_id = given if isinstance(given, str) and given else fallback_call_id(response_id, n)
        name = call.get("name")
        arguments = arguments_text(call.get("args"))
        return ToolCallDelta(n, call_id, name if isinstance(name, str) else None, arguments)

    def finish(self) -> ProviderReply:
        feedback = self._top.get("promptFeedback")
        blocked = isinstance(feedback, dict) and feedback.get("blockReason")
        if self._finish is None and not blocked:
            raise cut_short("its finishReason")
        body: dict[str, Any] = {"candidates": []}
        if self._candidate:
            candidate: dict[str, Any] = {"content": {"parts": self._parts, "role": "model"}}
            if self._finish is not None:
                candidate["finishReason"] = self._finish
            body["candidates"] = [candidate]
        return self._adapter.parse(200, self._headers, orjson.dumps(body | self._top))


#: the response fields kept from the last chunk that has them
_TOP_LEVEL = ("usageMetadata", "responseId", "promptFeedback", "modelVersion")
