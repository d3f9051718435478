"""OpenAI Chat Completions, and the OpenAI-compatible family through it.

`POST {api_base}/chat/completions` with `Authorization: Bearer <key>`. Our
request is already in OpenAI's chat format, so `build` mostly copies it; the
`Dialect` of the family (see `processors.providers.compat`, which tabulates
every member's quirks) decides the few fields that differ: the max-tokens
field, whether `json_schema` output is accepted, the `developer` role, extra
body fields and headers, and where usage reports cached-read and cache-write
tokens.

The reply's `choices[0].message.content` (a string, or a list of parts whose
`text` parts are joined) is the answer; `usage.prompt_tokens` counts the whole
prompt, the parts read from (`prompt_tokens_details.cached_tokens`) and written
to (`cache_write_tokens`, GPT-5.6 and later) the prompt cache included;
`completion_tokens` includes reasoning tokens.

Tools are OpenAI's shape already (`schemas.tools`): `tools`, `tool_choice` and
`parallel_tool_calls` are sent as the request has them (the last one only with
tools, and never to the o-series, which refuse it), assistant turns keep their
`tool_calls` (less any other provider's `extra_content`), and `tool` messages
their `tool_call_id`. The reply's `message.tool_calls` are the answer's calls;
a legacy `message.function_call` is read as one call. A member that returns a
call's `arguments` as an object (not OpenAI's JSON string) has it written as
JSON text, and a call without an id gets `call_<n>`
(https://platform.openai.com/docs/api-reference/chat/create,
https://platform.openai.com/docs/guides/function-calling).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import HttpCall, ProviderReply, normalized
from tierline.processors.providers.compat import DIALECTS, Dialect
from tierline.processors.providers.http_errors import error_for_status
from tierline.processors.providers.payload import (
    MALFORMED,
    error_fields,
    first_count,
    invalid_response,
    json_object,
    tokens,
)
from tierline.processors.providers.tool_calls import call_from, nine_char_id
from tierline.schemas import ErrorType, RouteRequest, ToolCall, Usage
from tierline.schemas.response import FinishReason

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",  # Together
    "length": "length",
    "model_length": "length",  # Mistral: the model's context ran out
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "error": "error",  # Mistral, OpenRouter
}
#: finish reasons that mean "the provider ran out of capacity mid-answer": retry
OVERLOADED_REASONS = frozenset({"insufficient_system_resource"})  # DeepSeek

#: OpenAI reasoning models: they reject temperature, top_p and stop
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)(?!.*-chat)")
#: the o-series refuse `parallel_tool_calls`
NO_PARALLEL_SWITCH = re.compile(r"^o\d")


class OpenAIAdapter:
    def __init__(self, dialect: Dialect | None = None) -> None:
        self.dialect = dialect or DIALECTS["openai"]
        self.family = self.dialect.family

    def build(self, model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall:
        dialect = self.dialect
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        for m in messages:
            if m["role"] == "developer" and not dialect.developer_role:
                m["role"] = "system"
            if isinstance(m.get("content"), list) and not dialect.cache_control:
                m["content"] = [
                    {k: v for k, v in part.items() if k != "cache_control"} for part in m["content"]
                ]
            for call in m.get("tool_calls") or ():
                call.pop("extra_content", None)  # another provider's state (Gemini's)
                if dialect.nine_char_tool_ids:
                    call["id"] = nine_char_id(call["id"])
            if dialect.nine_char_tool_ids and "tool_call_id" in m:
                m["tool_call_id"] = nine_char_id(m["tool_call_id"])
        body: dict[str, Any] = {"model": model.model_id, "messages": messages}
        params = request.params
        sampling = not (dialect.reasoning_models and REASONING_MODEL.match(model.model_id))
        if params.max_tokens is not None:
            body[dialect.max_tokens_field] = params.max_tokens
        if sampling and params.temperature is not None:
            body["temperature"] = params.temperature
        if sampling and params.top_p is not None:
            body["top_p"] = params.top_p
        if sampling and params.stop is not None:
            body["stop"] = params.stop
        if params.response_format is not None:
            body["response_format"] = self._response_format(params.response_format)
        if params.tools:
            body["tools"] = [t.model_dump(exclude_none=True) for t in params.tools]
            if params.tool_choice is not None:
                choice = params.tool_choice
                body["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump()
            if params.parallel_tool_calls is not None and not (
                dialect.reasoning_models and NO_PARALLEL_SWITCH.match(model.model_id)
            ):
                body["parallel_tool_calls"] = params.parallel_tool_calls
        body.update(dialect.extra_body)
        headers = {"content-type": "application/json", **dialect.extra_headers}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return HttpCall(f"{model.api_base}/chat/completions", headers, orjson.dumps(body))

    def _response_format(self, fmt: dict[str, Any]) -> dict[str, Any]:
        if fmt.get("type") == "json_schema" and not self.dialect.json_schema:
            return {"type": "json_object"}
        return fmt

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderReply:
        if status >= 300:
            text, code, _ = error_fields(body)
            raise error_for_status(
                status, headers, text, code=code, retry_after_s=_retry_after_ms(headers)
            )
        try:
            data = json_object(body)
            if "choices" not in data and "error" in data:  # OpenRouter: an error in a 200
                raise _embedded_error(body, headers)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            content = content_text(message.get("content"))
            calls = _tool_calls(message)
            raw_reason = str(choice.get("finish_reason"))
            usage = self._usage(data["usage"])
            request_id = headers.get("x-request-id") or _str_or_none(data.get("id"))
        except MALFORMED as exc:
            raise invalid_response("chat completion", exc, status) from None
        if raw_reason in OVERLOADED_REASONS:
            raise ProviderError(
                ErrorType.OVERLOADED, f"{self.family}: finish_reason={raw_reason}", status=status
            )
        reason = FINISH_REASONS.get(raw_reason, "stop")
        if not content and not calls and message.get("refusal"):
            reason = "content_filter"
        return normalized(content, reason, usage, request_id, status=status, tool_calls=calls)

    def _usage(self, usage: dict[str, Any]) -> Usage:
        dialect = self.dialect
        cached = first_count(usage, dialect.cached_read)
        written = first_count(usage, dialect.cache_write)
        prompt = usage.get("prompt_tokens")
        if prompt is None and "prompt_cache_miss_tokens" in usage:  # DeepSeek: hit + miss
            prompt = tokens(usage["prompt_cache_miss_tokens"]) + cached
        return Usage(
            input_tokens=tokens(prompt),
            cached_input_tokens=cached,
            cache_write_tokens=written,
            output_tokens=tokens(usage.get("completion_tokens")),
        )


def content_text(content: Any) -> str:
    """A message's content: a string, or the `text` parts of a part list, joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    raise TypeError(f"message content is a {type(content).__name__}")


def _tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    """`message.tool_calls` (or a legacy `function_call`) as normalized calls."""
    raw = message.get("tool_calls") or []
    if not isinstance(raw, list):
        raise TypeError("message.tool_calls is not a list")
    legacy = message.get("function_call")
    if not raw and isinstance(legacy, dict):
        raw = [{"id": "call_0", "function": legacy}]
    calls = []
    for n, call in enumerate(raw):
        function = call["function"]
        call_id = call.get("id")
        calls.append(
            call_from(
                call_id if isinstance(call_id, str) and call_id else f"call_{n}",
                function.get("name"),
                function.get("arguments"),
            )
        )
    return tuple(calls)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _retry_after_ms(headers: Mapping[str, str]) -> float | None:
    """OpenAI's `retry-after-ms`, more precise than `retry-after` when both are sent."""
    raw = headers.get("retry-after-ms")
    try:
        return float(raw) / 1000 if raw else None
    except ValueError:
        return None


def _embedded_error(body: bytes, headers: Mapping[str, str]) -> ProviderError:
    message, code, obj = error_fields(body)
    status = obj.get("code")
    status = status if isinstance(status, int) and 400 <= status <= 599 else 502
    return error_for_status(status, headers, message, code=code)
