"""Trimming a conversation to a token budget: the system prompts and the most recent turns.

The "recent" strategy drops the oldest turns, as few as it must. Picture the
history as a line of messages with the system (and developer) prompts pinned
in place: a cut before message `i` drops every non-system message before `i`
and keeps everything from `i` on. A cut is only allowed:

* before a `user` message, so the kept history opens with a user turn (as some
  providers require) and the last user turn is never dropped: the latest cut
  is before it;
* where it splits no tool exchange: an assistant message with `tool_calls` and
  the `tool` messages answering it (by `tool_call_id`) are kept or dropped
  together; a cut between them is not a cut point.

Of the allowed cuts, the earliest whose history fits the budget wins (found by
bisection: dropping more never counts more tokens), provided it keeps at least
`min_turns` non-system messages; when none does, there is no trim (None) and
the caller treats the request as too long, as it did before trimming.

Tokens are counted by the caller's function over a whole request
(`processors.providers.tokens`), so what is counted is exactly what is sent,
the tools it offers and the calls left in its history included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tierline.schemas import RouteRequest
from tierline.schemas.messages import ChatMessage

#: roles that are instructions, not turns: never dropped
SYSTEM_ROLES = frozenset({"system", "developer"})

Count = Callable[[RouteRequest], int]


@dataclass(frozen=True, slots=True)
class Trimmed:
    """A request with its oldest turns dropped: what a model is sent instead of the original."""

    request: RouteRequest
    #: messages left out
    dropped: int
    #: the prompt's tokens, as counted, after the trim
    tokens: int


def keep_recent(
    request: RouteRequest, count: Count, budget: int, min_turns: int = 1
) -> Trimmed | None:
    """`request` with the fewest oldest turns dropped that brings it within `budget` tokens
    (see the module docstring); None when no allowed cut does. For a history the caller
    found too long whole: at least one message is dropped."""
    messages = request.messages
    cuts = [c for c in cut_points(messages) if _kept_turns(messages, c) >= min_turns]
    if budget <= 0 or not cuts:
        return None

    def trimmed(cut: int) -> Trimmed:
        kept = [m for i, m in enumerate(messages) if i >= cut or m.role in SYSTEM_ROLES]
        shorter = request.model_copy(update={"messages": kept})
        return Trimmed(shorter, len(messages) - len(kept), count(shorter))

    best = trimmed(cuts[-1])
    if best.tokens > budget:
        return None
    low, high = 0, len(cuts) - 1  # cuts[high] fits; find the earliest that does
    while low < high:
        middle = (low + high) // 2
        attempt = trimmed(cuts[middle])
        if attempt.tokens <= budget:
            best, high = attempt, middle
        else:
            low = middle + 1
    return best


def cut_points(messages: Sequence[ChatMessage]) -> list[int]:
    """The indices a history may be cut before, ascending: each a `user` message that is
    not the first turn, with no tool exchange spanning it."""
    split = [False] * (len(messages) + 1)
    for j, message in enumerate(messages):
        if message.role != "tool" or message.tool_call_id is None:
            continue
        asked = _asked_at(messages, j, message.tool_call_id)
        for i in range(asked + 1, j + 1) if asked is not None else ():
            split[i] = True  # a cut here would keep the result and drop its call
    first_turn = next((i for i, m in enumerate(messages) if m.role not in SYSTEM_ROLES), None)
    return [
        i
        for i, m in enumerate(messages)
        if m.role == "user" and first_turn is not None and i > first_turn and not split[i]
    ]


def _asked_at(messages: Sequence[ChatMessage], answer: int, call_id: str) -> int | None:
    """The index of the assistant message, before `answer`, that made call `call_id`."""
    for i in range(answer - 1, -1, -1):
        calls = messages[i].tool_calls
        if calls and any(call.id == call_id for call in calls):
            return i
    return None


def _kept_turns(messages: Sequence[ChatMessage], cut: int) -> int:
    return sum(1 for m in messages[cut:] if m.role not in SYSTEM_ROLES)
