"""An OpenAI chat-completions body becomes a `RouteRequest`, or a 400 that names the field.

    model                   -> hints (model_names.choose): auto, a tier, or one model
    messages                -> messages (system, developer, user, assistant turns)
    temperature, top_p,     -> params, as they are
    stop, response_format,
    tools, tool_choice,
    parallel_tool_calls,
    stream                  -> params.stream (stream_options.include_usage is the gateway's)
    max_completion_tokens   -> params.max_tokens (or the older max_tokens; both must agree)
    user                    -> metadata.user
    metadata                -> metadata.tags; its "feature" key -> metadata.feature,
                               the dimension spend is reported by
    X-Tierline-Cache/-Trim  -> hints.cache / hints.trim (headers: `hint_headers`)

The id comes from the caller's headers (`request_ids`) and the tenant from its API
key (`api_keys`): a body that names `tenant`, `reply_to` or any other field of
`RouteRequest` is refused, never honoured, so that no caller can speak for another
tenant or send answers elsewhere. The body is read as strictly as the router reads
`tierline.requests` (`strict_json`: no duplicate keys, no NaN).

Tool calls are OpenAI's own shape in a `RouteRequest` too (`schemas.tools`): function
tools, `tool_choice`, `parallel_tool_calls`, assistant turns with `tool_calls` and `tool`
messages with `tool_call_id` pass through, validated there (an empty `tools` list is no
tools, as OpenAI's SDKs send it). What tierline does not serve yet is refused with
`unsupported`: `n` > 1, and the deprecated `functions` /
`function_call` API (and `function` messages) that `tools` replaced. Any other
parameter OpenAI knows but tierline cannot honour (`seed`, `logit_bias`, penalties, ...)
is refused by name rather than silently dropped, as is any name OpenAI does not know. A
parameter sent as `null` is absent, as OpenAI reads it; so are the output-only fields
(`refusal`, `annotations`, null or empty `tool_calls`) of an earlier answer passed back
as history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tierline.processors.gateway.model_names import choose
from tierline.processors.gateway.statuses import GatewayError, bad_request, unsupported
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.strict_json import StrictJSONError, loads_strict
from tierline.schemas import RouteRequest
from tierline.schemas.messages import ChatMessage

#: fields of `RouteRequest` that the gateway sets itself and a body may never carry
SMUGGLED = {
    "tenant": "the tenant comes from the API key",
    "reply_to": "the gateway answers over HTTP",
    "id": "the request id comes from the Idempotency-Key or X-Request-Id header",
    "hints": "routing hints come from `model`",
    "params": "parameters are top-level fields, as in OpenAI's API",
    "created_at": "the gateway stamps it",
    "replay": "replays are `tierline dlq replay`'s",
    "schema_version": "the gateway sets it",
}
#: OpenAI parameters that tierline does not honour; accepted only at these values
DEFAULT_ONLY: dict[str, tuple[object, ...]] = {
    "n": (None, 1),
    "logprobs": (None, False),
    "functions": (None, []),
    "function_call": (None, "none"),
    "store": (None, False),
}
_UNSUPPORTED_FEATURE = {
    "functions": "the deprecated functions API (functions; send tools)",
    "function_call": "the deprecated functions API (function_call; send tools and tool_choice)",
    "n": "more than one choice (n > 1)",
}
_BOOLEANS = ("stream", "logprobs", "store", "parallel_tool_calls")
_MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id")
#: fields of an assistant answer that say nothing to the next call: dropped from the history
_ANSWER_ONLY = ("refusal", "annotations")
_ROLES = ("system", "developer", "user", "assistant", "tool")


class _StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    include_usage: bool | None = None


class _Body(BaseModel):
    """The chat-completions fields tierline translates, typed as OpenAI documents them."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str = Field(min_length=1)
    messages: list[Any] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None


_KNOWN = set(_Body.model_fields) | set(DEFAULT_ONLY)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, read strictly; a 400 saying what is wrong otherwise."""
    try:
        data = loads_strict(raw)
    except StrictJSONError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request(f"the body must be a JSON object, not {type(data).__name__}")
    return data


def to_route_request(
    body: dict[str, Any],
    *,
    request_id: str,
    tenant: str,
    catalog: Catalog,
    hints: dict[str, Any] | None = None,
) -> RouteRequest:
    """The `RouteRequest` the body asks for, as `tenant`, under `request_id`, with the
    routing `hints` the caller's headers set (`hint_headers`) beside the model's."""
    _refuse_extras(body)
    try:
        fields = _Body.model_validate(body)
    except ValidationError as exc:
        raise _field_error(exc) from None
    if (
        fields.max_tokens is not None
        and fields.max_completion_tokens is not None
        and fields.max_tokens != fields.max_completion_tokens
    ):
        raise bad_request(
            "max_tokens and max_completion_tokens differ; send one of them",
            "max_completion_tokens",
        )
    if fields.stream_options is not None and not fields.stream:
        raise bad_request("stream_options is only allowed when stream is true", "stream_options")
    choice = choose(fields.model, catalog)
    metadata = dict(fields.metadata or {})
    feature = metadata.pop("feature", None)
    request = {
        "id": request_id,
        "tenant": tenant,
        "messages": [_message(m, i) for i, m in enumerate(fields.messages)],
        "params": {
            "max_tokens": fields.max_completion_tokens or fields.max_tokens,
            "temperature": fields.temperature,
            "top_p": fields.top_p,
            "stop": fields.stop,
            "response_format": fields.response_format,
            "tools": fields.tools or None,  # [] is no tools
            "tool_choice": fields.tool_choice,
            "parallel_tool_calls": fields.parallel_tool_calls,
            "stream": bool(fields.stream),
        },
        "hints": choice.hints(**(hints or {})),
        "metadata": {"feature": feature, "user": fields.user, "tags": metadata},
        "created_at": datetime.now(UTC),
    }
    try:
        return RouteRequest.model_validate(request)
    except ValidationError as exc:
        raise _field_error(exc, _PARAM_OF) from None


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    """Whether a streamed call asked for the usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _refuse_extras(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in SMUGGLED:
            raise bad_request(f"{name!r} is not accepted in the body: {SMUGGLED[name]}", name)
        if value is None:  # null is absent, as OpenAI's API reads it
            continue
        if name in _BOOLEANS and not isinstance(value, bool):
            raise bad_request(f"{name}: Input should be a valid boolean", name)
        if name in DEFAULT_ONLY and value not in DEFAULT_ONLY[name]:
            if name in _UNSUPPORTED_FEATURE:
                raise unsupported(_UNSUPPORTED_FEATURE[name], name)
            raise unsupported(f"{name}={value!r}", name)
        if name not in _KNOWN:
            raise unsupported(f"the parameter {name!r}", name)


def _message(raw: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", where)
    role = raw.get("role")
    if role == "function" or raw.get("function_call"):
        raise unsupported("the deprecated functions API (function messages; use tools)", where)
    if role not in _ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(_ROLES)}", f"{where}.role")
    for name, value in raw.items():
        # an answer passed back as the next turn's history carries its output-only fields
        if name in _MESSAGE_FIELDS or name in _ANSWER_ONLY or value in (None, [], {}):
            continue
        raise unsupported(f"the message field {name!r}", f"{where}.{name}")
    try:
        ChatMessage.model_validate(raw)
    except ValidationError as exc:
        raise _field_error(exc, prefix=where) from None
    # an answer passed back carries `tool_calls: null` or `[]` when it called nothing
    return {
        name: raw[name]
        for name in _MESSAGE_FIELDS
        if name in raw and (name != "tool_calls" or raw[name])
    }


#: where a field of `RouteRequest` came from in the OpenAI body
_PARAM_OF = {
    ("params", "max_tokens"): "max_completion_tokens",
    ("metadata", "feature"): "metadata.feature",
    ("metadata", "user"): "user",
    ("metadata", "tags"): "metadata",
}


def _field_error(
    exc: ValidationError, renames: dict[tuple[str, str], str] | None = None, prefix: str = ""
) -> GatewayError:
    """A 400 for the first error, naming the field as the caller wrote it."""
    error = exc.errors(include_url=False)[0]
    loc = [part for part in error["loc"] if isinstance(part, int) or _is_field(str(part))]
    named = (renames or {}).get((str(loc[0]), str(loc[1]))) if len(loc) > 1 else None
    if named is None:
        named = _dotted(loc)
        if prefix:
            named = f"{prefix}.{named}" if named else prefix
        elif len(loc) > 1 and loc[0] == "params":
            named = _dotted(loc[1:])  # params are top-level fields in the OpenAI body
    message = str(error["msg"]).removeprefix("Value error, ")
    return bad_request(f"{named or 'the body'}: {message}", named or None)


def _is_field(part: str) -> bool:
    """A field name, not a union member's tag (`str`, `list[str]`, `function-after[...]`)."""
    return part.isidentifier() and part not in ("str", "int", "float", "bool", "list", "dict")


def _dotted(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
