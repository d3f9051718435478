"""Tool (function) calling, in OpenAI's chat-completions shape: definitions, choice, calls.

A request offers tools in `params.tools`, each `{"type": "function", "function":
{"name", "description", "parameters"}}` where `parameters` is a JSON Schema
object; `params.tool_choice` is `"auto"`, `"none"`, `"required"` or `{"type":
"function", "function": {"name"}}`; `params.parallel_tool_calls` allows or
forbids several calls in one answer. An answer that calls tools carries
`tool_calls`, each `{"id", "type": "function", "function": {"name",
"arguments"}}` with the arguments as a JSON string, and `finish_reason`
`"tool_calls"`. The conversation goes on with the assistant's turn (its
`tool_calls`) and one `role: "tool"` message per call, naming it by
`tool_call_id`. Every provider adapter translates to and from this shape
(https://platform.openai.com/docs/api-reference/chat/create,
https://platform.openai.com/docs/guides/function-calling).

Tool names are the intersection of what the three wire formats accept, so a
request is valid whichever provider serves it: OpenAI's and Anthropic's
`^[a-zA-Z0-9_-]{1,64}$` and Gemini's "must start with a letter or an underscore".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
#: OpenAI's limit on the number of tools of one request
MAX_TOOLS = 128


class FunctionDefinition(BaseModel):
    """What a function tool is called, what it does, and the JSON Schema of its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=16_384)
    #: a JSON Schema object; unset = a function without arguments
    parameters: dict[str, Any] | None = None
    #: OpenAI's structured-outputs switch for the arguments (passed on where understood)
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _an_object_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        kind = schema.get("type", "object")
        if kind != "object":
            raise ValueError(f"parameters must be a JSON Schema of type object, not {kind!r}")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict) or not all(
            isinstance(p, dict) for p in properties.values()
        ):
            raise ValueError("parameters.properties must map each argument to its schema")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ValueError("parameters.required must be a list of argument names")
        return schema


class Tool(BaseModel):
    """One tool a model may call: a function (the only kind every provider has)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolChoiceFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN)


class NamedToolChoice(BaseModel):
    """`tool_choice` forcing one tool: `{"type": "function", "function": {"name": ...}}`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: ToolChoiceFunction


#: `auto` (the model decides), `none` (no calls), `required` (at least one), or one tool
ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class FunctionCall(BaseModel):
    """The function a tool call names, with its arguments as a JSON string."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    #: JSON text, as the model wrote it (a history passed back is not re-validated)
    arguments: str = Field(default="{}", max_length=1_000_000)


class ToolCall(BaseModel):
    """A tool call in an answer, or in an assistant turn of the history."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall
    #: provider state to send back with the call: Gemini's thought signature as its
    #: OpenAI-compatible API carries it, `{"google": {"thought_signature": "..."}}`
    #: (https://ai.google.dev/gemini-api/docs/thought-signatures)
    extra_content: dict[str, Any] | None = None


def check_tool_params(tools: Sequence[Tool] | None, choice: ToolChoice | None) -> None:
    """Names unique; a forcing `tool_choice` needs tools, and a named one a tool of that name."""
    names = [t.function.name for t in tools or ()]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"tools: each name once; repeated: {', '.join(twice)}")
    if choice is None or choice == "none":
        return
    if not names:
        raise ValueError("tool_choice needs tools")
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise ValueError(f"tool_choice names {choice.function.name!r}, which is not in tools")
