"""A `RouteResponse` becomes an OpenAI `chat.completion`, or the error body of its failure.

    id                  the request id (so the bill and the feedback name the same id)
    model               the catalog model that answered
    choices[0]          the answer: message.content, message.tool_calls (when the model
                        called tools; content is then null unless it also wrote text),
                        finish_reason
    usage               prompt_tokens (with cached ones), completion_tokens, total_tokens
    tierline            what OpenAI's format has no field for: tier, cost_usd (a decimal
                        string, every billed attempt), reasons, provider, attempts,
                        latency_ms, cached (answered from the response cache),
                        trimmed_messages (left out of the history to fit the window)

An error answer carries the same `tierline` object beside `error`: a failed request
may still have billed attempts.
"""

from __future__ import annotations

import time
from typing import Any

from tierline.processors.gateway.statuses import GatewayError, from_pipeline
from tierline.schemas import ErrorInfo, ErrorType, RouteResponse


def tierline_extension(response: RouteResponse) -> dict[str, Any]:
    """The fields of tierline's own answer that OpenAI's format has no place for."""
    decision = response.decision
    return {
        "tier": None if response.tier is None else str(response.tier),
        "cost_usd": format(response.cost_usd, "f"),
        "reasons": list(decision.reasons) if decision is not None else [],
        "task": decision.task if decision is not None else None,
        "provider": response.provider,
        "attempts": response.attempts,
        "latency_ms": response.latency_ms,
        "cached": response.cached,
        "trimmed_messages": response.trimmed_messages,
    }


def chat_completion(response: RouteResponse) -> dict[str, Any]:
    """The OpenAI `chat.completion` of an answered (`status` ok) request."""
    created = response.created_at.timestamp() if response.created_at else time.time()
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.content,
        "refusal": None,
    }
    if response.tool_calls:
        message["content"] = response.content or None
        message["tool_calls"] = [
            call.model_dump(mode="json", exclude_none=True) for call in response.tool_calls
        ]
    return {
        "id": response.id,
        "object": "chat.completion",
        "created": int(created),
        "model": response.model or "",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": response.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_of(response),
        "system_fingerprint": None,
        "tierline": tierline_extension(response),
    }


def usage_of(response: RouteResponse) -> dict[str, Any]:
    """OpenAI's `usage` object of an answer."""
    usage = response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def answer(response: RouteResponse) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers of the HTTP answer to `response`."""
    if response.status == "ok":
        return 200, chat_completion(response), {}
    error = response.error or ErrorInfo(type=ErrorType.INTERNAL, message="error without a type")
    failure: GatewayError = from_pipeline(error)
    return (
        failure.status,
        failure.body() | {"tierline": tierline_extension(response)},
        (failure.headers()),
    )
