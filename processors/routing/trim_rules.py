"""`TrimRules`: when a request's history may be trimmed to fit a model's context window.

The `[trimming]` section of the policy file. A tier worker about to call a model
whose context window the request's prompt (plus room for its answer) overflows
may send it a shorter history instead of skipping the model
(`processors.serving.context_fit`): the system prompts and the most recent
turns, no fewer than `min_turns` messages, with `headroom_tokens` to spare. A
request opts out with `hints.trim = false`; `enabled = false` turns trimming off
for every request. Either way such a request keeps the behaviour from before
trimming: the model is skipped, and a request no candidate fits is `no_candidate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tierline.schemas import RouteRequest

#: how a history is shortened; "recent" keeps the system prompts and the latest turns
#: (a "summarize" strategy, which would replace old turns by a summary, may join it)
TrimStrategy = Literal["recent"]
STRATEGIES: tuple[TrimStrategy, ...] = ("recent",)


@dataclass(frozen=True, slots=True)
class TrimRules:
    """Whether, how, and how far a tier worker trims a history to fit a context window."""

    enabled: bool = True
    strategy: TrimStrategy = "recent"
    #: the fewest recent (non-system) messages worth keeping: a history that fits only
    #: with fewer is not trimmed, and the model is skipped
    min_turns: int = 2
    #: tokens kept free besides the answer's, a margin for the token counts' error
    headroom_tokens: int = 256

    def applies_to(self, request: RouteRequest) -> bool:
        """Whether `request`'s history may be trimmed: on, and not refused by its hints."""
        return self.enabled and request.hints.trim
