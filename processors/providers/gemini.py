"""Google Gemini `generateContent`: `POST {api_base}/v1beta/models/{model}:generateContent`.

Request, from our OpenAI-format one, with the key in `x-goog-api-key`:

* `system` / `developer` messages become `systemInstruction.parts[].text`;
* turns become `contents[]` with role `user` or `model` (for `assistant`) and
  `parts[]`: `{"text"}`, `{"inlineData": {mimeType, data}}` for a `data:` image
  URL, `{"fileData": {fileUri}}` for another URL; an assistant's `tool_calls`
  become `functionCall` parts (`args` the parsed arguments, with the call's
  `thoughtSignature` when it carries one) and `tool` messages `functionResponse`
  parts (`name` the called function's, found by `tool_call_id` in the history;
  `response: {"content": <the result text>}`), consecutive results in one user
  turn, as Gemini matches parallel calls and results by order. Gemini 3 refuses
  a function call sent back without its thought signature: a call that has none
  (another provider made it) gets the sentinel Google documents for that,
  `skip_thought_signature_validator`, on the first call of the turn;
* `tools` become one `{"functionDeclarations": [{name, description,
  parametersJsonSchema}]}` (full JSON Schema, where `parameters` takes only
  OpenAPI's subset); `tool_choice` becomes `toolConfig.functionCallingConfig`:
  `auto` -> `AUTO`, `required` -> `ANY`, a named function -> `ANY` with
  `allowedFunctionNames: [name]`, `none` -> `NONE`. Gemini has no switch for
  parallel calls: `parallel_tool_calls` is not sent;
* `generationConfig`: `maxOutputTokens`, `temperature`, `topP`,
  `stopSequences`, and for JSON output `responseMimeType: application/json`
  with `responseJsonSchema` when the request gives a schema.

Reply: the text parts of `candidates[0].content.parts` (thought parts skipped)
joined; each `functionCall` part a tool call (its `id` when Gemini gives one,
else `call_<responseId>_<n>`; `args` as JSON text; a `thoughtSignature` kept as
`extra_content.google.thought_signature`, where Gemini's own OpenAI-compatible
API puts it); `finishReason` `STOP` -> stop (tool_calls when it called a
function), `MAX_TOKENS` -> length, the safety
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

Function calling: https://ai.google.dev/gemini-api/docs/function-calling,
https://ai.google.dev/api/caching#FunctionDeclaration (and `#FunctionCallingConfig`),
https://ai.google.dev/gemini-api/docs/thought-signatures.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any

import orjson

from tierline.processors.errors import ProviderError
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
from tierline.processors.providers.tool_calls import (
    arguments_of,
    call_from,
    forced_name,
    names_by_call_id,
)
from tierline.schemas import ErrorType, Params, RouteRequest, ToolCall, Usage
from tierline.schemas.messages import ChatMessage
from tierline.schemas.response import FinishReason
from tierline.schemas.tools import FunctionDefinition

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
        names = names_by_call_id(request.messages)
        signed = _needs_signatures(model.model_id)
        for m in request.messages:
            if m.role in ("system", "developer"):
                system.extend({"text": p.text} for p in parts_of(m) if p.kind == "text" and p.text)
            else:
                turn = _turn(m, names, signed)
                if turn is not None:
                    _append(contents, turn)
        if not contents:  # a system prompt alone: send it as the user's turn
            contents = [{"role": "user", "parts": system or [{"text": "."}]}]
            system = []
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        config = _generation_config(request)
        if config:
            body["generationConfig"] = config
        if request.params.tools:
            body["tools"] = [
                {"functionDeclarations": [_declaration(t.function) for t in request.params.tools]}
            ]
            tool_config = _tool_config(request.params)
            if tool_config is not None:
                body["toolConfig"] = tool_config
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
            calls = _calls(parts, request_id)
            raw_reason = str(candidate.get("finishReason"))
        except MALFORMED as exc:
            raise invalid_response("Gemini response", exc, status) from None
        reason = FINISH_REASONS.get(raw_reason, "stop")
        if reason == "error":
            raise ProviderError(
                ErrorType.INVALID_RESPONSE, f"Gemini finishReason={raw_reason}", status=status
            )
        return normalized(
            text,
            reason,
            usage,
            request_id,
            status=status,
            detail=f", finishReason={raw_reason}",
            tool_calls=calls,
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


#: the thought signature Google documents for a function call Gemini did not make
SKIP_SIGNATURE = "skip_thought_signature_validator"
#: Gemini 3 and later validate the thought signatures of function calls sent back
_SIGNING_MODEL = re.compile(r"^gemini-(\d+)")


def _needs_signatures(model_id: str) -> bool:
    version = _SIGNING_MODEL.match(model_id.removeprefix("models/"))
    return version is not None and int(version.group(1)) >= 3


def _declaration(function: FunctionDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"name": function.name}
    if function.description:
        out["description"] = function.description
    if function.parameters is not None:
        out["parametersJsonSchema"] = function.parameters
    return out


def _tool_config(params: Params) -> dict[str, Any] | None:
    """`toolConfig.functionCallingConfig` for the request's `tool_choice`, if it sets one."""
    choice = params.tool_choice
    if choice is None:
        return None
    config: dict[str, Any]
    if choice == "auto":
        config = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    else:
        config = {"mode": "ANY", "allowedFunctionNames": [forced_name(choice)]}
    return {"functionCallingConfig": config}


def _calls(parts: list[Any], response_id: str | None) -> tuple[ToolCall, ...]:
    calls: list[ToolCall] = []
    for part in parts:
        if not isinstance(part, dict) or "functionCall" not in part:
            continue
        call = part["functionCall"]
        given = call.get("id")
        call_id = (
            given if isinstance(given, str) and given else fallback_call_id(response_id, len(calls))
        )
        signature = part.get("thoughtSignature")
        extra = {"google": {"thought_signature": signature}} if isinstance(signature, str) else None
        calls.append(call_from(call_id, call.get("name"), call.get("args"), extra_content=extra))
    return tuple(calls)


def fallback_call_id(response_id: str | None, n: int) -> str:
    """The id of call `n` of a reply when Gemini gave the call none."""
    return f"call_{response_id or 'gemini'}_{n}"


def _signature(call: ToolCall) -> str | None:
    google = (call.extra_content or {}).get("google")
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _turn(m: ChatMessage, names: dict[str, str], signed: bool) -> dict[str, Any] | None:
    if m.role == "tool":
        call_id = m.tool_call_id or ""
        name = names.get(call_id, m.name or call_id)
        response = {"name": name, "response": {"content": m.text()}}
        return {"role": "user", "parts": [{"functionResponse": response}]}
    parts = [_part(p) for p in parts_of(m) if p.kind == "image" or p.text]
    for n, call in enumerate(m.tool_calls or ()):
        part: dict[str, Any] = {
            "functionCall": {"name": call.function.name, "args": arguments_of(call)}
        }
        signature = _signature(call)
        if signature is None and signed and n == 0:
            signature = SKIP_SIGNATURE
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    if not parts:
        return None
    return {"role": "model" if m.role == "assistant" else "user", "parts": parts}


def _append(contents: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    """Add `turn`; function results right after function results share their turn."""
    last = contents[-1] if contents else None
    if last is not None and _results_only(last) and _results_only(turn):
        last["parts"].extend(turn["parts"])
        return
    contents.append(turn)


def _results_only(turn: dict[str, Any]) -> bool:
    return turn["role"] == "user" and all("functionResponse" in p for p in turn["parts"])
