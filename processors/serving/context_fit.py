"""Whether a request fits a model's context window, and when it does not, what history does.

Where trimming happens, and why there: in the tier worker, for the model it is
about to call. The router does not look at context windows; the candidate walk
(`processors.serving.walk`) asks this module, model by model, how the request
goes to each: as it is, trimmed, or not at all (skipped, as before trimming). A
model whose window is too small for the whole history stays a candidate when a
trimmed history fits it, and the walk then sends that model, and only that
model, the trimmed history: a bigger model further down the candidates still
gets the whole one. So the answer comes from what was sent, the call's rate
budget and estimated cost are taken on it, and the bill is the provider's usage
for it. Token counts are the worker's own (`processors.providers.tokens`:
tiktoken for OpenAI's models, an upper-leaning estimate elsewhere), which the
router, below the providers in the layering, cannot make; and the policy is the
one the workers already read for `[cache]`. The router's `max_cost_usd` estimate
is made on the whole history, so a trimmed call costs less than it allowed.

The rule, for a model with a context window, when `[trimming]` applies
(`TrimRules.applies_to`: enabled, and the request does not say `hints.trim =
false`):

1. the budget is the window less the answer's room (`params.max_tokens`, else
   the policy's `default_output_tokens` capped by the model's
   `max_output_tokens`) and `headroom_tokens`; a prompt within it goes as it is;
2. otherwise the strategy (`recent`: `processors.serving.trimming`) trims the
   history to the budget, and the model is sent that, the reasons saying
   "trimmed 6 oldest messages to fit gpt-4.1-nano's 128k window (...)";
3. when no trim fits (even the system prompts and the last user turn are too
   long, or fewer than `min_turns` messages would be left), the request is
   judged as without trimming: sent whole when its prompt fits the window
   (the answer's room is the provider's business then), else the model is
   skipped.

Without `[trimming]` applying, only step 3's judgment is made, which is the
behaviour from before trimming.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.tokens import count_prompt_tokens, fits
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_reload import FixedPolicy, PolicySource
from tierline.processors.routing.trim_rules import TrimRules
from tierline.processors.serving.trimming import Trimmed, keep_recent
from tierline.schemas import RouteRequest


@dataclass(frozen=True, slots=True)
class Fit:
    """How a request goes to one model: `ok` (as it is, or `trimmed`) or not at all."""

    ok: bool
    #: the prompt's tokens that decided it (of the trimmed history, when trimmed)
    tokens: int
    trimmed: Trimmed | None = None
    #: what the reasons say about a trim
    reason: str = ""


def output_room(request: RouteRequest, model: ModelSpec, default_output: int) -> int:
    """The tokens left free for the answer: `max_tokens`, else the policy's typical answer,
    no more than the model can write."""
    if request.params.max_tokens is not None:
        return request.params.max_tokens
    bound = model.max_output_tokens
    return min(default_output, bound) if bound else default_output


def fit_model(
    request: RouteRequest, model: ModelSpec, rules: TrimRules, default_output: int
) -> Fit:
    """How `request` goes to `model` (see the module docstring)."""
    window = model.context_window
    if not window:
        return Fit(True, 0)
    family = model.provider
    if rules.applies_to(request):
        budget = window - output_room(request, model, default_output) - rules.headroom_tokens
        if budget > 0:
            ok, tokens = fits(request, family, budget)
            if ok:
                return Fit(True, tokens)
            trimmed = keep_recent(
                request, lambda r: count_prompt_tokens(r, family), budget, rules.min_turns
            )
            if trimmed is not None:
                return Fit(True, trimmed.tokens, trimmed, _reason(model, window, tokens, trimmed))
    ok, tokens = fits(request, family, window)
    return Fit(ok, tokens)


class ContextFitter:
    """`fit_model` under the current policy's `[trimming]` and `default_output_tokens`."""

    def __init__(self, policy: PolicySource | None = None) -> None:
        self.policy: PolicySource = policy or FixedPolicy(Policy())

    def fit(self, model: ModelSpec, request: RouteRequest) -> Fit:
        current = self.policy.current()
        return fit_model(request, model, current.trimming, current.default_output_tokens)


def window_label(window: int) -> str:
    """A window as people say it: "128k" for 128,000 tokens, else "1,047,576-token"."""
    return f"{window // 1000}k" if window % 1000 == 0 else f"{window:,}-token"


def _reason(model: ModelSpec, window: int, before: int, trimmed: Trimmed) -> str:
    n = trimmed.dropped
    return (
        f"trimmed {n} oldest message{'s' if n != 1 else ''} to fit {model.name}'s "
        f"{window_label(window)} window (prompt ~{before} -> ~{trimmed.tokens} tokens)"
    )
