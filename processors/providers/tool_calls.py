"""Tool calls between our OpenAI shape and the wire formats whose arguments are objects.

OpenAI carries a call's arguments as a JSON *string* (`function.arguments`);
Anthropic (`tool_use.input`) and Gemini (`functionCall.args`) carry a JSON
*object*. Going out, `arguments_of` parses the string (a history holding
arguments that are not a JSON object is sent as `{"arguments": <the text>}`
rather than refused: the model wrote them). Coming back, `call_from` writes the
object as compact JSON text. Gemini names a function's result by the function's
name, not by a call id: `names_by_call_id` recovers it from the assistant turns.
Mistral takes only 9-character alphanumeric call ids: `nine_char_id` turns any
other id into one, the same every time, so a call and its result still match.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable
from typing import Any

import orjson

from tierline.schemas import FunctionCall, ToolCall
from tierline.schemas.messages import ChatMessage
from tierline.schemas.tools import NamedToolChoice, ToolChoice


def arguments_of(call: ToolCall) -> dict[str, Any]:
    """The call's arguments as an object, for the wire formats that send objects."""
    raw = call.function.arguments
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def arguments_text(args: Any) -> str:
    """Arguments a provider gave as an object (or already as text) as OpenAI's JSON string."""
    if isinstance(args, str):
        return args
    if args is None:
        return "{}"
    return orjson.dumps(args).decode()


def call_from(
    call_id: str, name: Any, args: Any, *, extra_content: dict[str, Any] | None = None
) -> ToolCall:
    """One normalized tool call; raises `ValueError`/`TypeError` on a malformed one."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool call without a function name: {name!r}")
    return ToolCall(
        id=call_id,
        function=FunctionCall(name=name, arguments=arguments_text(args)),
        extra_content=extra_content,
    )


def names_by_call_id(messages: Iterable[ChatMessage]) -> dict[str, str]:
    """Each call id of the history's assistant turns, to the function it called."""
    return {
        call.id: call.function.name
        for m in messages
        if m.role == "assistant"
        for call in m.tool_calls or ()
    }


_NINE = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = string.ascii_letters + string.digits


def nine_char_id(call_id: str) -> str:
    """`call_id` if it is 9 letters or digits, else a 9-character digest of it."""
    if _NINE.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.blake2b(call_id.encode(), digest_size=8).digest(), "big")
    out = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(out)


def forced_name(choice: ToolChoice | None) -> str | None:
    """The one tool a `tool_choice` forces, if it names one."""
    return choice.function.name if isinstance(choice, NamedToolChoice) else None
