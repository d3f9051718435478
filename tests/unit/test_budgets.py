"""Budgets: the policy file's [[budgets]], the ledger's reserve-then-reconcile, the gate's
soft and hard limits, and the UTC periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.routing.budget_gate import BudgetExceeded, gate, worst_case
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.processors.routing.decide import route
from tierline.processors.routing.policy_file import PolicyFileError, parse_policy
from tierline.processors.spend.budgets import Budget, Budgets, period_start
from tierline.processors.spend.ledger import Ledger
from tierline.schemas import RouteRequest, Tier

CATALOG = load_catalog()
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

POLICY = """
[[budgets]]
tenant = "acme"
period = "day"
limit_usd = "0.010"
soft_limit_usd = "0.006"

[[budgets]]
tenant = "acme"
feature = "triage"
period = "month"
limit_usd = "0.004"

[[budgets]]
tenant = "*"
period = "day"
limit_usd = "1.00"
"""


def request(
    rid: str, tenant: str = "acme", feature: str | None = None, **hints: object
) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": rid,
            "tenant": tenant,
            "messages": [{"role": "user", "content": "Explain the refund policy in detail."}],
            "params": {"max_tokens": 500},
            "hints": hints,
            "metadata": {"feature": feature} if feature else {},
        }
    )


def test_budgets_parse_from_the_policy_file_and_cover_requests() -> None:
    budgets = parse_policy(POLICY).budgets
    assert [b.scope for b in budgets.covering("acme", "triage")] == ["acme", "acme/triage"]
    assert [b.scope for b in budgets.covering("acme", None)] == ["acme"]
    assert [b.scope for b in budgets.covering("globex", "triage")] == ["*"]
    assert budgets.covering("acme", None)[0].limit_usd == Decimal("0.010")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[budgets]]\ntenant = "a"\nperiod = "week"\nlimit_usd = "1"', "period"),
        ('[[budgets]]\ntenant = "a"\nperiod = "day"\nlimit_usd = 1.5', "write money as a string"),
        (
            '[[budgets]]\ntenant = "a"\nperiod = "day"\nlimit_usd = "1"\nsoft_limit_usd = "2"',
            "soft_limit_usd",
        ),
        ('[[budgets]]\ntenant = "a"\nperiod = "day"\nlimit = "1"', "limit"),
        (
            '[[budgets]]\ntenant = "a"\nperiod = "day"\nlimit_usd = "1"\n'
            '[[budgets]]\ntenant = "a"\nperiod = "day"\nlimit_usd = "2"',
            "two budgets",
        ),
    ],
)
def test_a_malformed_budget_is_refused_with_a_clear_message(text: str, says: str) -> None:
    with pytest.raises(PolicyFileError, match=says):
        parse_policy(text)


def test_periods_are_utc_calendar_days_and_months() -> None:
    late = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert period_start("day", late) == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_start("month", late) == datetime(2026, 12, 1, tzinfo=UTC)


def test_reserve_then_settle_is_exact_and_idempotent() -> None:
    budgets = Budgets((Budget("acme", "day", Decimal("1")),))
    ledger = Ledger()
    verdict = ledger.check(budgets, "acme", None, Decimal("0.3"), NOON)
    assert not verdict.exceeded
    assert ledger.reserve("k1", Decimal("0.3"), verdict)
    assert ledger.reserve("k1", Decimal("0.3"), verdict) == []  # a redelivery reserves once
    (key,) = ledger.accounts
    assert ledger.accounts[key].reserved == Decimal("0.3")
    assert ledger.settle("k1", Decimal("0.123456789"))
    assert ledger.settle("k1", Decimal("0.123456789")) == []  # settles once
    assert (ledger.accounts[key].spent, ledger.accounts[key].reserved) == (
        Decimal("0.123456789"),
        Decimal(0),
    )


def test_the_changelog_rebuilds_the_same_ledger() -> None:
    budgets = Budgets((Budget("acme", "day", Decimal("1")),))
    ledger = Ledger()
    log: dict[str, bytes | None] = {}
    for rid, cost in (("a", "0.1"), ("b", "0.2"), ("c", None)):
        verdict = ledger.check(budgets, "acme", None, Decimal("0.25"), NOON)
        log.update(ledger.reserve(rid, Decimal("0.25"), verdict))
        if cost is not None:
            log.update(ledger.settle(rid, Decimal(cost)))
    rebuilt = Ledger()
    for key, value in log.items():  # compaction keeps the newest value per key
        rebuilt.apply(key, value)
    assert rebuilt.accounts == ledger.accounts
    assert set(rebuilt.holds) == {"c"} == set(ledger.holds)


def test_concurrent_requests_cannot_jointly_overshoot_a_hard_cap() -> None:
    policy = parse_policy('[[budgets]]\ntenant = "acme"\nperiod = "day"\nlimit_usd = "0.010"')
    ledger = Ledger()
    admitted = refused = 0
    reserved = Decimal(0)
    for i in range(100):  # none settles yet: every worst case counts
        routed = route(request(f"r{i}", max_tier="economy"), RulesClassifier(), policy, CATALOG)
        try:
            gate(routed, policy, CATALOG, ledger, NOON)
            admitted += 1
            reserved += worst_case(routed, CATALOG, policy.default_output_tokens)
        except BudgetExceeded as exc:
            refused += 1
            assert "budget acme per day" in exc.message
    assert admitted > 0 and refused > 0
    assert reserved <= Decimal("0.010")
    (account,) = ledger.accounts.values()
    assert account.reserved == reserved and account.hard_alerted


def test_past_the_soft_limit_the_request_goes_one_tier_cheaper_and_alerts_once() -> None:
    policy = parse_policy(POLICY)
    ledger = Ledger()
    verdict = ledger.check(policy.budgets, "acme", None, Decimal("0.004"), NOON)
    ledger.reserve("earlier", Decimal("0.004"), verdict)  # a standard request more passes 0.006
    routed = route(request("s1", min_tier="standard"), RulesClassifier(), policy, CATALOG)
    standard = route(request("s2"), RulesClassifier(), policy, CATALOG)
    assert routed.decision.tier == Tier.STANDARD
    result = gate(
        standard.model_copy(
            update={
                "decision": standard.decision.model_copy(update={"tier": Tier.STANDARD}),
                "candidates": list(CATALOG.candidates(Tier.STANDARD)),
            }
        ),
        policy,
        CATALOG,
        ledger,
        NOON,
    )
    assert result.routed.decision.tier == Tier.ECONOMY
    assert any(
        "soft limit of acme per day" in r and "standard -> economy" in r
        for r in result.routed.decision.reasons
    )
    assert [a.kind for a in result.alerts] == ["soft_limit_crossed"]
    again = gate(
        route(request("s3"), RulesClassifier(), policy, CATALOG), policy, CATALOG, ledger, NOON
    )
    assert again.alerts == []  # once per period
    # min_tier holds: the soft limit never routes below it
    floor = gate(routed, policy, CATALOG, ledger, NOON)
    assert floor.routed.decision.tier == Tier.STANDARD
    assert any("not allowed" in r for r in floor.routed.decision.reasons)


def test_a_new_utc_day_starts_a_new_account() -> None:
    policy = parse_policy('[[budgets]]\ntenant = "acme"\nperiod = "day"\nlimit_usd = "0.003"')
    ledger = Ledger()
    routed = route(request("d1", max_tier="economy"), RulesClassifier(), policy, CATALOG)
    before_midnight = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    while True:
        try:
            gate(
                routed.model_copy(
                    update={
                        "request": routed.request.model_copy(update={"id": f"d{len(ledger.holds)}"})
                    }
                ),
                policy,
                CATALOG,
                ledger,
                before_midnight,
            )
        except BudgetExceeded:
            break
    after = datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)
    result = gate(
        routed.model_copy(update={"request": routed.request.model_copy(update={"id": "next-day"})}),
        policy,
        CATALOG,
        ledger,
        after,
    )
    assert result.entries  # reserved on the new day's account
    assert len(ledger.accounts) == 2
    # a hold reserved yesterday settles on yesterday's account
    yesterday = next(k for k in ledger.accounts if k.start.startswith("2026-12-01"))
    spent_before = ledger.accounts[yesterday].spent
    ledger.settle(
        next(k for k, h in ledger.holds.items() if yesterday in h.accounts), Decimal("0.001")
    )
    assert ledger.accounts[yesterday].spent == spent_before + Decimal("0.001")


def test_a_settlement_for_no_reservation_or_garbage_is_counted_never_fatal() -> None:
    from tierline.schemas import Settlement, encode
    from tierline.streams.budget_keeper import BudgetKeeper
    from tierline.streams.topics import Topics

    keeper = BudgetKeeper(Topics("t."), "unused:9092", "read_committed")
    stranger = Settlement(
        request_id="r9", tenant="nobody", cost_usd=Decimal("0.5"), created_at=NOON
    )
    assert keeper.settle(encode(stranger), 0) == []
    assert keeper.settle(b"{not json", 0) == []
    assert (keeper.unmatched, keeper.malformed) == (1, 1)
    assert all(not ledger.accounts for ledger in keeper.ledgers.values())
