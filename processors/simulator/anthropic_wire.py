"""The Anthropic Messages wire format: `POST /v1/messages`.

Parses a request the way the real API reads it and renders the real shapes:

* auth: `x-api-key` (none -> 401 "x-api-key header is required", a key in the
  profile's `invalid_api_keys` -> 401 "invalid x-api-key") and the required
  `anthropic-version` header (none -> 400);
* errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
  with the documented types: 400 `invalid_request_error` (missing `model`,
  `messages` or `max_tokens`; "prompt is too long: N tokens > M maximum"),
  401 `authentication_error`, 403 `permission_error`, 404 `not_found_error`,
  413 `request_too_large`, 429 `rate_limit_error`, 500 `api_error`, 504
  `timeout_error`, 529 `overloaded_error`;
* success: a `message` object with `content: [{"type": "text", "text"}]`,
  `stop_reason` `end_turn` | `max_tokens` | `refusal`, `stop_sequence: null`;
* usage: `input_tokens` counts only the prompt tokens that were neither read
  from nor written to the cache, as the real API reports it; the total prompt is
  `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`, and
  `cache_creation` splits the writes by TTL (`ephemeral_5m_input_tokens`,
  `ephemeral_1h_input_tokens`: 1-hour when a marker asks for `"ttl": "1h"`).
  Caching applies only when the request marks a block (system, message or tool)
  or the request itself with `cache_control`, as with the real API;
* headers: `request-id`, `anthropic-organization-id`; a model with a limit
  (`rpm_limit`, `tpm_limit`) adds `anthropic-ratelimit-requests-{limit,remaining,reset}`
  and `anthropic-ratelimit-tokens-{limit,remaining,reset}` for each budget it
  has (reset as an RFC 3339 timestamp, rounded up to the second; the simulator
  enforces one combined token budget, so the input-/output-tokens split is not
  sent); a 429 carries `retry-after` in seconds.

Structured output (`output_format` / `output_config.format` of type
`json_schema`) makes the text a JSON document.

Streaming (`stream: true`): server-sent events named as their `type`, in the order
https://platform.claude.com/docs/en/build-with-claude/streaming gives:
`message_start` (the message with empty `content` and the usage: the input
tokens with the cache fields, `output_tokens: 1`), then per content block a
`content_block_start` (a `text` block with `text: ""`, a `tool_use` block with
`input: {}`), its `content_block_delta`s (`text_delta` pieces; `input_json_delta`
`partial_json` fragments of the input's JSON) and a `content_block_stop`; a
`ping` after the first block starts; `message_delta` (`delta.stop_reason`,
`usage.output_tokens`), `message_stop`. A cut stream sends its first content
chunk, then an `error` event (`{"type": "error", "error": {"type":
"overloaded_error", "message": "Overloaded"}}`), as the API does when it is
overloaded mid-stream.

Tools (`tool_use` decides when they are called): `tools` (`name`, `description`,
`input_schema`, both name and schema required), `tool_choice` (`auto`, `any`,
`tool` with `name`, `none`; `disable_parallel_tool_use`); a call is answered as
`tool_use` blocks (`id` "toolu_...", `name`, `input`) with `stop_reason: tool_use`.
As the real API, every `tool_use` block of an assistant turn must get its
`tool_result` in the next message, and a `tool_result` must answer a `tool_use` of
the message before it (400 otherwise).
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.limits import Admission, Breach
from tierline.processors.simulator.replies import Reply, format_retry_after
from tierline.processors.simulator.request import SimRequest
from tierline.processors.simulator.tool_use import SimTool, ToolAsk
from tierline.processors.simulator.wire import (
    PromptTally,
    StreamAsk,
    WireFormat,
    paced,
    pieces,
    positive_int,
    sse,
)

__all__ = ["AnthropicWire"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}
_ORGANIZATION = "00000000-0000-4000-8000-000000000000"
_REQUESTS_LIMIT = 4_000
"""The RPM a drawn or forced 429 names (a model without an enforced limit)."""


def _rfc3339(epoch: float) -> str:
    """A whole-second UTC timestamp, rounded up so a reset is never announced early."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(epoch)))


def _blocks_text(content: Any, markers: list[Any]) -> str:
    """The text of a content value (string or block list); its blocks' `cache_control`
    values are added to `markers`."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if "cache_control" in block:
            markers.append(block["cache_control"])
        text = block.get("text")
        if isinstance(text, str):
            texts.append(text)
        elif block.get("type") == "tool_result":
            texts.append(_blocks_text(block.get("content"), markers))
    return " ".join(texts)


def _blocks(content: Any) -> list[dict[str, Any]]:
    """A message's content blocks (none for string content)."""
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _cache_ttl(markers: list[Any]) -> str:
    """`1h` when a cache marker asks for the 1-hour cache, else the default `5m`."""
    return "1h" if any(isinstance(m, dict) and m.get("ttl") == "1h" for m in markers) else "5m"


class AnthropicWire(WireFormat):
    """Renders and parses Anthropic Messages."""

    name = "anthropic"
    explicit_cache = True
    error_statuses = (500, 529)
    error_messages = _ERROR_MESSAGES
    server_error_text = "Internal server error"
    client_error_text = "Simulated error (HTTP {status})"

    # ------------------------------------------------------------------ plumbing

    def _headers(self, rid: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "request-id": f"req_sim{rid[:24]}",
            "anthropic-organization-id": _ORGANIZATION,
        }

    def limit_headers(self, admission: Admission, reset_s: float) -> dict[str, str]:
        reset = _rfc3339(time.time() + reset_s)
        h: dict[str, str] = {}
        if admission.requests_limit is not None:
            h["anthropic-ratelimit-requests-limit"] = str(admission.requests_limit)
            h["anthropic-ratelimit-requests-remaining"] = str(admission.requests_remaining)
            h["anthropic-ratelimit-requests-reset"] = reset
        if admission.tokens_limit is not None:
            h["anthropic-ratelimit-tokens-limit"] = str(admission.tokens_limit)
            h["anthropic-ratelimit-tokens-remaining"] = str(admission.tokens_remaining)
            h["anthropic-ratelimit-tokens-reset"] = reset
        return h

    def _error(
        self, status: int, rid: str, message: str, *, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": f"req_sim{rid[:24]}",
        }
        return self._json(status, body, rid, headers)

    # ------------------------------------------------------------------ requests

    def _auth_error(
        self, request: web.Request, invalid_keys: frozenset[str], rid: str
    ) -> web.Response | None:
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            return self._error(401, rid, "x-api-key header is required")
        if key in invalid_keys:
            return self._error(401, rid, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, rid, "anthropic-version: header is required")
        return None

    def _bad_json(self, rid: str) -> web.Response:
        return self._error(400, rid, "There was an error parsing the body of your request.")

    def _not_an_object(self, rid: str) -> web.Response:
        return self._error(400, rid, "Input should be a valid dictionary")

    def _parse(self, body: dict[str, Any], path_model: str, rid: str) -> SimRequest | web.Response:
        for required in ("model", "messages", "max_tokens"):
            if required not in body:
                return self._error(400, rid, f"{required}: Field required")
        model = body["model"]
        if not isinstance(model, str) or not model:
            return self._error(400, rid, "model: Input should be a valid string")
        max_tokens = body["max_tokens"]
        if not positive_int(max_tokens):
            return self._error(400, rid, "max_tokens: Input should be greater than or equal to 1")
        messages = body["messages"]
        if not isinstance(messages, list):
            return self._error(400, rid, "messages: Input should be a valid list")
        if not messages:
            return self._error(400, rid, "messages: at least one message is required")
        tally = PromptTally()
        markers: list[Any] = []
        tools = body.get("tools")
        if isinstance(tools, list):
            markers += [
                t["cache_control"] for t in tools if isinstance(t, dict) and "cache_control" in t
            ]
        asked = self._tool_ask(body, tally, rid)
        if isinstance(asked, web.Response):
            return asked
        tally.system(_blocks_text(body.get("system"), markers))
        pending: list[str] = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                return self._error(400, rid, f"messages.{i}: Input should be a valid dictionary")
            role = m.get("role")
            if role not in ("user", "assistant"):
                return self._error(
                    400, rid, f"messages.{i}.role: Input should be 'user' or 'assistant'"
                )
            if "content" not in m:
                return self._error(400, rid, f"messages.{i}.content: Field required")
            refused = self._tool_blocks(m, i, pending, tally, rid)
            if refused is not None:
                return refused
            results = any(b.get("type") == "tool_result" for b in _blocks(m["content"]))
            tally.message(_blocks_text(m["content"], markers), user=role == "user", results=results)
        if pending:
            return self._results_missing(pending, len(messages) - 1, rid)
        if "cache_control" in body:  # automatic caching: a marker on the last block
            markers.append(body["cache_control"])
        schema: dict[str, Any] | None = None
        wants_json = False
        fmt = body.get("output_format")
        if fmt is None and isinstance(body.get("output_config"), dict):
            fmt = body["output_config"].get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            wants_json = True
            if isinstance(fmt.get("schema"), dict):
                schema = fmt["schema"]
        return tally.request(
            model,
            max_tokens,
            wants_json=wants_json,
            json_schema=schema,
            cache_marked=bool(markers),
            cache_ttl=_cache_ttl(markers),
            tools=asked,
        )

    def _tool_ask(
        self, body: dict[str, Any], tally: PromptTally, rid: str
    ) -> ToolAsk | None | web.Response:
        """The request's tools and tool choice, or the 400 the real API answers."""
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return None
        offered: list[SimTool] = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                return self._error(400, rid, f"tools.{i}.custom.name: Field required")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                return self._error(400, rid, f"tools.{i}.custom.input_schema: Field required")
            offered.append(SimTool(tool["name"], schema))
            tally.tools(len(orjson.dumps(tool)))
        choice = body.get("tool_choice")
        ask = ToolAsk(tools=tuple(offered))
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind in ("auto", "any", "tool", "none"):
                ask.choice = kind
            ask.forced = choice.get("name") if kind == "tool" else None
            ask.parallel = choice.get("disable_parallel_tool_use") is not True
        return ask

    def _tool_blocks(
        self, m: dict[str, Any], i: int, pending: list[str], tally: PromptTally, rid: str
    ) -> web.Response | None:
        """Message `i`'s `tool_result`s answer the `tool_use`s of message `i - 1`, all of them."""
        blocks = _blocks(m["content"])
        answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        strays = [str(a) for a in answered if a not in pending]
        if strays:
            return self._error(
                400,
                rid,
                f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {', '.join(strays)}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message.",
            )
        missing = [p for p in pending if p not in answered]
        if missing:
            return self._results_missing(missing, i - 1, rid)
        pending.clear()
        for block in blocks:
            if block.get("type") == "tool_use" and m.get("role") == "assistant":
                pending.append(str(block.get("id")))
                tally.tools(len(str(block.get("name"))) + len(orjson.dumps(block.get("input"))))
        return None

    def _results_missing(self, ids: list[str], i: int, rid: str) -> web.Response:
        return self._error(
            400,
            rid,
            f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(ids)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message.",
        )

    # ------------------------------------------------------------------ answers

    def unknown_model(self, model: str, rid: str) -> web.Response:
        return self._error(404, rid, f"model: {model}")

    def context_exceeded(self, req: SimRequest, tokens: int, window: int, rid: str) -> web.Response:
        return self._error(400, rid, f"prompt is too long: {tokens} tokens > {window} maximum")

    def rate_limited(
        self, model: str, retry_after_s: float, rid: str, *, breach: Breach | None = None
    ) -> web.Response:
        if breach is None:
            limit, unit = _REQUESTS_LIMIT, "requests"
        else:
            limit, unit = breach.limit, breach.kind
        return self._error(
            429,
            rid,
            "This request would exceed the rate limit for your organization "
            f"({_ORGANIZATION}) of {limit:,} {unit} per minute. For "
            "details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the "
            "response headers for current usage. Please reduce the prompt length or the "
            "maximum tokens requested, or try again later.",
            headers={"retry-after": format_retry_after(retry_after_s)},
        )

    def success(self, req: SimRequest, reply: Reply, rid: str, latency_ms: int) -> web.Response:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        for n, call in enumerate(reply.tool_calls):
            block = {"type": "tool_use", "id": _tool_use_id(rid, n), "name": call.name}
            content.append(block | {"input": call.arguments})
        body = {
            "id": _message_id(rid),
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": content,
            "stop_reason": _stop_reason(reply),
            "stop_sequence": None,
            "usage": _usage(req, reply),
        }
        return self._json(200, body, rid)

    def stream_writes(
        self, req: SimRequest, reply: Reply, rid: str, ask: StreamAsk, chunk_chars: int
    ) -> list[bytes]:
        start: dict[str, Any] = {
            "id": _message_id(rid),
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(req, reply) | {"output_tokens": 1},
        }
        opening = _event({"type": "message_start", "message": start})
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if reply.text:
            texts = [{"type": "text_delta", "text": p} for p in pieces(reply.text, chunk_chars)]
            blocks.append(({"type": "text", "text": ""}, texts))
        for n, call in enumerate(reply.tool_calls):
            block = {"type": "tool_use", "id": _tool_use_id(rid, n), "name": call.name, "input": {}}
            arguments = orjson.dumps(call.arguments).decode()
            fragments = [
                {"type": "input_json_delta", "partial_json": p}
                for p in pieces(arguments, chunk_chars)
            ]
            blocks.append((block, fragments))
        contents: list[bytes] = []
        pending = b""  # events written with the next content chunk
        for index, (block, deltas) in enumerate(blocks):
            pending += _event(
                {"type": "content_block_start", "index": index, "content_block": block}
            )
            if index == 0:
                pending += _PING
            for delta in deltas:
                contents.append(
                    pending
                    + _event({"type": "content_block_delta", "index": index, "delta": delta})
                )
                pending = b""
            pending += _event({"type": "content_block_stop", "index": index})
        if not blocks:
            opening += _PING
        closing = pending + _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
        closing += _event({"type": "message_stop"})
        return paced(opening, contents, closing)

    def stream_cut_tail(self, rid: str) -> bytes:
        return _event(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )


_PING = sse(b'{"type": "ping"}', "ping")


def _event(body: dict[str, Any]) -> bytes:
    """One server-sent event, named as its `type` (as the API names them)."""
    return sse(orjson.dumps(body), body["type"])


def _message_id(rid: str) -> str:
    return f"msg_sim{rid[:24]}"


def _tool_use_id(rid: str, n: int) -> str:
    return f"toolu_sim{rid[:16]}{n:02d}"


def _stop_reason(reply: Reply) -> str:
    if reply.tool_calls:
        return "tool_use"
    if reply.finish == "stop":
        return "end_turn"
    if reply.finish == "length":
        return "max_tokens"
    return "refusal"


def _usage(req: SimRequest, reply: Reply) -> dict[str, Any]:
    uncached = reply.input_tokens - reply.cache_read_tokens - reply.cache_write_tokens
    one_hour = reply.cache_write_tokens if req.cache_ttl == "1h" else 0
    return {
        "input_tokens": max(0, uncached),
        "cache_creation_input_tokens": reply.cache_write_tokens,
        "cache_read_input_tokens": reply.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": reply.cache_write_tokens - one_hour,
            "ephemeral_1h_input_tokens": one_hour,
        },
        "output_tokens": reply.output_tokens,
        "service_tier": "standard",
    }
