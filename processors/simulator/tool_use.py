"""When the simulated model calls a tool, which one, and with what arguments.

Each wire module reads its format's tools into a `ToolAsk`: the offered tools
(name and parameter schema), the tool choice (`auto`, `none`, `any` for
OpenAI's `required` / Anthropic's `any` / Gemini's `ANY`, or one named tool),
whether parallel calls are allowed, and whether the conversation's last turn
is tool results (with their text). The model then answers deterministically:

* after tool results it writes text that quotes the result, unless the choice
  forces a call (`any` or a named tool), which the real APIs honour every turn;
* otherwise it calls the tools the last user message asks for with "call
  <name>" (in the order asked; only the first when parallel calls are off);
* a forcing choice without such a request calls the named tool, or, for `any`,
  the first one offered; `none` never calls.

Arguments satisfy the tool's schema in the simple cases: every `required`
property (every property when the schema has no `required` list), with a
`const`, the first `enum` value, or a value of the property's type (strings
name the argument and the model), nested objects and arrays alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tierline.processors.simulator.schema_values import value_for

__all__ = ["SimTool", "SimToolCall", "ToolAsk", "arguments_for", "planned_calls"]

Choice = Literal["auto", "none", "any", "tool"]


@dataclass(frozen=True, slots=True)
class SimTool:
    name: str
    schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SimToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class ToolAsk:
    """What a request offers and asks of tools, whatever the wire format."""

    tools: tuple[SimTool, ...] = ()
    choice: Choice = "auto"
    forced: str | None = None
    """The tool a `tool` choice names."""
    parallel: bool = True
    after_results: bool = False
    """The conversation's last turn is tool results."""
    result_text: str = ""
    """Their text, joined."""


def _asked(text: str, tools: tuple[SimTool, ...]) -> list[str]:
    """The tools `text` asks for with "call <name>", in the order asked."""
    found: list[tuple[int, str]] = []
    for tool in tools:
        hit = re.search(rf"\bcall\s+`?{re.escape(tool.name)}(?![\w-])", text, re.IGNORECASE)
        if hit is not None:
            found.append((hit.start(), tool.name))
    return [name for _, name in sorted(found)]


def planned_calls(ask: ToolAsk | None, last_user_text: str, model: str) -> list[SimToolCall]:
    """The calls the model makes (see the module docstring); empty = it writes text."""
    if ask is None or not ask.tools or ask.choice == "none":
        return []
    forcing = ask.choice in ("any", "tool")
    if ask.after_results and not forcing:
        return []
    names = [] if ask.after_results else _asked(last_user_text, ask.tools)
    if ask.choice == "tool":
        names = [ask.forced] if ask.forced else []
    elif not names and ask.choice == "any":
        names = [ask.tools[0].name]
    if not ask.parallel:
        names = names[:1]
    schemas = {t.name: t.schema for t in ask.tools}
    return [
        SimToolCall(name, arguments_for(schemas.get(name, {}), model))
        for name in names
        if name in schemas
    ]


def arguments_for(schema: Any, model: str) -> dict[str, Any]:
    """Arguments that satisfy a simple object schema (see the module docstring)."""
    value = value_for(schema, "arguments", model, required_only=True)
    return value if isinstance(value, dict) else {}
