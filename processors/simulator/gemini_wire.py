"""The Gemini API wire format: `POST /v1beta/models/{model}:generateContent`, and
`:streamGenerateContent` for a streamed answer.

Parses a request the way the real API reads it and renders the real shapes:

* auth: the `x-goog-api-key` header or the `key` query parameter; none -> 403
  `PERMISSION_DENIED` ("Method doesn't allow unregistered callers ..."), a key in
  the profile's `invalid_api_keys` -> 400 `INVALID_ARGUMENT` "API key not valid"
  with an `ErrorInfo` detail of reason `API_KEY_INVALID`;
* errors: ``{"error": {"code", "message", "status", "details"?}}`` (google.rpc
  Status): 400 `INVALID_ARGUMENT` (missing `contents`; "The input token count
  (N) exceeds the maximum number of tokens allowed (M)."), 404 `NOT_FOUND`, 429
  `RESOURCE_EXHAUSTED` with `QuotaFailure` and `RetryInfo.retryDelay` details,
  500 `INTERNAL`, 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`;
* success: `candidates[0].content.parts[].text` with role `model`,
  `finishReason` `STOP` | `MAX_TOKENS` | `SAFETY` (a refusal has no content),
  `usageMetadata` {`promptTokenCount` (includes `cachedContentTokenCount`),
  `candidatesTokenCount`, `totalTokenCount`, `cachedContentTokenCount` (an
  implicit cache hit: the prompt prefix seen before) and `cacheTokensDetails`
  when non-zero, as proto3 JSON omits zeros}, `modelVersion`, `responseId`;
* headers: the real API sends no rate-limit headers, so a model with a limit
  (`rpm_limit`, `tpm_limit`) is announced nowhere; a 429 carries the delay in
  `RetryInfo.retryDelay` ("2s", "0.3s"), over an enforced budget a
  `QuotaFailure` naming it (`quotaValue` = the limit), and the simulator adds
  `Retry-After` too so generic clients see it.

Both camelCase and snake_case field names are accepted (`generationConfig` /
`generation_config`, `maxOutputTokens` / `max_output_tokens`), as the real API
does. JSON mode: `generationConfig.responseMimeType: application/json`, with
`responseSchema` or `responseJsonSchema` shaping the document.

Function calling (`tool_use` decides when functions are called): `tools[].
functionDeclarations[]` (`name` required; `parametersJsonSchema`, or the OpenAPI
`parameters`), `toolConfig.functionCallingConfig` (`mode` AUTO | ANY | NONE,
`allowedFunctionNames`; ANY with one allowed name forces it); a call is answered as
`functionCall` parts (`name`, `args`) with `finishReason: STOP`. As the real API,
the turn after a function-call turn must hold as many `functionResponse` parts as
that turn had calls, and a Gemini 3 model (`gemini-3*` and later) signs the first
call of each answer with a `thoughtSignature` and refuses a history whose
function-call turn does not carry one on its first call (400).

Streaming: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (also under
`/v1/`) takes the same body and answers server-sent events, each `data:` a whole
`GenerateContentResponse` (https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent,
https://ai.google.dev/gemini-api/docs/text-generation#streaming-responses), with
`\r\n` line ends as Google's servers send them: one response per text piece
(`candidates[0].content.parts: [{"text": <piece>}]`) or per `functionCall` part
(whole, never split), each with the prompt's `usageMetadata`; the last one has an
empty text part, the `finishReason` and the full `usageMetadata` (the unstreamed
reply's). Without `alt=sse` the same responses come as one JSON array, written as
they are made (`[`, `,\r\n` between them, `]`). There is no end marker: a cut
stream just ends after its first content chunk, without the `finishReason`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.limits import Breach
from tierline.processors.simulator.replies import Reply, format_retry_after
from tierline.processors.simulator.request import SimRequest
from tierline.processors.simulator.tool_use import SimTool, ToolAsk
from tierline.processors.simulator.wire import (
    PromptTally,
    StreamAsk,
    WireFormat,
    paced,
    part_texts,
    pieces,
    positive_int,
    sse,
)

__all__ = ["GeminiWire"]

_VERSION = re.compile(r"^gemini-(\d+)")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ERROR_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


def _signs(model: str) -> bool:
    """Gemini 3 and later sign function calls, and check the signatures sent back."""
    version = _VERSION.match(model)
    return version is not None and int(version.group(1)) >= 3


def _result_text(response: Any) -> str:
    """What a `functionResponse` says: its `response.content`, else the response as JSON."""
    body = response.get("response") if isinstance(response, dict) else None
    if isinstance(body, dict) and isinstance(body.get("content"), str):
        return str(body["content"])
    return orjson.dumps(body).decode()


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _parts_text(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return part_texts(parts)


class GeminiWire(WireFormat):
    """Renders and parses Gemini generateContent."""

    name = "gemini"
    error_statuses = (500, 503)
    error_messages = _ERROR_MESSAGES
    server_error_text = "Internal error encountered."
    client_error_text = "Simulated error ({status})."
    no_tools_text = "Function calling is not enabled for models/{model}"

    stream_content_type = "text/event-stream"

    # ------------------------------------------------------------------ plumbing

    def stream_ask(
        self, request: web.Request, body: bytes, *, routed: bool = False
    ) -> StreamAsk | None:
        """Gemini streams by route, never by a body field: the body is the unstreamed one."""
        if not routed:
            return None
        return StreamAsk(body, sse=request.query.get("alt") == "sse")

    def _headers(self, rid: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=UTF-8",
            "Server": "scaffolding on HTTPServer2",
            "Vary": "Origin",
        }

    def _error(
        self,
        status: int,
        rid: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        err: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN"),
        }
        if details:
            err["details"] = details
        return self._json(status, {"error": err}, rid, headers)

    # ------------------------------------------------------------------ requests

    def _auth_error(
        self, request: web.Request, invalid_keys: frozenset[str], rid: str
    ) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
        if not key:
            return self._error(
                403,
                rid,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if key in invalid_keys:
            message = "API key not valid. Please pass a valid API key."
            return self._error(
                400,
                rid,
                message,
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": message,
                    },
                ],
            )
        return None

    def _bad_json(self, rid: str) -> web.Response:
        return self._error(400, rid, "Invalid JSON payload received. Unexpected token.")

    def _not_an_object(self, rid: str) -> web.Response:
        return self._error(400, rid, "Invalid JSON payload received. Expected an object.")

    def _parse(self, body: dict[str, Any], path_model: str, rid: str) -> SimRequest | web.Response:
        contents = body.get("contents")
        if not contents:
            return self._error(
                400, rid, "* GenerateContentRequest.contents: contents is not specified\n"
            )
        if not isinstance(contents, list):
            return self._error(
                400,
                rid,
                'Invalid JSON payload received. Unknown name "contents": Proto field is not '
                "repeating, cannot start list.",
            )
        model = path_model.removeprefix("models/")
        tally = PromptTally()
        asked = self._tool_ask(body, tally, rid)
        if isinstance(asked, web.Response):
            return asked
        tally.system(_parts_text(_get(body, "systemInstruction", "system_instruction")))
        calls_before = 0
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                return self._error(
                    400, rid, f"* GenerateContentRequest.contents[{i}]: must be an object\n"
                )
            text = _parts_text(content)
            if not text and not content.get("parts"):
                return self._error(
                    400,
                    rid,
                    f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not "
                    "be empty.\n",
                )
            parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
            refused = self._function_turn(parts, i, calls_before, model, tally, rid)
            if refused is not None:
                return refused
            calls_before = sum(1 for p in parts if "functionCall" in p)
            results = [_get(p, "functionResponse", "function_response") for p in parts]
            results_text = " ".join(_result_text(r) for r in results if r is not None)
            tally.message(
                text or results_text,
                user=content.get("role", "user") == "user",
                results=bool(results_text) or any(r is not None for r in results),
            )
        config = _get(body, "generationConfig", "generation_config")
        max_tokens: int | None = None
        wants_json = False
        schema: dict[str, Any] | None = None
        if isinstance(config, dict):
            raw_max = _get(config, "maxOutputTokens", "max_output_tokens")
            if raw_max is not None:
                if not positive_int(raw_max):
                    return self._error(
                        400,
                        rid,
                        "* GenerateContentRequest.generation_config.max_output_tokens: "
                        "max_output_tokens must be positive.\n",
                    )
                max_tokens = raw_max
            if _get(config, "responseMimeType", "response_mime_type") == "application/json":
                wants_json = True
                raw_schema = _get(config, "responseJsonSchema", "response_json_schema")
                if raw_schema is None:
                    raw_schema = _get(config, "responseSchema", "response_schema")
                if isinstance(raw_schema, dict):
                    schema = raw_schema
        return tally.request(
            model, max_tokens, wants_json=wants_json, json_schema=schema, tools=asked
        )

    def _tool_ask(
        self, body: dict[str, Any], tally: PromptTally, rid: str
    ) -> ToolAsk | None | web.Response:
        """The request's function declarations and calling config, or the 400."""
        tools = body.get("tools")
        offered: list[SimTool] = []
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            if not isinstance(tool, dict):
                continue
            declarations = _get(tool, "functionDeclarations", "function_declarations") or []
            for j, declaration in enumerate(declarations):
                name = declaration.get("name") if isinstance(declaration, dict) else None
                if not isinstance(name, str) or not name:
                    return self._error(
                        400,
                        rid,
                        f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                        "[FIELD_INVALID] Invalid function name. Must start with a letter or an "
                        "underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots "
                        "(.), colons (:), or dashes (-), with a maximum length of 64.\n",
                    )
                schema = _get(declaration, "parametersJsonSchema", "parameters_json_schema")
                if schema is None:
                    schema = declaration.get("parameters")
                offered.append(SimTool(name, schema if isinstance(schema, dict) else {}))
                tally.tools(len(orjson.dumps(declaration)))
        if not offered:
            return None
        ask = ToolAsk(tools=tuple(offered))
        config = _get(body, "toolConfig", "tool_config")
        calling = (
            _get(config, "functionCallingConfig", "function_calling_config")
            if isinstance(config, dict)
            else None
        )
        if isinstance(calling, dict):
            mode = str(calling.get("mode", "AUTO")).upper()
            allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
            if mode == "NONE":
                ask.choice = "none"
            elif mode in ("ANY", "VALIDATED") and isinstance(allowed, list) and len(allowed) == 1:
                ask.choice, ask.forced = "tool", str(allowed[0])
            elif mode == "ANY":
                ask.choice = "any"
        return ask

    def _function_turn(
        self,
        parts: list[dict[str, Any]],
        i: int,
        calls_before: int,
        model: str,
        tally: PromptTally,
        rid: str,
    ) -> web.Response | None:
        """Turn `i` answers every call of the turn before; a Gemini 3 call carries its
        signature."""
        responses = sum(1 for p in parts if "functionResponse" in p or "function_response" in p)
        if (calls_before or responses) and responses != calls_before:
            return self._error(
                400,
                rid,
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn.",
            )
        calls = [(n, p) for n, p in enumerate(parts) if "functionCall" in p]
        for _, part in calls:
            call = part["functionCall"]
            name = call.get("name") if isinstance(call, dict) else None
            args = call.get("args") if isinstance(call, dict) else None
            tally.tools(len(str(name)) + len(orjson.dumps(args)))
        if calls and _signs(model):
            n, first = calls[0]
            if not first.get("thoughtSignature") and not first.get("thought_signature"):
                name = first["functionCall"].get("name")
                return self._error(
                    400,
                    rid,
                    "Function call is missing a thought_signature in functionCall parts. This "
                    "is required for tools to work correctly, and missing thought_signature "
                    "may lead to degraded model performance. Additional data, function call "
                    f"`default_api:{name}` , position {n + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                )
        return None

    # ------------------------------------------------------------------ answers

    def unknown_model(self, model: str, rid: str) -> web.Response:
        return self._error(
            404,
            rid,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        )

    def context_exceeded(self, req: SimRequest, tokens: int, window: int, rid: str) -> web.Response:
        return self._error(
            400,
            rid,
            f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
            f"({window}).",
        )

    def rate_limited(
        self, model: str, retry_after_s: float, rid: str, *, breach: Breach | None = None
    ) -> web.Response:
        delay = format_retry_after(retry_after_s)
        if breach is None:  # a drawn or forced 429 reads like the free tier's
            metric = "generate_content_free_tier_requests"
            quota_id = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
            value = "10"
        elif breach.kind == "tokens":
            metric = "generate_content_paid_tier_input_token_count"
            quota_id = "GenerateContentPaidTierInputTokensPerModelPerMinute"
            value = str(breach.limit)
        else:
            metric = "generate_content_paid_tier_requests"
            quota_id = "GenerateRequestsPerMinutePerProjectPerModel"
            value = str(breach.limit)
        return self._error(
            429,
            rid,
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, head to: "
            f"https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in {delay}s.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                            "quotaId": quota_id,
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": value,
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"},
            ],
            headers={"Retry-After": delay},
        )

    def success(self, req: SimRequest, reply: Reply, rid: str, latency_ms: int) -> web.Response:
        if reply.finish == "refusal":
            candidate = _REFUSED
        else:
            parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
            parts += _call_parts(req, reply, rid)
            candidate = {
                "content": {"parts": parts, "role": "model"},
                "finishReason": _finish_reason(reply),
                "index": 0,
            }
        body = {
            "candidates": [candidate],
            "usageMetadata": _usage(reply),
            "modelVersion": req.model,
            "responseId": _response_id(rid),
        }
        return self._json(200, body, rid)

    def stream_writes(
        self, req: SimRequest, reply: Reply, rid: str, ask: StreamAsk, chunk_chars: int
    ) -> list[bytes]:
        prompt: dict[str, Any] = {
            "promptTokenCount": reply.input_tokens,
            "totalTokenCount": reply.input_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}],
        }
        tail = {"modelVersion": req.model, "responseId": _response_id(rid)}

        def response(candidate: dict[str, Any], usage: dict[str, Any]) -> bytes:
            return orjson.dumps({"candidates": [candidate], "usageMetadata": usage} | tail)

        def content(parts: list[dict[str, Any]]) -> dict[str, Any]:
            return {"content": {"parts": parts, "role": "model"}, "index": 0}

        if reply.finish == "refusal":
            contents: list[bytes] = []
            last = response(_REFUSED, _usage(reply))
        else:
            parts = [[{"text": p}] for p in pieces(reply.text, chunk_chars)]
            parts += [[part] for part in _call_parts(req, reply, rid)]
            contents = [response(content(p), prompt) for p in parts]
            final = content([{"text": ""}]) | {"finishReason": _finish_reason(reply)}
            last = response(final, _usage(reply))
        if ask.sse:
            return paced(b"", [sse(c, eol=b"\r\n") for c in contents], sse(last, eol=b"\r\n"))
        if not contents:
            return [b"[", last + b"]"]
        joined = [b"[" + contents[0], *(b",\r\n" + c for c in contents[1:])]
        return paced(b"", joined, b",\r\n" + last + b"]")


_REFUSED: dict[str, Any] = {
    "finishReason": "SAFETY",
    "index": 0,
    "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
    ],
}


def _response_id(rid: str) -> str:
    return rid[:22]


def _finish_reason(reply: Reply) -> str:
    return "MAX_TOKENS" if reply.finish == "length" else "STOP"


def _call_parts(req: SimRequest, reply: Reply, rid: str) -> list[dict[str, Any]]:
    """The reply's `functionCall` parts; a Gemini 3 model signs the first."""
    parts: list[dict[str, Any]] = []
    for n, call in enumerate(reply.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        if n == 0 and _signs(req.model):
            part["thoughtSignature"] = f"c2lt{rid[:20]}"  # opaque, as Google's are
        parts.append(part)
    return parts


def _usage(reply: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": reply.input_tokens}
    if reply.finish == "refusal":
        usage["totalTokenCount"] = reply.input_tokens
    else:
        usage["candidatesTokenCount"] = reply.output_tokens
        usage["totalTokenCount"] = reply.input_tokens + reply.output_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.input_tokens}]
    if reply.cache_read_tokens:
        usage["cachedContentTokenCount"] = reply.cache_read_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.cache_read_tokens}]
    return usage
