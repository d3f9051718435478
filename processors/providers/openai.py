"""OpenAI Chat Completions: `POST {api_base}/chat/completions`, Bearer key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from processors.catalog import ModelSpec
from processors.errors import ProviderError
from processors.providers.base import HttpCall, ProviderReply
from processors.providers.http_errors import error_for_status
from schemas import ErrorType, RouteRequest, Usage
from schemas.response import FinishReason

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class OpenAIAdapter:
    family = "openai"

    def build(self, model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall:
        body: dict[str, Any] = {
            "model": model.model_id,
            "messages": [m.model_dump(exclude_none=True) for m in request.messages],
        }
        params = request.params
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop is not None:
            body["stop"] = params.stop
        if params.response_format is not None:
            body["response_format"] = params.response_format
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return HttpCall(f"{model.api_base}/chat/completions", headers, orjson.dumps(body))

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderReply:
        if status >= 300:
            error = _error_object(body)
            raise error_for_status(
                status, headers, str(error.get("message", "")), code=str(error.get("code") or "")
            )
        try:
            data = orjson.loads(body)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            content = message.get("content")
            reason = FINISH_REASONS.get(str(choice.get("finish_reason")), "stop")
            usage = data.get("usage") or {}
            details = usage.get("prompt_tokens_details") or {}
            normalized = Usage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                cached_input_tokens=int(details.get("cached_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                ErrorType.INVALID_RESPONSE,
                f"unparseable chat completion: {exc!r}"[:300],
                status=status,
            ) from None
        if not content and reason != "tool_calls":
            if reason == "content_filter":
                raise ProviderError(ErrorType.CONTENT_FILTERED, "reply withheld by content filter")
            raise ProviderError(ErrorType.INVALID_RESPONSE, "empty completion", status=status)
        return ProviderReply(
            content=content or "",
            finish_reason=reason,
            usage=normalized,
            request_id=headers.get("x-request-id"),
        )


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"message": body[:200].decode(errors="replace")}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {"message": str(data)[:200]}
