"""Hot reload: a changed file takes effect without a restart; a bad one never does."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.policy_support import make_catalog
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_file import PolicyFileError, problems
from tierline.processors.routing.policy_reload import (
    FixedPolicy,
    PolicyReloader,
    as_source,
    open_policy_source,
)
from tierline.processors.routing.tier_rules import Thresholds, TierRules


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, bump: int) -> None:
    """Replace the file atomically, with an mtime `bump` seconds later than the last one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    stamp = 1_700_000_000 + bump
    os.utime(temporary, (stamp, stamp))
    temporary.replace(path)


def policy_text(standard: float) -> str:
    return f"[routing]\nstandard_threshold = {standard}\n"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Clock, PolicyReloader]:
    path = tmp_path / "policy.toml"
    write(path, policy_text(0.3), 0)
    clock = Clock()
    return path, clock, PolicyReloader(path, check_every_s=5, clock=clock)


def test_a_change_takes_effect_at_the_next_check(setup: tuple[Path, Clock, PolicyReloader]) -> None:
    path, clock, reloader = setup
    assert reloader.current().routing.thresholds.standard == 0.3
    write(path, policy_text(0.4), 1)
    clock.now += 4.9
    assert reloader.current().routing.thresholds.standard == 0.3  # not checked yet
    clock.now += 0.2
    assert reloader.current().routing.thresholds.standard == 0.4
    assert reloader.reloads == 1


def test_a_bad_file_keeps_the_last_good_policy(setup: tuple[Path, Clock, PolicyReloader]) -> None:
    path, clock, reloader = setup
    write(path, "[routing]\nstandard_threshold = 'high'\n", 1)
    clock.now += 6
    assert reloader.current().routing.thresholds.standard == 0.3
    assert reloader.last_error is not None and "standard_threshold" in reloader.last_error
    write(path, policy_text(0.5), 2)  # fixed: taken at the next check
    clock.now += 6
    assert reloader.current().routing.thresholds.standard == 0.5
    assert reloader.last_error is None


def test_a_vanished_file_keeps_the_last_good_policy(
    setup: tuple[Path, Clock, PolicyReloader],
) -> None:
    path, clock, reloader = setup
    path.unlink()
    clock.now += 6
    assert reloader.current().routing.thresholds.standard == 0.3
    assert reloader.last_error is not None


def test_an_unchanged_file_is_not_parsed_again(setup: tuple[Path, Clock, PolicyReloader]) -> None:
    _, clock, reloader = setup
    before = reloader.current()
    for _ in range(5):
        clock.now += 6
        assert reloader.current() is before
    assert reloader.reloads == 0


def test_the_swap_is_whole(setup: tuple[Path, Clock, PolicyReloader]) -> None:
    path, clock, reloader = setup
    old = reloader.current()
    write(path, policy_text(0.4) + "confidence_floor = 0.5\n[cascade]\ntasks = ['x']\n", 1)
    clock.now += 6
    new = reloader.current()
    assert old.routing.thresholds.standard == 0.3 and not old.cascade.tasks  # old is unchanged
    assert new.routing.confidence_floor == 0.5 and new.cascade.tasks == {"x"}


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, "[routing]\npremium_threshold = 0.9\n", 0)
    defaults = Policy(routing=TierRules(Thresholds(0.45, 0.7)))
    reloader = PolicyReloader(path, defaults=defaults)
    assert reloader.current().routing.thresholds == Thresholds(0.45, 0.9)


def test_a_bad_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, "nonsense = [", 0)
    with pytest.raises(PolicyFileError):
        PolicyReloader(path)


def test_catalog_checks_refuse_unknown_models(tmp_path: Path) -> None:
    catalog = make_catalog()
    path = tmp_path / "policy.toml"
    arms = "arms = [{name = 'a', models = ['e1']}, {name = 'b', models = ['%s']}]\n"
    experiment = "[[experiments]]\nname = 'x'\ntask = 't'\nshare = 0.5\n" + arms
    write(path, experiment % "s1", 0)
    clock = Clock()
    reloader = PolicyReloader(path, clock=clock, validate=lambda p: problems(p, catalog))
    write(path, experiment % "ghost", 1)
    clock.now += 6
    assert reloader.current().experiments[0].arms[1].models == ("s1",)
    assert reloader.last_error is not None and "ghost" in reloader.last_error


def test_open_policy_source_without_a_file_is_fixed(tmp_path: Path) -> None:
    defaults = Policy()
    source = open_policy_source(None, defaults=defaults)
    assert isinstance(source, FixedPolicy) and source.current() is defaults
    path = tmp_path / "p.toml"
    write(path, policy_text(0.2), 0)
    reloading = open_policy_source(str(path), defaults=defaults, catalog=make_catalog())
    assert reloading.current().routing.thresholds.standard == 0.2


def test_current_is_cheap(setup: tuple[Path, Clock, PolicyReloader]) -> None:
    _, _, reloader = setup
    started = time.perf_counter()
    for _ in range(100_000):
        reloader.current()
    # well under a microsecond a call; generous for slow CI machines
    assert time.perf_counter() - started < 0.5


def test_a_real_clock_reloads_too(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, policy_text(0.3), 0)
    reloader = PolicyReloader(path, check_every_s=0.05)
    write(path, policy_text(0.6), 1)
    time.sleep(0.1)
    assert reloader.current().routing.thresholds.standard == 0.6


def test_as_source_accepts_every_form() -> None:
    rules = TierRules(Thresholds(0.2, 0.5))
    assert as_source(rules).current().routing is rules
    policy = Policy(routing=rules)
    assert as_source(policy).current() is policy
    fixed = FixedPolicy(policy)
    assert as_source(fixed) is fixed


def test_a_malformed_budget_keeps_the_last_good_budgets(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    good = '[[budgets]]\ntenant = "acme"\nperiod = "day"\nlimit_usd = "25.00"\n'
    write(path, good, 0)
    clock = Clock()
    reloader = PolicyReloader(path, check_every_s=5, clock=clock)
    assert reloader.current().budgets.covering("acme", None)[0].limit_usd == Decimal("25.00")
    write(path, '[[budgets]]\ntenant = "acme"\nperiod = "day"\nlimit_usd = 25\n', 1)
    clock.now += 6
    assert reloader.current().budgets.covering("acme", None)[0].limit_usd == Decimal("25.00")
    assert reloader.last_error is not None and "write money as a string" in reloader.last_error
