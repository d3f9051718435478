"""The policy file's `[trimming]` section: defaults, layering, strict parsing, the example."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_file import PolicyFileError, load_policy, parse_policy
from tierline.processors.routing.trim_rules import TrimRules
from tierline.schemas import RouteRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "policy.example.toml"


def test_without_the_section_trimming_is_on_with_its_defaults() -> None:
    rules = parse_policy("").trimming
    assert rules == TrimRules()
    assert (rules.enabled, rules.strategy, rules.min_turns, rules.headroom_tokens) == (
        True,
        "recent",
        2,
        256,
    )


def test_each_key_it_sets_replaces_the_default() -> None:
    base = Policy(trimming=TrimRules(min_turns=4))
    rules = parse_policy("[trimming]\nheadroom_tokens = 1000\n", defaults=base).trimming
    assert rules == TrimRules(min_turns=4, headroom_tokens=1000)
    off = parse_policy('[trimming]\nenabled = false\nstrategy = "recent"\n').trimming
    assert off == TrimRules(enabled=False)


def test_the_example_file_documents_the_section() -> None:
    assert load_policy(EXAMPLE).trimming == TrimRules(
        enabled=True, strategy="recent", min_turns=2, headroom_tokens=256
    )
    assert "[trimming]" in EXAMPLE.read_text()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[trimming]\nstrategy = "summarize"\n', "trimming.strategy"),
        ("[trimming]\nmin_turns = 0\n", "trimming.min_turns"),
        ("[trimming]\nheadroom_tokens = -1\n", "trimming.headroom_tokens"),
        ('[trimming]\nenabled = "yes"\n', "trimming.enabled"),
        ("[trimming]\nenabled = 1\n", "trimming.enabled"),
        ("[trimming]\nmax_turns = 3\n", "trimming.max_turns"),
    ],
)
def test_mistakes_are_named(text: str, says: str) -> None:
    with pytest.raises(PolicyFileError, match=says):
        parse_policy(text)


def test_a_request_opts_out_with_its_hint() -> None:
    def request(**hints: object) -> RouteRequest:
        return RouteRequest.model_validate(
            {
                "id": "r",
                "tenant": "t",
                "messages": [{"role": "user", "content": "hi"}],
                "hints": hints,
            }
        )

    assert TrimRules().applies_to(request())
    assert TrimRules().applies_to(request(trim=True))
    assert not TrimRules().applies_to(request(trim=False))
    assert not TrimRules(enabled=False).applies_to(request(trim=True))
