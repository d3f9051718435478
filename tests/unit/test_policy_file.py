"""The policy file: the example parses, sections layer over defaults, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.policy_support import make_catalog
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_file import (
    PolicyFileError,
    load_policy,
    parse_policy,
    problems,
)
from tierline.processors.routing.sensitivity_filter import SAFE_DEFAULTS
from tierline.processors.routing.tier_rules import Thresholds, TierRules
from tierline.schemas import Tier

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "policy.example.toml"


def test_the_example_file_parses_and_matches_the_bundled_catalog() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.routing.thresholds == Thresholds(0.45, 0.7)
    assert policy.routing.confidence_floor == 0.3
    acme = policy.routing.tenants["acme"]
    assert acme.thresholds == Thresholds(0.6, 0.9)
    assert acme.allowed_tiers == frozenset({Tier.ECONOMY, Tier.STANDARD, Tier.BATCH})
    assert policy.routing.tenants["bigbank"].thresholds is None
    assert [f.task for f in policy.routing.floors] == ["code", "extraction"]
    assert policy.cascade.tasks == {"extraction", "classification"}
    assert policy.sensitivity.approvals["secret"] == frozenset()
    assert policy.sensitivity.unlisted == "deny"
    assert [e.name for e in policy.experiments] == ["triage-nano-vs-flash"]
    assert problems(policy, load_catalog()) == []


def test_an_empty_file_is_the_defaults() -> None:
    defaults = Policy(routing=TierRules(Thresholds(0.45, 0.7)))
    policy = parse_policy("", defaults=defaults)
    assert policy == defaults
    assert policy.sensitivity == SAFE_DEFAULTS  # secrets refused, pii/financial recorded


def test_missing_values_come_from_the_defaults() -> None:
    defaults = Policy(routing=TierRules(Thresholds(0.45, 0.7), confidence_floor=0.2))
    policy = parse_policy(
        "[routing]\npremium_threshold = 0.8\n[tenants.a]\nstandard_threshold = 0.5\n",
        defaults=defaults,
    )
    assert policy.routing.thresholds == Thresholds(0.45, 0.8)
    assert policy.routing.confidence_floor == 0.2
    assert policy.routing.tenants["a"].thresholds == Thresholds(0.5, 0.8)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[routing]\nstandard_treshold = 0.4\n", "standard_treshold"),
        ("[routing]\nstandard_threshold = 0.9\npremium_threshold = 0.5\n", "thresholds"),
        ("[routing]\nconfidence_floor = 2\n", "confidence_floor"),
        ("[tenants.a]\nallowed_tiers = ['gold']\n", "allowed_tiers"),
        ("[tenants.a]\nallowed_tiers = ['batch']\n", "allowed_tiers"),
        ("[[floors]]\ntask = 'qa'\nmin_tier = 'batch'\n", "min_tier"),
        ("[sensitivity]\npii = 'openai'\n", "sensitivity.pii"),
        ("[sensitivity]\nunlisted = 'maybe'\n", "unlisted"),
        ("[[experiments]]\nname = 'x'\ntask = 't'\nshare = 0.1\narms = []\n", "arms"),
        (
            "[[experiments]]\nname = 'has space'\ntask = 't'\nshare = 0.1\n"
            "arms = [{name = 'a', models = ['m']}, {name = 'b', models = ['m']}]\n",
            "name",
        ),
        (
            "[[experiments]]\nname = 'x'\ntask = 't'\nshare = 0.1\n"
            "arms = [{name = 'a', models = ['m']}, {name = 'b', models = ['m']}]\n"
            "[[experiments]]\nname = 'x'\ntask = 'u'\nshare = 0.1\n"
            "arms = [{name = 'a', models = ['m']}, {name = 'b', models = ['m']}]\n",
            "unique",
        ),
        ("routing = [", "not valid TOML"),
        ("version = 2\n", "version"),
    ],
)
def test_mistakes_are_named(text: str, says: str) -> None:
    with pytest.raises(PolicyFileError, match=says):
        parse_policy(text, source="policy.toml")


def test_problems_name_models_the_catalog_lacks() -> None:
    policy = parse_policy(
        "[[experiments]]\nname = 'x'\ntask = 't'\nshare = 0.1\n"
        "arms = [{name = 'a', models = ['e1']}, {name = 'b', models = ['nope']}]\n"
    )
    assert problems(policy, make_catalog()) == ["experiment x arm b: unknown models ['nope']"]
