"""The health room: the circuit breaker's states, the latency window, the rate budget, and
the board that ties them to models and to other replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tierline.processors.health.announced import Announced
from tierline.processors.health.board import HealthBoard, HealthPolicy
from tierline.processors.health.breaker import BreakerPolicy, Circuit
from tierline.processors.health.budget import RateBudget
from tierline.processors.health.window import LatencyWindow
from tierline.processors.pricing.catalog import load_catalog
from tierline.schemas import HealthSnapshot, Tier

MODEL = load_catalog().model("gpt-4.1-nano")


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_consecutive_failures_open_then_a_probe_closes() -> None:
    circuit = Circuit(BreakerPolicy(failures_to_open=3, cooldown_s=5, probes=1))
    for n in range(2):
        assert circuit.admit(100.0)
        assert not circuit.failed(100.0, "refused", 0.0, n + 1)
    assert circuit.failed(100.0, "refused", 0.0, 3)
    assert str(circuit.state) == "open" and circuit.open_until == 105.0
    assert not circuit.admit(104.9)
    assert circuit.admit(105.0)
    assert str(circuit.state) == "half_open"
    assert not circuit.admit(105.0)  # one probe at a time
    assert circuit.succeeded(105.5)
    assert str(circuit.state) == "closed"
    assert circuit.admit(105.6)


def test_a_failed_probe_doubles_the_cool_down_up_to_the_cap() -> None:
    circuit = Circuit(BreakerPolicy(failures_to_open=1, cooldown_s=4, max_cooldown_s=10))
    circuit.failed(0.0, "reset", 0.0, 1)
    assert circuit.open_until == 4.0
    assert circuit.admit(4.0)
    assert circuit.failed(4.0, "reset", 0.0, 2)
    assert circuit.open_until == 12.0  # 8 s
    assert circuit.admit(12.0)
    circuit.failed(12.0, "reset", 0.0, 3)
    assert circuit.open_until == 22.0  # capped at 10 s


def test_an_error_rate_over_the_window_opens_without_a_streak() -> None:
    circuit = Circuit(
        BreakerPolicy(failures_to_open=100, error_rate_to_open=0.5, min_calls_for_rate=10)
    )
    assert not circuit.failed(0.0, "5xx", 0.6, 9)  # too few calls to judge
    assert circuit.failed(0.0, "5xx", 0.6, 10)


def test_pinned_open_never_probes_and_a_newer_replica_view_is_adopted() -> None:
    circuit = Circuit(BreakerPolicy())
    assert circuit.pin_open(0.0, "auth")
    assert not circuit.admit(10**9)
    other = Circuit(BreakerPolicy())
    assert other.adopt("open", 50.0, 60.0, "seen elsewhere")
    assert not other.admit(59.0) and other.admit(60.0)
    assert not other.adopt("closed", 40.0, None, "older")  # older than our own change


def test_the_window_judges_latency_on_successes_and_forgets_old_calls() -> None:
    window = LatencyWindow(max_calls=100, max_age_s=10)
    for i in range(20):
        window.add(0.0, "ok", 100.0 + i)
    window.add(1.0, "connection", None)
    window.add(1.0, "timeout", None)
    stats = window.stats(1.0)
    assert stats.calls == 22 and stats.p50_ms == 110.0 and stats.p95_ms == 119.0
    assert stats.error_rate == pytest.approx(2 / 22) and stats.timeout_rate == pytest.approx(1 / 22)
    assert window.stats(10.5).calls == 2  # the successes at t=0 aged out


async def test_the_budget_has_room_until_its_bucket_or_a_cool_down_says_no() -> None:
    budget = RateBudget(rpm=2)
    assert budget.has_room(10, 0.0)
    await budget.spend(10)
    await budget.spend(10)
    assert not budget.has_room(10, 0.0)  # the minute's two requests are gone
    cool = RateBudget()
    cool.rate_limited(100.0, 2.5)
    assert not cool.has_room(1, 101.0) and cool.has_room(1, 102.6)


def test_announced_limits_tighten_the_buckets_and_an_empty_budget_cools() -> None:
    budget = RateBudget(rpm=1000, tpm=None)
    budget.tighten(Announced(requests_limit=60, tokens_limit=5000), 0.0)
    assert (budget.rpm, budget.tpm) == (60, 5000)
    budget.tighten(Announced(requests_limit=500), 0.0)  # looser: kept tight
    assert budget.rpm == 60
    budget.tighten(Announced(requests_remaining=0, requests_reset_s=3.0), 10.0)
    assert budget.cooling(10.0) == pytest.approx(3.0)


def test_board_blocks_an_open_model_and_says_since_when() -> None:
    clock = Clock()
    board = HealthBoard(HealthPolicy(breaker=BreakerPolicy(failures_to_open=2)), clock=clock)
    seen: list[str] = []
    board.on_transition.append(lambda p, m, state, why: seen.append(state))
    for _ in range(2):
        assert board.admit(MODEL)
        board.observe(MODEL, "connection", why="refused")
    blocked = board.blocked(MODEL)
    assert blocked is not None and blocked.startswith("circuit open since ")
    assert "2 consecutive failures, last: refused" in blocked
    assert seen == ["open"]
    assert board.take_dirty() == {f"{MODEL.provider}/{MODEL.name}"}
    assert board.next_change_in([MODEL]) == pytest.approx(5.0)


def test_a_429_cools_the_model_without_opening_its_circuit() -> None:
    clock = Clock()
    board = HealthBoard(HealthPolicy(breaker=BreakerPolicy(failures_to_open=1)), clock=clock)
    board.observe(MODEL, "rate_limited", retry_after_s=2.0)
    assert board.of(MODEL).circuit.state == "closed"
    assert board.blocked(MODEL) == "rate limited for 2.0s more"
    clock.t += 2.1
    assert board.blocked(MODEL) is None


def test_an_auth_failure_pins_the_circuit_and_holding_cannot_help() -> None:
    board = HealthBoard(clock=Clock())
    board.observe(MODEL, "auth", why="invalid_api_key")
    assert not board.recoverable(MODEL)
    assert "until the configuration changes" in (board.blocked(MODEL) or "")


def test_a_bad_request_says_nothing_about_the_provider() -> None:
    board = HealthBoard(HealthPolicy(breaker=BreakerPolicy(failures_to_open=1)), clock=Clock())
    board.observe(MODEL, "bad_request")
    board.observe(MODEL, "context_too_long")
    assert board.blocked(MODEL) is None


def test_too_slow_needs_enough_calls_and_trusts_a_fresh_peer() -> None:
    clock = Clock()
    board = HealthBoard(HealthPolicy(min_calls_for_p95=5), replica="a", clock=clock)
    for _ in range(4):
        board.observe(MODEL, "ok", 3000.0)
    assert board.too_slow(MODEL, 1000.0) is None  # 4 calls: not judged
    board.observe(MODEL, "ok", 3000.0)
    assert (board.too_slow(MODEL, 1000.0) or "").startswith("p95 3000 ms over the 1000 ms limit")
    other = HealthBoard(HealthPolicy(min_calls_for_p95=5), replica="b", clock=clock)
    other.merge(board.snapshot(board.of(MODEL)))
    assert other.too_slow(MODEL, 1000.0) is not None
    clock.t += 31  # the peer's figures are stale now
    assert other.too_slow(MODEL, 1000.0) is None


def test_a_snapshot_round_trips_to_another_replica_but_not_to_itself() -> None:
    clock = Clock()
    policy = HealthPolicy(breaker=BreakerPolicy(failures_to_open=1))
    a = HealthBoard(policy, replica="a", clock=clock)
    b = HealthBoard(policy, replica="b", clock=clock)
    a.observe(MODEL, "timeout", why="read_timeout")
    snapshot = HealthSnapshot.model_validate_json(a.snapshot(a.of(MODEL)).model_dump_json())
    assert snapshot.circuit == "open" and snapshot.key == f"{MODEL.provider}/{MODEL.name}"
    assert not a.merge(snapshot)
    assert b.merge(snapshot)
    assert b.blocked(MODEL) is not None and "seen by a" in (b.blocked(MODEL) or "")
    assert not b.merge(snapshot)  # the same change twice is no change
    assert b.take_dirty() == set()  # adopted changes are not echoed back


def test_a_replica_starting_later_adopts_an_earlier_change() -> None:
    clock = Clock()
    a = HealthBoard(
        HealthPolicy(breaker=BreakerPolicy(failures_to_open=1)), replica="a", clock=clock
    )
    a.observe(MODEL, "connection")
    snapshot = a.snapshot(a.of(MODEL))
    clock.t += 1
    late = HealthBoard(replica="late", clock=clock)
    late.of(MODEL)  # known before the snapshot arrives
    assert late.merge(snapshot)


async def test_wait_change_wakes_on_a_transition_and_counts_holders() -> None:
    board = HealthBoard(HealthPolicy(breaker=BreakerPolicy(failures_to_open=1)))

    async def held() -> None:
        with board.holding(Tier.ECONOMY):
            await board.wait_change(10.0)

    task = asyncio.create_task(held())
    await asyncio.sleep(0.01)
    assert board.held[Tier.ECONOMY] == 1 and task in board.holders
    board.observe(MODEL, "connection")  # opens: a transition
    await asyncio.wait_for(task, 1.0)
    assert board.held[Tier.ECONOMY] == 0 and not board.holders


def test_snapshot_times_are_utc() -> None:
    board = HealthBoard(clock=Clock(0.0))
    snap = board.snapshot(board.of(MODEL))
    assert snap.updated_at == datetime(1970, 1, 1, tzinfo=UTC)
