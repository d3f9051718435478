"""Google Gemini `generateContent`: `POST {api_base}/v1beta/models/{model}:generateContent`.

Request, from our OpenAI-format one, with the key in `x-goog-api-key`:

* `system` / `developer` messages become `systemInstruction.parts[].text`;
* turns become `contents[]` with role `user` or `model` (for `assistant`) and
  `parts[]`: `{"text"}`, `{"inlineData": {mimeType, data}}` for a `data:` image
  URL, `{"fileData": {fileUri}}` for another URL; an assistant's `tool_calls`
  become `functionCall` parts and a `tool` message a user turn with a
  `functionResponse` part;
* `generationConfig`: `maxOutputTokens`, `temperature`, `topP`,
  `stopSequences`, and for JSON output `responseMimeType: application/json`
  with `responseJsonSchema` when the request gives a schema.

Reply: the text parts of `candidates[0].content.parts` (thought parts skipped)
joined; `finishReason` `STOP` -> stop, `MAX_TOKENS` -> length, the safety
family (`SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`,
`LANGUAGE`, `IMAGE_SAFETY`, ...) -> content_filter, `MALFORMED_FUNCTION_CALL`
and its kin -> an invalid response; a prompt blocked outright
(`promptFeedback.blockReason`, no candidates) is content_filtered. Usage from
`usageMetadata`: input = `promptTokenCount` (which includes
`cachedContentTokenCount`) + `toolUsePromptTokenCount`, cached-read =
`cachedContentTokenCount` (an implicit cache hit or an explicit cache's
content alike, billed at the model's cached price), output =
`candidatesTokenCount` + `thoughtsTokenCount` (thinking is billed as output);
Gemini bills no cache writes per request. The request id is `responseId`.

Errors are google.rpc `Status` objects; an `ErrorInfo` reason such as
`API_KEY_INVALID` (sent with HTTP 400) makes it an auth error, and a
`RetryInfo.retryDelay` ("2s") is the Retry-After of a 429.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import HttpCall, ProviderReply, normalized
from tierline.processors.providers.http_errors import error_for_status
from tierline.processors.providers.parts import Part, parts_of, tool_arguments, tool_name
from tierline.processors.providers.payload import (
    MALFORMED,
    error_fields,
    invalid_response,
    json_object,
    tokens,
)
from tierline.schemas import ErrorType, RouteRequest, Usage
from tierline.schemas.messages import ChatMessage
from tierline.schemas.response import FinishReason

FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}


class GeminiAdapter:
    family = "gemini"

    def build(self, model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall:
        system: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for m in request.messages:
            if m.role in ("system", "developer"):
                system.extend({"text": p.text} for p in parts_of(m) if p.kind == "text" and p.text)
            else:
                turn = _turn(m)
                if turn is not None:
                    contents.append(turn)
        if not contents:  # a system prompt alone: send it as the user's turn
            contents = [{"role": "user", "parts": system or [{"text": "."}]}]
            system = []
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        config = _generation_config(request)
        if config:
            body["generationConfig"] = config
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        model_id = model.model_id.removeprefix("models/")
        url = f"{model.api_base}/v1beta/models/{model_id}:generateContent"
        return HttpCall(url, headers, orjson.dumps(body))

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderReply:
        if status >= 300:
            raise _error(status, headers, body)
        try:
            data = json_object(body)
            usage = _usage(data["usageMetadata"])
            candidates = data.get("candidates") or []
            request_id = data.get("responseId")
            request_id = request_id if isinstance(request_id, str) else None
            if not candidates:
                block = (data.get("promptFeedback") or {}).get("blockReason")
                return normalized(
                    "",
                    "content_filter" if block else "stop",
                    usage,
                    request_id,
                    status=status,
                    detail=f", blockReason={block}" if block else ", no candidates",
                )
            candidate = candidates[0]
            parts = (candidate.get("content") or {}).get("parts") or []
            text = "".join(
                p["text"]
                for p in parts
                if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
            )
            calls = any(isinstance(p, dict) and "functionCall" in p for p in parts)
            raw_reason = str(candidate.get("finishReason"))
        except MALFORMED as exc:
            raise invalid_response("Gemini response", exc, status) from None
        reason = FINISH_REASONS.get(raw_reason, "stop")
        if reason == "error":
            raise ProviderError(
                ErrorType.INVALID_RESPONSE, f"Gemini finishReason={raw_reason}", status=status
            )
        if calls and reason == "stop":
            reason = "tool_calls"
        return normalized(
            text, reason, usage, request_id, status=status, detail=f", finishReason={raw_reason}"
        )


def _usage(meta: dict[str, Any]) -> Usage:
    cached = tokens(meta.get("cachedContentTokenCount"))
    prompt = tokens(meta.get("promptTokenCount")) + tokens(meta.get("toolUsePromptTokenCount"))
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=cached,
        output_tokens=tokens(meta.get("candidatesTokenCount"))
        + tokens(meta.get("thoughtsTokenCount")),
    )


def _error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    message, code, error = error_fields(body)
    details = error.get("details")
    reasons: list[str] = []
    delay: float | None = None
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("reason"), str):
            reasons.append(detail["reason"])
        if isinstance(detail.get("retryDelay"), str):
            delay = _seconds(detail["retryDelay"])
    return error_for_status(
        status, headers, message, code=" ".join([code, *reasons]).strip(), retry_after_s=delay
    )


def _seconds(duration: str) -> float | None:
    """A protobuf Duration in JSON ("2s", "0.5s") as seconds."""
    try:
        return float(duration.removesuffix("s"))
    except ValueError:
        return None


def _generation_config(request: RouteRequest) -> dict[str, Any]:
    params = request.params
    config: dict[str, Any] = {}
    if params.max_tokens is not None:
        config["maxOutputTokens"] = params.max_tokens
    if params.temperature is not None:
        config["temperature"] = params.temperature
    if params.top_p is not None:
        config["topP"] = params.top_p
    if params.stop is not None:
        config["stopSequences"] = [params.stop] if isinstance(params.stop, str) else params.stop
    fmt = params.response_format or {}
    if params.wants_json():
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


def _part(part: Part) -> dict[str, Any]:
    if part.kind == "text":
        return {"text": part.text}
    if part.data:
        return {"inlineData": {"mimeType": part.mime, "data": part.data}}
    mime = mimetypes.guess_type(part.url)[0] or "image/jpeg"
    return {"fileData": {"fileUri": part.url, "mimeType": mime}}


def _turn(m: ChatMessage) -> dict[str, Any] | None:
    extra = m.model_extra or {}
    if m.role == "tool":
        name = str(extra.get("name") or m.name or extra.get("tool_call_id") or "tool")
        response = {"name": name, "response": {"content": m.text()}}
        return {"role": "user", "parts": [{"functionResponse": response}]}
    parts = [_part(p) for p in parts_of(m) if p.kind == "image" or p.text]
    calls = extra.get("tool_calls") if m.role == "assistant" else None
    for call in calls if isinstance(calls, list) else []:
        parts.append({"functionCall": {"name": tool_name(call), "args": tool_arguments(call)}})
    if not parts:
        return None
    return {"role": "model" if m.role == "assistant" else "user", "parts": parts}
