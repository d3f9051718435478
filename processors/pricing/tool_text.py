"""The tool text of a prompt: what it holds besides its messages' text, to count as tokens.

A provider bills the tools a request offers (their names, descriptions and
parameter schemas, rendered into the prompt) and the tool calls of its history
(each function's name and arguments) as prompt tokens, though no message's
`text()` holds them. Token counts and cost estimates count this text too, at
the rate they count any other (`processors.providers.tokens`,
`processors.routing.cost_cap`).
"""

from __future__ import annotations

import orjson

from tierline.schemas import RouteRequest


def tool_text(request: RouteRequest) -> str:
    """The tool definitions (as JSON) and the history's calls, as one text; "" without tools."""
    pieces = []
    tools = request.params.tools
    if tools:
        dumped = [t.model_dump(mode="json", exclude_none=True) for t in tools]
        pieces.append(orjson.dumps(dumped).decode())
    for m in request.messages:
        for call in m.tool_calls or ():
            pieces.append(f"{call.function.name}({call.function.arguments})")
    return "\n".join(pieces)
