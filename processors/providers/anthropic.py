"""Anthropic Messages: `POST {api_base}/v1/messages`, `x-api-key` and `anthropic-version`.

Request, from our OpenAI-format one:

* `system` / `developer` messages become the top-level `system` field (a
  string, or text blocks when a part carries `cache_control`);
* `user` / `assistant` turns keep their order; string content stays a string,
  part lists become content blocks (`text`, `image` from a `data:` URL as
  base64 or from a URL); an assistant's `tool_calls` become `tool_use` blocks
  (`input` the parsed arguments) after its text, and `tool` messages
  `tool_result` blocks (`tool_use_id` the call's id): consecutive results share
  one user turn, and a user message right after them joins that turn behind
  them, as Anthropic asks for parallel calls;
* `tools` become `{name, description, input_schema}` (a function without
  parameters gets an empty object schema); `tool_choice` `auto` -> `{"type":
  "auto"}`, `required` -> `{"type": "any"}`, a named function -> `{"type":
  "tool", "name"}`, `none` -> `{"type": "none"}`; `parallel_tool_calls: false`
  adds `disable_parallel_tool_use: true` to it (at most one call with `auto`,
  exactly one with `any`/`tool`);
* `max_tokens` is required: the request's, else the model's output limit capped
  at 8,192; `temperature` is clamped to Anthropic's 0..1 and `top_p` is sent
  only without a temperature (recent models refuse both); `stop` becomes
  `stop_sequences`;
* `response_format` `json_schema` becomes `output_config.format` (structured
  outputs); `json_object`, which Anthropic lacks, becomes a system instruction;
* prompt caching is the client's choice: a part's `cache_control` is passed on
  as `{"type": "ephemeral"}`, with its `ttl` when that is one Anthropic takes
  (`"5m"`, `"1h"`; the 1-hour cache costs more to write, and is billed so).

Reply: the `text` blocks joined; each `tool_use` block a tool call (its `id`,
`name`, and `input` as JSON text); `stop_reason` `end_turn`/`stop_sequence` ->
stop, `max_tokens`/`model_context_window_exceeded`/`pause_turn` -> length,
`tool_use` -> tool_calls, `refusal` -> content_filter. The request id is the
`request-id` header, else the message `id`.

Tool use: https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/handle-tool-calls,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/parallel-tool-use.

Usage: Anthropic's `input_tokens` counts only the prompt tokens that were neither
read from nor written to the cache, so the normalized input is `input_tokens +
cache_creation_input_tokens + cache_read_input_tokens`, of which the reads are
`cached_input_tokens` and the writes `cache_write_tokens`. The writes are split
by TTL in `cache_creation: {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}`
(older replies lack it: every write is then a 5-minute one); the 1-hour ones are
`cache_write_1h_tokens`. Anthropic documents `cache_creation_input_tokens` as the
sum of the two; should they disagree, the writes are the larger of the total and
the sum, 1-hour writes as reported and the rest 5-minute, so no write goes
unbilled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import HttpCall, ProviderReply, normalized
from tierline.processors.providers.http_errors import error_for_status
from tierline.processors.providers.parts import Part, parts_of
from tierline.processors.providers.payload import (
    MALFORMED,
    error_fields,
    invalid_response,
    json_object,
    tokens,
)
from tierline.processors.providers.tool_calls import arguments_of, call_from
from tierline.schemas import Params, RouteRequest, Usage
from tierline.schemas.messages import ChatMessage
from tierline.schemas.response import FinishReason
from tierline.schemas.tools import FunctionDefinition

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else."
#: the `cache_control.ttl` values Anthropic accepts
CACHE_TTLS = frozenset({"5m", "1h"})

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicAdapter:
    family = "anthropic"

    def build(self, model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall:
        system: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            if m.role in ("system", "developer"):
                system.extend(_block(p) for p in parts_of(m) if p.kind == "text" and p.text)
            else:
                turn = _turn(m)
                if turn is not None:
                    _append(messages, turn)
        params = request.params
        fmt = params.response_format or {}
        if fmt.get("type") == "json_object":
            system.append({"type": "text", "text": JSON_INSTRUCTION})
        if not messages:  # a system prompt alone: send it as the user's turn
            messages = [{"role": "user", "content": system or "."}]
            system = []
        body: dict[str, Any] = {
            "model": model.model_id,
            "max_tokens": params.max_tokens or _default_max_tokens(model),
            "messages": messages,
        }
        if system:
            plain = all("cache_control" not in b for b in system)
            body["system"] = "\n\n".join(b["text"] for b in system) if plain else system
        if params.temperature is not None:
            body["temperature"] = min(params.temperature, 1.0)
        elif params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop is not None:
            body["stop_sequences"] = [params.stop] if isinstance(params.stop, str) else params.stop
        schema = _json_schema(fmt)
        if schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        if params.tools:
            body["tools"] = [_tool(t.function) for t in params.tools]
            choice = _tool_choice(params)
            if choice is not None:
                body["tool_choice"] = choice
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return HttpCall(f"{model.api_base}/v1/messages", headers, orjson.dumps(body))

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderReply:
        if status >= 300:
            message, code, _ = error_fields(body)
            raise error_for_status(status, headers, message, code=code)
        try:
            data = json_object(body)
            if data.get("type") == "error":
                message, code, _ = error_fields(body)
                raise error_for_status(500, headers, message, code=code)
            blocks = data["content"]
            if not isinstance(blocks, list):
                raise TypeError("content is not a list of blocks")
            text = "".join(
                b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"
            )
            calls = tuple(
                call_from(b["id"], b["name"], b.get("input"))
                for b in blocks
                if isinstance(b, dict) and b.get("type") == "tool_use"
            )
            raw_reason = str(data.get("stop_reason"))
            usage = _usage(data["usage"])
            request_id = headers.get("request-id") or data.get("id")
        except MALFORMED as exc:
            raise invalid_response("Anthropic message", exc, status) from None
        reason = STOP_REASONS.get(raw_reason, "stop")
        return normalized(
            text,
            reason,
            usage,
            request_id if isinstance(request_id, str) else None,
            status=status,
            detail=f", stop_reason={raw_reason}",
            tool_calls=calls,
        )


def _usage(usage: dict[str, Any]) -> Usage:
    uncached = tokens(usage["input_tokens"])
    read = tokens(usage.get("cache_read_input_tokens"))
    by_ttl = usage.get("cache_creation") or {}
    if not isinstance(by_ttl, dict):
        raise TypeError("usage.cache_creation is not an object")
    five_minute = tokens(by_ttl.get("ephemeral_5m_input_tokens"))
    one_hour = tokens(by_ttl.get("ephemeral_1h_input_tokens"))
    written = max(tokens(usage.get("cache_creation_input_tokens")), five_minute + one_hour)
    return Usage(
        input_tokens=uncached + written + read,
        cached_input_tokens=read,
        cache_write_tokens=written,
        cache_write_1h_tokens=one_hour,
        output_tokens=tokens(usage["output_tokens"]),
    )


def _default_max_tokens(model: ModelSpec) -> int:
    return min(DEFAULT_MAX_TOKENS, model.max_output_tokens or DEFAULT_MAX_TOKENS)


def _json_schema(fmt: dict[str, Any]) -> dict[str, Any] | None:
    if fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {"type": "object"}


def _block(part: Part) -> dict[str, Any]:
    if part.kind == "image":
        if part.data:
            source: dict[str, Any] = {
                "type": "base64",
                "media_type": part.mime,
                "data": part.data,
            }
        else:
            source = {"type": "url", "url": part.url}
        block: dict[str, Any] = {"type": "image", "source": source}
    else:
        block = {"type": "text", "text": part.text}
    if part.cache_control is not None:
        block["cache_control"] = _cache_control(part.cache_control)
    return block


def _cache_control(asked: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's one cache type, with the client's TTL when it is one Anthropic takes."""
    ttl = asked.get("ttl")
    return {"type": "ephemeral", "ttl": ttl} if ttl in CACHE_TTLS else {"type": "ephemeral"}


def _tool(function: FunctionDefinition) -> dict[str, Any]:
    schema = dict(function.parameters or {"properties": {}})
    schema.setdefault("type", "object")
    tool: dict[str, Any] = {"name": function.name, "input_schema": schema}
    if function.description:
        tool["description"] = function.description
    return tool


def _tool_choice(params: Params) -> dict[str, Any] | None:
    """Anthropic's `tool_choice` for the request's, with `disable_parallel_tool_use`."""
    choice = params.tool_choice
    if choice == "none":
        return {"type": "none"}
    if choice is None or choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    else:
        out = {"type": "tool", "name": choice.function.name}
    if params.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # Anthropic's default is auto, with parallel calls
    return out


def _turn(m: ChatMessage) -> dict[str, Any] | None:
    if m.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id or ""}
        text = m.text()
        if text:
            result["content"] = text
        return {"role": "user", "content": [result]}
    parts = [p for p in parts_of(m) if p.kind == "image" or p.text]
    calls = m.tool_calls or []
    if isinstance(m.content, str) and m.content and not calls:
        return {"role": m.role, "content": m.content}
    blocks = [_block(p) for p in parts]
    for call in calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": arguments_of(call),
            }
        )
    return {"role": m.role, "content": blocks} if blocks else None


def _append(messages: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    """Add `turn`; a user turn right after tool results joins their turn, behind them."""
    last = messages[-1] if messages else None
    if last is not None and turn["role"] == "user" and _holds_tool_results(last):
        content = turn["content"]
        last["content"].extend(
            [{"type": "text", "text": content}] if isinstance(content, str) else content
        )
        return
    messages.append(turn)


def _holds_tool_results(turn: dict[str, Any]) -> bool:
    content = turn["content"]
    return (
        turn["role"] == "user"
        and isinstance(content, list)
        and bool(content)
        and content[0].get("type") == "tool_result"
    )
