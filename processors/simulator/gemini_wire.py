"""The Gemini API wire format: `POST /v1beta/models/{model}:generateContent`.

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
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tierline.processors.simulator.limits import Breach
from tierline.processors.simulator.replies import Reply, format_retry_after
from tierline.processors.simulator.request import SimRequest
from tierline.processors.simulator.wire import PromptTally, WireFormat, part_texts, positive_int

__all__ = ["GeminiWire"]

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

    # ------------------------------------------------------------------ plumbing

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

    def _parse(
        self, body: dict[str, Any], request: web.Request, rid: str
    ) -> SimRequest | web.Response:
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
        tally = PromptTally()
        tally.system(_parts_text(_get(body, "systemInstruction", "system_instruction")))
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
            tally.message(text, user=content.get("role", "user") == "user")
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
        model = request.match_info.get("model", "").removeprefix("models/")
        return tally.request(model, max_tokens, wants_json=wants_json, json_schema=schema)

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
        usage: dict[str, Any] = {"promptTokenCount": reply.input_tokens}
        if reply.finish == "refusal":
            candidate: dict[str, Any] = {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    }
                ],
            }
            usage["totalTokenCount"] = reply.input_tokens
        else:
            candidate = {
                "content": {"parts": [{"text": reply.text}], "role": "model"},
                "finishReason": "STOP" if reply.finish == "stop" else "MAX_TOKENS",
                "index": 0,
            }
            usage["candidatesTokenCount"] = reply.output_tokens
            usage["totalTokenCount"] = reply.input_tokens + reply.output_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.input_tokens}]
        if reply.cache_read_tokens:
            usage["cachedContentTokenCount"] = reply.cache_read_tokens
            usage["cacheTokensDetails"] = [
                {"modality": "TEXT", "tokenCount": reply.cache_read_tokens}
            ]
        body = {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": req.model,
            "responseId": rid[:22],
        }
        return self._json(200, body, rid)
