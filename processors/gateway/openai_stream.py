"""A streamed answer as OpenAI's server-sent events: `chat.completion.chunk`s, then `[DONE]`.

    data: {"object": "chat.completion.chunk", "choices": [{"delta": {"role": "assistant",
           "content": ""}}], ...}                      first, once the answer starts
    data: {... "delta": {"content": "Hel"} ...}        one per `ResponseChunk`
    data: {... "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
           "function": {"name": "f", "arguments": ""}}]} ...}
    data: {... "delta": {}, "finish_reason": "stop", "tierline": {...}}   from the response
    data: {"choices": [], "usage": {...}}              with stream_options.include_usage
    data: [DONE]

An answer that came whole (from the cache, a batch, or a model that does not stream)
is one content chunk. An answer that failed once chunks were out ends with an
`error` event (`data: {"error": {...}}`, which OpenAI's SDKs raise) and no `[DONE]`;
one that failed before any went out is an ordinary JSON error answer, with its status
(https://platform.openai.com/docs/api-reference/chat/streaming).
"""

from __future__ import annotations

from typing import Any

import orjson

from tierline.processors.gateway.openai_response import tierline_extension, usage_of
from tierline.schemas import ResponseChunk, RouteResponse

DONE = b"data: [DONE]\n\n"


def event(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


class ChunkWriter:
    """The chunk objects of one streamed answer, sharing its id, creation time and model."""

    def __init__(self, request_id: str, created: int, include_usage: bool) -> None:
        self.request_id = request_id
        self.created = created
        self.include_usage = include_usage
        self.model = ""
        self.pieces = 0

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def opening(self, model: str) -> dict[str, Any]:
        """The first chunk: the assistant's role, no content yet."""
        self.model = model
        return self._chunk({"role": "assistant", "content": ""})

    def piece(self, chunk: ResponseChunk) -> dict[str, Any]:
        """A `ResponseChunk` as the next chunk."""
        self.pieces += 1
        delta: dict[str, Any] = {}
        if chunk.delta:
            delta["content"] = chunk.delta
        if chunk.tool_calls:
            delta["tool_calls"] = [
                _tool_piece(t.index, t.id, t.name, t.arguments) for t in chunk.tool_calls
            ]
        return self._chunk(delta)

    def whole(self, response: RouteResponse) -> list[dict[str, Any]]:
        """An answer that came whole, as the chunks it would have streamed as."""
        chunks = []
        if response.content:
            chunks.append(self._chunk({"content": response.content}))
        for index, call in enumerate(response.tool_calls or ()):
            piece = _tool_piece(index, call.id, call.function.name, call.function.arguments)
            chunks.append(self._chunk({"tool_calls": [piece]}))
        self.pieces += len(chunks)
        return chunks

    def closing(self, response: RouteResponse) -> list[dict[str, Any]]:
        """The finishing chunk (with tierline's extension), and the usage chunk if asked."""
        last = self._chunk({}, response.finish_reason or "stop")
        last["tierline"] = tierline_extension(response)
        chunks = [last]
        if self.include_usage:
            chunks.append(
                {
                    "id": self.request_id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": usage_of(response),
                }
            )
        return chunks


def _tool_piece(
    index: int, call_id: str | None, name: str | None, arguments: str
) -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index}
    if call_id is not None:
        piece["id"] = call_id
        piece["type"] = "function"
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    piece["function"] = function
    return piece
