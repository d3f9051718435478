"""The spend-rate anomaly detector on synthetic streams: spikes, drift, noise, lateness, memory.

A stream is a Poisson process of billed requests (30 a 5-minute bucket on average)
with lognormal costs (a bucket's spend is right-skewed, as real spend is) and a
+-20% daily cycle, times a `shape` (a spike, a ramp). Seeded, so every run is the same.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tierline.processors.spend.anomaly import AnomalyConfig, SpendAnomalyDetector
from tierline.schemas import Alert

T0 = datetime(2026, 1, 5, tzinfo=UTC)
HOUR, DAY = 3600, 86400
Shape = Callable[[float], float]
Record = tuple[datetime, Decimal]


def steady(t: float) -> float:
    return 1 + 0.2 * math.sin(2 * math.pi * t / DAY)


def spike(start: float, seconds: float, times: float) -> Shape:
    return lambda t: steady(t) * (times if start <= t < start + seconds else 1)


def ramp(start: float, seconds: float) -> Shape:
    """Steady until `start`, then a linear rise to twice the spend over `seconds`, held."""
    return lambda t: steady(t) * (1 + min(1.0, max(0.0, (t - start) / seconds)))


def costs(
    seed: int,
    seconds: float,
    shape: Shape = steady,
    *,
    usd_per_bucket: float = 2.0,
    per_bucket: float = 30,
    sigma: float = 1.0,
) -> Iterator[Record]:
    """Billed costs in time order: Poisson arrivals at `per_bucket` times `shape`."""
    rng = random.Random(seed)
    mu = math.log(usd_per_bucket / per_bucket) - sigma**2 / 2
    rate = per_bucket / 300
    t = rng.expovariate(rate * shape(0))
    while t < seconds:
        yield T0 + timedelta(seconds=t), Decimal(f"{rng.lognormvariate(mu, sigma):.9f}")
        t += rng.expovariate(rate * shape(t))


def jumbled(records: Iterator[Record], seed: int, window_s: float) -> Iterator[Record]:
    """The records shuffled within consecutive windows of `window_s`: out of order by that."""
    rng, held, edge = random.Random(seed), list[Record](), T0
    for record in records:
        if record[0] - edge >= timedelta(seconds=window_s):
            rng.shuffle(held)
            yield from held
            held, edge = [], record[0]
        held.append(record)
    rng.shuffle(held)
    yield from held


def feed(
    detector: SpendAnomalyDetector,
    records: Iterator[Record],
    scope: tuple[str, str, str] = ("acme", "chat", "m1"),
) -> list[Alert]:
    """Every record through the detector, then an hour's flush; the alerts raised."""
    alerts: list[Alert] = []
    last = T0
    for at, cost in records:
        alerts += detector.observe(*scope, cost, at)
        last = max(last, at)
    return alerts + detector.flush(last + timedelta(hours=1))


def detect(records: Iterator[Record], config: AnomalyConfig | None = None) -> list[Alert]:
    return feed(SpendAnomalyDetector(config), records)


def overlaps(alert: Alert, start: float, seconds: float) -> bool:
    assert alert.window_end is not None
    begin, end = T0 + timedelta(seconds=start), T0 + timedelta(seconds=start + seconds)
    return alert.window_start < end and alert.window_end > begin


# ---------------------------------------------------------------------------- spikes


def test_a_tenfold_spike_after_two_steady_days_is_one_alert_on_every_seed() -> None:
    """True and false positives over 20 seeds: 20 spikes found, no other alert."""
    start, seconds = 2 * DAY + 1234, 30 * 60
    found, false = 0, []
    for seed in range(20):
        alerts = detect(costs(seed, start + 6 * HOUR, spike(start, seconds, 10)))
        hits = [a for a in alerts if overlaps(a, start, seconds)]
        found += len(hits) == 1
        false += [a for a in alerts if a not in hits]
    assert (found, false) == (20, [])


def test_the_spike_alert_names_its_scope_window_and_baseline() -> None:
    start = 2 * DAY + 1234
    [alert] = detect(costs(3, start + 6 * HOUR, spike(start, 1800, 10)))
    bucket = T0 + timedelta(seconds=start // 300 * 300)
    assert alert.kind == "spend_anomaly"
    assert (alert.tenant, alert.feature, alert.model, alert.period) == ("acme", "chat", "m1", "5m")
    assert alert.window_start == bucket and alert.window_end == bucket + timedelta(minutes=5)
    assert alert.alert_id == f"anomaly:acme:chat:m1:{bucket.isoformat()}"
    assert alert.created_at == alert.window_end  # event time: a replay gives the same alert
    assert alert.spent_usd > 5 * alert.limit_usd > 0
    assert alert.detail.startswith("spike:")


def test_a_threefold_spike_is_confirmed_by_its_second_bucket() -> None:
    start = 2 * DAY + 1200  # on a bucket boundary
    [alert] = detect(costs(1, start + 6 * HOUR, spike(start, 30 * 60, 3)))
    assert alert.window_start == T0 + timedelta(seconds=start)
    assert alert.window_end == alert.window_start + timedelta(minutes=10)


@pytest.mark.parametrize(("times", "seed"), [(2, 0), (3, 3), (3, 9), (10, 1)])
def test_a_lasting_step_up_is_one_spike_alert_then_the_new_normal(times: float, seed: int) -> None:
    start = 2 * DAY + 1200
    shape: Shape = lambda t: steady(t) * (times if t >= start else 1)  # noqa: E731
    alerts = detect(costs(seed, start + DAY, shape))
    assert [a.detail.split(":")[0] for a in alerts] == ["spike"]
    assert overlaps(alerts[0], start, 30 * 60)


def test_replaying_the_same_stream_gives_byte_identical_alerts() -> None:
    start = 2 * DAY + 1234
    runs = [detect(costs(8, start + HOUR, spike(start, 1800, 10))) for _ in range(2)]
    assert [a.model_dump_json() for a in runs[0]] == [a.model_dump_json() for a in runs[1]]
    assert len(runs[0]) == 1


# ---------------------------------------------------------------------------- drift


@pytest.mark.parametrize("seed", range(5))
def test_spend_doubling_over_a_day_is_one_drift_alert(seed: int) -> None:
    alerts = detect(costs(seed, 4 * DAY, ramp(2 * DAY, DAY)))
    assert len(alerts) == 1
    [alert] = alerts
    assert alert.alert_id.endswith(":drift") and alert.detail.startswith("drift:")
    assert T0 + timedelta(days=2) < alert.window_start < T0 + timedelta(days=3, hours=6)
    assert alert.window_end is not None
    assert alert.window_end - alert.window_start >= timedelta(hours=1)  # the sustained run
    assert alert.spent_usd > alert.limit_usd


def test_drift_waits_for_a_warm_long_baseline() -> None:
    # a ramp that starts two hours in: the spike baseline adapts, the long one is cold
    assert detect(costs(2, DAY, ramp(2 * HOUR, 12 * HOUR))) == []


# ---------------------------------------------------------------------------- the floor


def test_a_tiny_tenants_noise_and_spikes_under_the_floor_raise_nothing() -> None:
    start = 2 * DAY + 1234
    tiny = spike(start, 1800, 10)
    stream = list(costs(4, start + 6 * HOUR, tiny, usd_per_bucket=0.0001, per_bucket=3))
    assert detect(iter(stream)) == []
    # the floor is what keeps it quiet: with none, the same spike is an anomaly
    floorless = AnomalyConfig(floor_usd=Decimal(0))
    assert [a for a in detect(iter(stream), floorless) if overlaps(a, start, 1800)]


# ---------------------------------------------------------------------------- time


def test_records_out_of_order_within_the_lateness_give_the_same_alerts() -> None:
    start = 2 * DAY + 1234
    shape = spike(start, 1800, 10)
    in_order = detect(costs(6, start + 3 * HOUR, shape))
    shuffled = detect(jumbled(costs(6, start + 3 * HOUR, shape), seed=6, window_s=90))
    assert len(in_order) == 1
    assert [a.model_dump_json() for a in shuffled] == [a.model_dump_json() for a in in_order]


def test_a_record_later_than_the_lateness_is_counted_and_left_out() -> None:
    detector = SpendAnomalyDetector(AnomalyConfig(lateness_s=60))
    detector.observe("acme", "", "m1", Decimal("1"), T0 + timedelta(minutes=20))
    detector.observe("acme", "", "m1", Decimal("1"), T0 + timedelta(minutes=19))  # in time
    detector.observe("acme", "", "m1", Decimal("1"), T0 + timedelta(minutes=10))  # too late
    assert (detector.stats.records, detector.stats.late) == (3, 1)


def test_empty_buckets_count_as_zero_spend() -> None:
    detector = SpendAnomalyDetector()
    detector.observe("acme", "", "m1", Decimal("1"), T0)
    detector.observe("acme", "", "m1", Decimal("1"), T0 + timedelta(hours=1))
    # the hour before the second record, less the lateness: 11 buckets, 10 of them silent
    assert detector.stats.buckets == 11


def test_flush_closes_the_open_buckets() -> None:
    detector = SpendAnomalyDetector()
    detector.observe("acme", "", "m1", Decimal("1"), T0)
    assert detector.open_buckets == 1
    detector.flush(T0 + timedelta(minutes=5))
    assert detector.open_buckets == 0 and detector.stats.buckets == 1


# ---------------------------------------------------------------------------- memory


def test_memory_stays_bounded_by_scopes_and_open_buckets() -> None:
    config = AnomalyConfig(max_scopes=50)
    detector = SpendAnomalyDetector(config)
    rng = random.Random(7)
    bound = math.ceil(config.lateness_s / config.bucket_s) + 2
    for i in range(20_000):
        at = T0 + timedelta(seconds=i * 3 + rng.uniform(-config.lateness_s, 0))
        detector.observe(f"t{rng.randrange(500)}", "", "m1", Decimal("0.01"), at)
        assert detector.scopes <= 50
    assert detector.stats.evicted >= 450
    assert detector.open_buckets <= 50 * bound


def test_an_idle_scope_is_forgotten() -> None:
    detector = SpendAnomalyDetector(AnomalyConfig(idle_s=HOUR))
    detector.observe("quiet", "", "m1", Decimal("1"), T0)
    for minute in range(0, 180, 5):
        detector.observe("busy", "", "m1", Decimal("1"), T0 + timedelta(minutes=minute))
    assert detector.scopes == 1 and detector.stats.evicted == 1


def test_a_scope_that_cannot_name_an_alert_is_counted_not_raised() -> None:
    start = 2 * DAY + 1234
    detector = SpendAnomalyDetector()
    records = costs(3, start + HOUR, spike(start, 1800, 10))
    assert feed(detector, records, ("acme\x1b", "", "m1")) == []
    assert detector.stats.unreportable == 1
