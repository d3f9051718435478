"""Experiments: the share and the split hold, and a request id always lands in the same arm."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.policy_support import make_request
from tierline.processors.routing.experiments import Arm, Experiment, assign, reason, unit_hash
from tierline.schemas import Tier

N = 20_000


def experiment(share: float, weights: tuple[float, float] = (1, 1), name: str = "x") -> Experiment:
    return Experiment(
        name=name,
        task="classification",
        share=share,
        arms=(Arm("a", ("m1",), weights[0]), Arm("b", ("m2",), weights[1])),
    )


@pytest.mark.parametrize(("share", "weights"), [(0.2, (1, 1)), (0.5, (3, 1)), (1.0, (1, 4))])
def test_the_share_and_the_split_hold(share: float, weights: tuple[float, float]) -> None:
    exp = experiment(share, weights)
    arms = [exp.arm_for(f"req-{i}") for i in range(N)]
    taken = [arm for arm in arms if arm is not None]
    assert abs(len(taken) / N - share) < 0.015
    first = sum(arm.name == "a" for arm in taken) / len(taken)
    assert abs(first - weights[0] / sum(weights)) < 0.02


def test_nothing_is_taken_at_share_zero() -> None:
    exp = experiment(0.0)
    assert all(exp.arm_for(f"req-{i}") is None for i in range(2000))


@given(st.text(min_size=1, max_size=128))
def test_the_same_id_always_lands_in_the_same_arm(request_id: str) -> None:
    one, again = experiment(0.5), experiment(0.5)
    assert one.arm_for(request_id) == one.arm_for(request_id) == again.arm_for(request_id)
    assert 0 <= unit_hash("x", request_id) < 1


def test_experiments_split_independently() -> None:
    first, second = experiment(0.5, name="one"), experiment(0.5, name="two")
    both = sum(
        first.arm_for(f"req-{i}") is not None and second.arm_for(f"req-{i}") is not None
        for i in range(N)
    )
    assert abs(both / N - 0.25) < 0.015  # independent: 0.5 x 0.5


def test_assign_matches_task_tenant_and_tier() -> None:
    exp = Experiment(
        "x",
        "classification",
        1.0,
        (Arm("a", ("m1",)), Arm("b", ("m2",))),
        tenants=frozenset({"acme"}),
        tiers=frozenset({Tier.ECONOMY}),
    )
    acme = make_request(tenant="acme")
    assert assign([exp], acme, "classification", Tier.ECONOMY) is not None
    assert assign([exp], acme, "qa", Tier.ECONOMY) is None
    assert assign([exp], acme, "classification", Tier.PREMIUM) is None
    assert assign([exp], make_request(tenant="other"), "classification", Tier.ECONOMY) is None
    hit = assign([exp], acme, "classification", Tier.ECONOMY)
    assert hit is not None
    assert reason(*hit) == f"experiment=x arm={hit[1].name}"


def test_bad_experiments_are_refused() -> None:
    with pytest.raises(ValueError):
        Experiment("x", "t", 1.5, (Arm("a", ("m",)), Arm("b", ("m",))))
    with pytest.raises(ValueError):
        Experiment("x", "t", 0.5, (Arm("a", ("m",)),))
    with pytest.raises(ValueError):
        Experiment("x", "t", 0.5, (Arm("a", ("m",)), Arm("a", ("n",))))
    with pytest.raises(ValueError):
        Arm("a", ())
