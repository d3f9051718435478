"""The OpenAI Chat Completions wire format: `POST /v1/chat/completions`.

Parses a request the way the real API reads it and renders the real shapes:

* auth: `Authorization: Bearer <key>`; none -> 401 with `code: null`, a key in
  the profile's `invalid_api_keys` -> 401 `invalid_api_key`;
* errors: ``{"error": {"message", "type", "param", "code"}}``; a missing model,
  missing or empty `messages`, a bad role or `max_tokens` -> 400; an unknown
  model (when the profile lists `known_models`) -> 404 `model_not_found`; a
  prompt over the context window -> 400 `context_length_exceeded`; 429 with type
  `requests` and code `rate_limit_exceeded`; 500/503 `server_error`; a 502 is
  Cloudflare's HTML page, as the real edge sends it;
* success: a `chat.completion` object; `usage.prompt_tokens` includes
  `prompt_tokens_details.cached_tokens` and, for the GPT-5.6 family and later
  (which bill cache writes), `prompt_tokens_details.cache_write_tokens`: the
  prompt prefix the first time it is seen; `finish_reason` is `stop`, `length`
  (capped by `max_completion_tokens` or `max_tokens`) or `content_filter`;
* headers: `x-request-id`, `openai-processing-ms`, `openai-version`; a model
  with a limit (`rpm_limit`, `tpm_limit`) adds the
  `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` family for each budget
  it has, the reset in OpenAI's (Go's) duration format ("120ms", "1.5s",
  "6m0s", "1h2m3s"); a 429 carries `retry-after` plus `retry-after-ms` (which
  the official SDKs prefer), and over an enforced budget `type` `requests` or
  `tokens` with the real "Rate limit reached ... (RPM)/(TPM)" message.

JSON mode: `response_format` `json_object` or `json_schema` makes the content a
JSON document (shaped by the schema).

Streaming (`stream: true`): `text/event-stream` of `data: {chat.completion.chunk}`
events (https://platform.openai.com/docs/api-reference/chat-streaming): the
first chunk's delta is `{"role": "assistant", "content": "", "refusal": null}`
(for a tool call `content: null` and the first call's head), then `{"content":
<piece>}` deltas; a tool call is `delta.tool_calls: [{"index", "id", "type":
"function", "function": {"name", "arguments": ""}}]` once, then `{"index",
"function": {"arguments": <piece>}}` fragments; a last chunk with `delta: {}`
and the `finish_reason`; with `stream_options.include_usage` every chunk has
`usage: null` and one more chunk, `choices: []`, carries the usage (the same
object as the unstreamed reply's); then `data: [DONE]`. Mistral's models
(`mistral-*`, `magistral-*`, `codestral-*`, ...), whose API has no
`stream_options`, put the usage in the chunk with the `finish_reason`, asked or
not, as Mistral does. A cut stream ends after its first content chunk, without
`[DONE]`.

Tools (`tool_use` decides when they are called): `tools` of type `function`,
`tool_choice` (`auto`, `none`, `required`, `{"type": "function", "function":
{"name"}}`) and `parallel_tool_calls`; a call is answered as
`message.tool_calls` (`{"id": "call_...", "type": "function", "function":
{"name", "arguments": <JSON text>}}`), `content: null`, `finish_reason:
tool_calls`. As the real API, a `tool` message must answer a call of the assistant
message before it (400 otherwise), every call must get its answer before the next
other message (400 naming the unanswered ids), and `tool_choice` needs `tools`.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.limits import Admission, Breach
from tierline.processors.simulator.replies import Reply, format_retry_after
from tierline.processors.simulator.request import SimRequest
from tierline.processors.simulator.tool_use import SimTool, SimToolCall, ToolAsk
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

__all__ = ["OpenAIWire"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_REQUESTS_LIMIT = 10_000
"""The RPM a drawn or forced 429 names (a model without an enforced limit)."""
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}
_ERROR_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
}
_CLOUDFLARE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _duration(seconds: float) -> str:
    """OpenAI's reset durations, Go's `time.Duration` format to the millisecond.

    "0s", "6ms", "1.5s", "59.123s", "6m0s", "1m30.5s", "1h2m3s".
    """
    ms = max(0, int(round(seconds * 1000.0)))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, frac = divmod(ms, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return part_texts(content)
    return ""


#: a GPT model id's version: gpt-5.6-sol is (5, 6), gpt-6 is (6, 0)
_GPT_VERSION = re.compile(r"^gpt-(\d+)(?:\.(\d+))?")
#: the first family that bills (and reports) prompt-cache writes
_WRITES_BILLED_FROM = (5, 6)
#: Mistral's models: a stream reports its usage in the last chunk, always
_MISTRAL = re.compile(r"^(open-)?(mistral|magistral|codestral|devstral|ministral|pixtral)")


class OpenAIWire(WireFormat):
    """Renders and parses OpenAI Chat Completions."""

    name = "openai"
    error_statuses = (500, 502, 503)
    error_messages = _ERROR_MESSAGES
    server_error_text = "The server had an error processing your request (HTTP {status})."
    client_error_text = "Simulated client error (HTTP {status})."

    def reports_cache_writes(self, model: str) -> bool:
        """GPT-5.6 and later bill cache writes (1.25x input) and report them; earlier don't."""
        version = _GPT_VERSION.match(model)
        if version is None:
            return False
        return (int(version.group(1)), int(version.group(2) or 0)) >= _WRITES_BILLED_FROM

    # ------------------------------------------------------------------ plumbing

    def _headers(self, rid: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "x-request-id": f"req_{rid}",
            "openai-organization": "sim-org",
            "openai-processing-ms": "1",  # errors answer at once; success sends its latency
            "openai-version": "2020-10-01",
        }

    def limit_headers(self, admission: Admission, reset_s: float) -> dict[str, str]:
        reset = _duration(reset_s)
        h: dict[str, str] = {}
        if admission.requests_limit is not None:
            h["x-ratelimit-limit-requests"] = str(admission.requests_limit)
            h["x-ratelimit-remaining-requests"] = str(admission.requests_remaining)
            h["x-ratelimit-reset-requests"] = reset
        if admission.tokens_limit is not None:
            h["x-ratelimit-limit-tokens"] = str(admission.tokens_limit)
            h["x-ratelimit-remaining-tokens"] = str(admission.tokens_remaining)
            h["x-ratelimit-reset-tokens"] = reset
        return h

    def _error(
        self,
        status: int,
        rid: str,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        error = {
            "message": message,
            "type": type_ or _ERROR_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
        return self._json(status, {"error": error}, rid, headers)

    # ------------------------------------------------------------------ requests

    def _auth_error(
        self, request: web.Request, invalid_keys: frozenset[str], rid: str
    ) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return self._error(
                401,
                rid,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                "or as the password field (with blank username) if you're accessing the API "
                "from your browser and are prompted for a username and password. You can "
                "obtain an API key from https://platform.openai.com/account/api-keys.",
            )
        if key in invalid_keys:
            shown = f"{key[:4]}{'*' * max(0, len(key) - 8)}{key[-4:]}"
            return self._error(
                401,
                rid,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    def _bad_json(self, rid: str) -> web.Response:
        return self._error(
            400,
            rid,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
            "this, please contact us through our help center at help.openai.com.)",
        )

    def _not_an_object(self, rid: str) -> web.Response:
        return self._error(
            400, rid, "Invalid type for request body: expected an object.", code="invalid_type"
        )

    def _parse(self, body: dict[str, Any], path_model: str, rid: str) -> SimRequest | web.Response:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, rid, "you must provide a model parameter")
        messages = body.get("messages")
        if messages is None:
            return self._error(
                400,
                rid,
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        if not isinstance(messages, list):
            return self._error(
                400,
                rid,
                f"Invalid type for 'messages': expected an array, but got "
                f"{type(messages).__name__} instead.",
                param="messages",
                code="invalid_type",
            )
        if not messages:
            return self._error(
                400,
                rid,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                param="messages",
                code="empty_array",
            )
        tally = PromptTally()
        asked = self._tool_ask(body, tally, rid)
        if isinstance(asked, web.Response):
            return asked
        unanswered: list[str] = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                return self._error(
                    400,
                    rid,
                    f"Invalid type for 'messages[{i}]': expected an object.",
                    param=f"messages[{i}]",
                    code="invalid_type",
                )
            role = m.get("role")
            if role is None:
                return self._error(
                    400,
                    rid,
                    f"Missing required parameter: 'messages[{i}].role'.",
                    param=f"messages[{i}].role",
                    code="missing_required_parameter",
                )
            if role not in _ROLES:
                return self._error(
                    400,
                    rid,
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                    "'user', 'function', 'tool', and 'developer'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
            refused = self._tool_turn(m, i, unanswered, tally, rid)
            if refused is not None:
                return refused
            tally.message(_text(m.get("content")), user=role == "user", results=role == "tool")
        if unanswered:
            return self._unanswered(unanswered, len(messages), rid)
        max_tokens: Any = body.get("max_completion_tokens")
        param = "max_completion_tokens"
        if max_tokens is None:
            max_tokens, param = body.get("max_tokens"), "max_tokens"
        if max_tokens is not None and not positive_int(max_tokens):
            return self._error(
                400,
                rid,
                f"Invalid '{param}': integer below minimum value. Expected a value >= 1, "
                f"but got {max_tokens!r} instead.",
                param=param,
                code="integer_below_min_value",
            )
        wants_json = False
        schema: dict[str, Any] | None = None
        fmt = body.get("response_format")
        if isinstance(fmt, dict):
            kind = fmt.get("type")
            if kind == "json_object":
                wants_json = True
            elif kind == "json_schema":
                wants_json = True
                spec = fmt.get("json_schema")
                if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
                    schema = spec["schema"]
        return tally.request(
            model, max_tokens, wants_json=wants_json, json_schema=schema, tools=asked
        )

    def _tool_ask(
        self, body: dict[str, Any], tally: PromptTally, rid: str
    ) -> ToolAsk | None | web.Response:
        """The request's tools and tool choice, or the 400 the real API answers."""
        tools = body.get("tools")
        choice = body.get("tool_choice")
        if not tools:
            if choice is not None and choice != "none":
                return self._error(
                    400,
                    rid,
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                    "'tools' are specified.",
                    param="tool_choice",
                )
            return None
        if not isinstance(tools, list):
            return self._error(400, rid, "Invalid type for 'tools': expected an array.")
        offered: list[SimTool] = []
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name:
                return self._error(
                    400,
                    rid,
                    f"Missing required parameter: 'tools[{i}].function.name'.",
                    param=f"tools[{i}].function.name",
                    code="missing_required_parameter",
                )
            assert isinstance(function, dict)
            params = function.get("parameters")
            offered.append(SimTool(name, params if isinstance(params, dict) else {}))
            tally.tools(len(orjson.dumps(tool)))
        ask = ToolAsk(tools=tuple(offered), parallel=body.get("parallel_tool_calls") is not False)
        if choice in ("auto", "none"):
            ask.choice = choice
        elif choice == "required":
            ask.choice = "any"
        elif isinstance(choice, dict):
            function = choice.get("function")
            ask.choice = "tool"
            ask.forced = function.get("name") if isinstance(function, dict) else None
        return ask

    def _tool_turn(
        self, m: dict[str, Any], i: int, unanswered: list[str], tally: PromptTally, rid: str
    ) -> web.Response | None:
        """Check message `i` against the calls awaiting answers; count its calls' text."""
        role = m.get("role")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in unanswered:
                return self._error(
                    400,
                    rid,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            unanswered.remove(call_id)
            return None
        if unanswered:
            return self._unanswered(unanswered, i, rid)
        calls = m.get("tool_calls") if role == "assistant" else None
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                unanswered.append(call["id"])
            if isinstance(function, dict):
                tally.tools(
                    len(str(function.get("name", ""))) + len(str(function.get("arguments")))
                )
        return None

    def _unanswered(self, ids: list[str], i: int, rid: str) -> web.Response:
        return self._error(
            400,
            rid,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(ids)}",
            param=f"messages.[{i}].role",
        )

    # ------------------------------------------------------------------ answers

    def tools_unsupported(self, model: str, rid: str) -> web.Response:
        return self._error(
            400,
            rid,
            "Unsupported parameter: 'tools' is not supported with this model.",
            param="tools",
            code="unsupported_parameter",
        )

    def unknown_model(self, model: str, rid: str) -> web.Response:
        return self._error(
            404,
            rid,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    def context_exceeded(self, req: SimRequest, tokens: int, window: int, rid: str) -> web.Response:
        return self._error(
            400,
            rid,
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {tokens} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )

    def rate_limited(
        self, model: str, retry_after_s: float, rid: str, *, breach: Breach | None = None
    ) -> web.Response:
        wait = _duration(retry_after_s)
        learn = "Visit https://platform.openai.com/account/rate-limits to learn more."
        if breach is None:
            kind = "requests"
            message = (
                f"Rate limit reached for {model} in organization org-sim on requests per min "
                f"(RPM): Limit {_REQUESTS_LIMIT}, Used {_REQUESTS_LIMIT}, Requested 1. Please "
                f"try again in {wait}. {learn}"
            )
        else:
            kind = breach.kind
            unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
            if breach.requested > breach.limit:
                message = (
                    f"Request too large for {model} in organization org-sim on {unit}: Limit "
                    f"{breach.limit}, Requested {breach.requested}. The input or output tokens "
                    f"must be reduced in order to run successfully. {learn}"
                )
            else:
                message = (
                    f"Rate limit reached for {model} in organization org-sim on {unit}: Limit "
                    f"{breach.limit}, Used {breach.used}, Requested {breach.requested}. Please "
                    f"try again in {wait}. {learn}"
                )
        return self._error(
            429,
            rid,
            message,
            type_=kind,
            code="rate_limit_exceeded",
            headers={
                "retry-after": format_retry_after(retry_after_s),
                "retry-after-ms": str(int(round(retry_after_s * 1000))),
            },
        )

    def error(self, status: int, model: str, rid: str) -> web.Response:
        # a 502 comes from Cloudflare's edge, not the API: HTML, whatever the client asked for
        if status == 502:
            h = self._headers(rid)
            h["Content-Type"] = "text/html"
            return web.Response(status=502, body=_CLOUDFLARE_502, headers=h)
        return super().error(status, model, rid)

    def success(self, req: SimRequest, reply: Reply, rid: str, latency_ms: int) -> web.Response:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": _call_id(rid, n),
                    "type": "function",
                    "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
                }
                for n, c in enumerate(reply.tool_calls)
            ]
        body = {
            "id": _completion_id(rid),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish(reply),
                }
            ],
            "usage": self._usage(req, reply),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
        return self._json(200, body, rid, {"openai-processing-ms": str(latency_ms)})

    def stream_headers(self, rid: str, ask: StreamAsk, latency_ms: int) -> dict[str, str]:
        h = super().stream_headers(rid, ask, latency_ms)
        h["openai-processing-ms"] = str(latency_ms)
        return h

    def stream_writes(
        self, req: SimRequest, reply: Reply, rid: str, ask: StreamAsk, chunk_chars: int
    ) -> list[bytes]:
        head: dict[str, Any] = {
            "id": _completion_id(rid),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": req.model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
        with_usage = ask.include_usage
        usage_last = _MISTRAL.match(req.model) is not None

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
            body = head | {
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            }
            if with_usage or usage is not None:
                body["usage"] = usage
            return sse(orjson.dumps(body))

        deltas = _deltas(reply, rid, chunk_chars)
        if usage_last:
            closing = chunk({}, _finish(reply), self._usage(req, reply))
        else:
            closing = chunk({}, _finish(reply))
        if with_usage and not usage_last:
            last = head | {"choices": [], "usage": self._usage(req, reply)}
            closing += sse(orjson.dumps(last))
        closing += b"data: [DONE]\n\n"
        return paced(chunk(deltas[0]), [chunk(d) for d in deltas[1:]], closing)

    def _usage(self, req: SimRequest, reply: Reply) -> dict[str, Any]:
        prompt_details: dict[str, int] = {"cached_tokens": reply.cache_read_tokens}
        if self.reports_cache_writes(req.model):
            prompt_details["cache_write_tokens"] = reply.cache_write_tokens
        prompt_details["audio_tokens"] = 0
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


_FINGERPRINT = "fp_sim0000001"


def _completion_id(rid: str) -> str:
    return f"chatcmpl-sim{rid[:26]}"


def _call_id(rid: str, n: int) -> str:
    return f"call_sim{rid[:16]}{n:02d}"


def _finish(reply: Reply) -> str:
    return "content_filter" if reply.finish == "refusal" else reply.finish


def _deltas(reply: Reply, rid: str, size: int) -> list[dict[str, Any]]:
    """The chunks' deltas, the opening one first: text pieces, or each call's head and the
    fragments of its arguments (the first call's head rides on the opening delta)."""
    if not reply.tool_calls:
        opening: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        return [opening, *({"content": piece} for piece in pieces(reply.text, size))]
    deltas: list[dict[str, Any]] = []
    for n, call in enumerate(reply.tool_calls):
        deltas.append({"tool_calls": [_call_head(call, rid, n)]})
        arguments = orjson.dumps(call.arguments).decode()
        deltas.extend(
            {"tool_calls": [{"index": n, "function": {"arguments": piece}}]}
            for piece in pieces(arguments, size)
        )
    deltas[0] = {"role": "assistant", "content": None, **deltas[0], "refusal": None}
    return deltas


def _call_head(call: SimToolCall, rid: str, n: int) -> dict[str, Any]:
    return {
        "index": n,
        "id": _call_id(rid, n),
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }
