"""A tenant's reply_to may name its own topics only: not another tenant's, not tierline's."""

from __future__ import annotations

import pytest

from tierline.processors.routing.reply_topics import ReplyTopicRules, rules_from

RULES = rules_from("tierline.", "tierline.responses")


@pytest.mark.parametrize("topic", ["tierline.responses", "acme.replies", "acme.llm-replies.eu"])
def test_the_shared_topic_and_the_tenants_own_prefix_are_allowed(topic: str) -> None:
    assert RULES.refusal("acme", topic) is None


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("globex.replies", "not one of tenant 'acme'"),
        ("acme", "not one of tenant 'acme'"),
        ("acmecorp.replies", "not one of tenant 'acme'"),
        ("__transaction_state", "internal"),
        ("__consumer_offsets", "internal"),
        ("tierline-router-__assignor-__leader", "not one of"),
        ("tierline.router-__assignor-__leader", "tierline's own"),
        ("tierline.requests", "tierline's own"),
        ("tierline.tier.economy", "tierline's own"),
        ("tierline.dlq", "tierline's own"),
        ("acme.replies!", "not a legal"),
        ("", "not a legal"),
    ],
)
def test_other_tenants_internal_and_tierline_topics_are_refused(topic: str, why: str) -> None:
    reason = RULES.refusal("acme", topic)
    assert reason is not None and why in reason


def test_a_tenant_name_is_taken_literally_in_patterns() -> None:
    assert RULES.refusal("a*", "a*.x") is not None  # '*' is not a legal topic character
    assert RULES.refusal("a?", "ab.replies") is not None
    assert RULES.refusal("a.b", "a.b.replies") is None
    assert RULES.refusal("a.b", "aXb.replies") is not None  # '.' is no wildcard either


def test_per_tenant_patterns_replace_the_default_for_that_tenant() -> None:
    rules = rules_from(
        "tierline.", "tierline.responses", tenants={"acme": ["replies-acme", "acme-*"]}
    )
    assert rules.refusal("acme", "replies-acme") is None
    assert rules.refusal("acme", "acme-eu") is None
    assert rules.refusal("acme", "acme.replies") is not None
    assert rules.refusal("globex", "globex.replies") is None
    assert isinstance(rules, ReplyTopicRules)


def test_no_patterns_allows_only_the_shared_topic() -> None:
    rules = rules_from("tierline.", "tierline.responses", patterns=())
    assert rules.refusal("acme", "acme.replies") is not None
    assert rules.refusal("acme", "tierline.responses") is None
