"""The wire-neutral request: what each wire module parses a provider request into.

Everything past parsing (directives, the draw, caching, the reply) reads only
this view, so the three wire formats share one behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierline.processors.simulator.tool_use import ToolAsk

__all__ = ["SimRequest", "estimate_tokens"]


@dataclass(slots=True)
class SimRequest:
    """A provider request as the simulator sees it, whatever wire format carried it."""

    model: str
    text_chars: int
    """Characters of all message text (system included)."""
    n_messages: int
    """Messages, counting a separate system prompt as one."""
    first_text: str
    """The system prompt, or the first message: the cacheable prefix."""
    last_user_text: str
    max_tokens: int | None
    wants_json: bool = False
    json_schema: dict[str, Any] | None = None
    cache_marked: bool = False
    """The request marks a block with cache_control (Anthropic)."""
    cache_ttl: str = "5m"
    """How long a cache write lasts: `1h` when a marker asks for the 1-hour cache (Anthropic;
    1-hour markers must come before 5-minute ones, so the cached prefix is the first)."""
    tools: ToolAsk | None = None
    """The tools offered and the tool choice, when the request has tools (`tool_use`)."""


def estimate_tokens(chars: int, messages: int) -> int:
    """Input tokens: ceil(characters / 4) plus 3 per message."""
    return -(-chars // 4) + 3 * messages
