"""The cheap check of a cascade: is this answer good enough to keep, or must a stronger model try?

Only what can be judged without another model:

* the call succeeded (a failure is escalated unless the request itself is at
  fault: a `bad_request` fails on every model alike);
* the answer is not empty, not cut off (`finish_reason` "length"), not
  withheld by a content filter, and does not read as a refusal;
* when `response_format` asks for JSON (`json_object` or `json_schema`), the
  answer parses as JSON — an object for `json_object` — and matches the
  requested schema (`processors.json_subset`);
* an answer that calls tools (its text may be empty) calls only tools the
  request offered, with arguments that parse as a JSON object matching the
  tool's `parameters` schema.

`check_answer` returns None when the answer passes, else a short reason that
goes into the request's decision reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from tierline.processors.serving.json_subset import validate
from tierline.schemas import ErrorType, RouteRequest, RouteResponse, ToolCall

Check = Callable[[RouteRequest, RouteResponse], str | None]

#: failures that another model cannot fix: the request or the rules are at fault
FINAL_ERRORS = frozenset(
    {
        ErrorType.BAD_REQUEST,
        ErrorType.INVALID_REQUEST,
        ErrorType.PAYLOAD_TOO_LARGE,
        ErrorType.BUDGET_EXCEEDED,
        ErrorType.POLICY_DENIED,
    }
)
REFUSAL_MAX_CHARS = 400
_REFUSAL = re.compile(
    r"^\W*(?:(?:i'm sorry|i am sorry|sorry|unfortunately|i apologi[sz]e)[,.!]?\s*)?"
    r"(?:but\s+)?"
    r"(?:i\s+(?:can(?:no|')t|won'?t|will not|am (?:not able|unable|not allowed) to)"
    r"|i'm (?:not able|unable|not allowed) to)\s+"
    r"(?:help|assist|comply|provide|do that|fulfil|fulfill|answer|complete|share|generate"
    r"|create|write)",
    re.IGNORECASE,
)


def escalation_helps(response: RouteResponse) -> bool:
    """Whether a stronger model could do better than this failed response."""
    return response.error is None or response.error.type not in FINAL_ERRORS


def looks_like_refusal(text: str) -> bool:
    """A short answer that opens by declining ("I'm sorry, but I can't help with that")."""
    head = text.strip().replace("\u2019", "'")
    return len(head) <= REFUSAL_MAX_CHARS and _REFUSAL.match(head) is not None


def check_answer(request: RouteRequest, response: RouteResponse) -> str | None:
    """None when the answer is good enough to keep; else why not."""
    if response.status != "ok":
        kind = response.error.type if response.error is not None else "unknown"
        return f"call failed ({kind})"
    content = response.content or ""
    if response.finish_reason == "length":
        return "truncated (finish_reason=length)"
    if response.tool_calls:
        return _tool_call_problem(request, response.tool_calls)
    if not content.strip():
        return "empty answer"
    if response.finish_reason == "content_filter":
        return "content filtered"
    if looks_like_refusal(content):
        return "refusal"
    if request.params.wants_json():
        return _json_problem(request, content)
    return None


def _json_problem(request: RouteRequest, content: str) -> str | None:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    response_format: dict[str, Any] = request.params.response_format or {}
    if response_format.get("type") == "json_object" and not isinstance(value, dict):
        return "JSON is not an object"
    schema = _schema(response_format)
    if schema is None:
        return None
    errors = validate(value, schema)
    return f"JSON does not match the schema: {errors[0]}"[:300] if errors else None


def _tool_call_problem(request: RouteRequest, calls: list[ToolCall]) -> str | None:
    offered = {t.function.name: t.function for t in request.params.tools or ()}
    for call in calls:
        name = call.function.name
        function = offered.get(name)
        if function is None:
            return f"called {name!r}, a tool the request does not offer"[:300]
        try:
            arguments = orjson.loads(call.function.arguments)
        except orjson.JSONDecodeError:
            return f"arguments of {name} are not valid JSON"[:300]
        if not isinstance(arguments, dict):
            return f"arguments of {name} are not a JSON object"[:300]
        errors = validate(arguments, function.parameters) if function.parameters else []
        if errors:
            return f"arguments of {name} do not match its schema: {errors[0]}"[:300]
    return None


def _schema(response_format: dict[str, Any]) -> Any:
    """The schema of an OpenAI-style `{"type": "json_schema", "json_schema": {"schema": ...}}`."""
    if response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if isinstance(spec, dict):
        return spec.get("schema", spec if "type" in spec or "properties" in spec else None)
    return None
