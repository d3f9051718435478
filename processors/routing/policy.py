"""`Policy`: everything a routing decision obeys, in one immutable value.

The tier rules (`TierRules`: thresholds, confidence floor, tenants,
floors), which tasks are served by a cascade, which providers may receive
sensitive data, the running experiments, which answers the tier workers
may take from the response cache, and when they may trim a history to fit.
It is immutable, so the router can swap in a reloaded one between two messages
without a lock (`processors.policy_reload`), and one message is routed under
one policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tierline.processors.routing.cost_cap import DEFAULT_OUTPUT_TOKENS
from tierline.processors.routing.experiments import Experiment
from tierline.processors.routing.sensitivity_filter import SAFE_DEFAULTS, SensitivityRules
from tierline.processors.routing.tier_rules import TierRules
from tierline.processors.routing.trim_rules import TrimRules
from tierline.processors.spend.budgets import Budgets


@dataclass(frozen=True, slots=True)
class CascadeRules:
    """Tasks whose requests try the cheapest allowed tier first and escalate on a failed check.

    Worth it where a cheap check tells a good answer from a bad one: JSON that
    must parse (and match a schema), short labels, extraction. The check
    itself is `processors.answer_check`.
    """

    tasks: frozenset[str] = frozenset()

    def applies_to(self, task: str) -> bool:
        return task in self.tasks


@dataclass(frozen=True, slots=True)
class CacheRules:
    """When a tier worker answers from its response cache, and how much it keeps.

    A request is answered from the cache only when it says so (`hints.cache = true`),
    or when it asks for temperature 0 and `temperature_zero` is on; `hints.cache =
    false` keeps it out either way, and `enabled = false` turns the cache off. An
    answer is served for `ttl_s` after it was first given; each worker keeps at most
    `max_entries` answers and `max_bytes` of them, dropping the least recently used.
    """

    enabled: bool = True
    ttl_s: float = 3600.0
    temperature_zero: bool = False
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Policy:
    routing: TierRules = field(default_factory=TierRules)
    cascade: CascadeRules = field(default_factory=CascadeRules)
    sensitivity: SensitivityRules = SAFE_DEFAULTS
    experiments: tuple[Experiment, ...] = ()
    #: the output-token estimate for `max_cost_usd` when a request sets no max_tokens
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS
    #: spend budgets per tenant (and feature), held by the router's ledger
    budgets: Budgets = field(default_factory=Budgets)
    #: the tier workers' response cache
    cache: CacheRules = field(default_factory=CacheRules)
    #: the tier workers' trimming of histories too long for a model's window
    trimming: TrimRules = field(default_factory=TrimRules)
    #: where it came from (a path and its mtime, or "defaults"), for logs
    source: str = field(default="defaults", compare=False)

    @classmethod
    def of(cls, policy: Policy | TierRules) -> Policy:
        """A `Policy`, given one or only its tier rules."""
        return policy if isinstance(policy, Policy) else cls(routing=policy)
