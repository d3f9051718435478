"""Reading a provider's JSON defensively: one place where a bad body becomes `invalid_response`.

Providers' success bodies are parsed with plain dict access; anything missing,
mistyped or unparseable raises `KeyError`/`TypeError`/`ValueError`, which
`invalid_response()` turns into the typed error. Token counts must be
non-negative integers: a provider that reports `"12"` or `-1` is not trusted.
"""

from __future__ import annotations

from typing import Any

import orjson

from tierline.processors.errors import ProviderError
from tierline.schemas import ErrorType

#: what a malformed success body raises while it is read
MALFORMED = (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; raises `ValueError` when it is not one."""
    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def invalid_response(what: str, exc: BaseException, status: int) -> ProviderError:
    return ProviderError(
        ErrorType.INVALID_RESPONSE, f"unparseable {what}: {exc!r}"[:300], status=status
    )


def dig(obj: Any, dotted: str) -> Any:
    """`obj["a"]["b"]` for "a.b"; None when any step is missing."""
    for step in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def tokens(value: Any) -> int:
    """A token count: absent (None) is 0; anything but a non-negative integer is malformed."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad token count {value!r}")
    return value


def first_count(usage: Any, paths: tuple[str, ...]) -> int:
    """The first of `paths` present in `usage`, as a token count (0 when none is)."""
    for path in paths:
        value = dig(usage, path)
        if value is not None:
            return tokens(value)
    return 0


def error_fields(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(message, code, the error object) from an error body, whatever its shape.

    Shapes seen: `{"error": {"message", "code"|"type"|"status"}}` (OpenAI,
    Gemini, DeepSeek, Groq, OpenRouter, Together), `{"type": "error", "error":
    {"type", "message"}}` (Anthropic), `{"object": "error", "message", "type"}`
    (Mistral, vLLM), `{"error": "text"}` (Ollama) and non-JSON pages (a proxy's HTML).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace").strip(), "", {}
    if not isinstance(data, dict):
        return str(data)[:200], "", {}
    error = data.get("error")
    if isinstance(error, str):
        return error, "", {}
    obj = error if isinstance(error, dict) else data
    message = obj.get("message")
    if not isinstance(message, str):
        message = str(obj.get("detail") or obj)[:300]
    codes = [obj.get(k) for k in ("code", "type", "status")]
    code = " ".join(str(c) for c in codes if isinstance(c, str) and c)
    return message, code, obj
