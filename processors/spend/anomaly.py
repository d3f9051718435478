"""Spend-rate anomalies: a scope's spend far off its own trailing baseline, one alert an episode.

A scope is (tenant, feature, model). Its billed cost is summed into fixed buckets
(5 minutes by default) by the record's time; a bucket closes once the stream's
time (the newest record seen, less `lateness_s`) has passed its end, so records
may arrive out of order by that much. A later record for a closed bucket is
counted in `stats.late` and left out. A bucket without records is a bucket of
zero spend: silence is real. Time is the records' own, never the wall clock, so
a replay gives the same alerts.

Each closed bucket is judged against the baseline before it, two ways:

- **Spike.** The baseline is an exponentially weighted mean and variance of the
  bucket spend (half-life `baseline_half_life_s`, 2 h). A bucket is anomalous when
  its spend is above `mean + k·sd` (k = 4), at least `min_ratio` (2) times the
  mean (a low-noise scope moving 10% is not an alert) and at least `floor_usd`
  (a scope going from $0.0001 to $0.0005 a bucket is not worth a page), once the
  baseline has `warmup_s` (6 h) of buckets behind it. Spend is right-skewed (a
  bucket's sum is dominated by its few large requests): on steady lognormal
  traffic about one bucket in 500 is past `mean + 4·sd`, a false alert every
  two days. So an episode needs `confirm_buckets` (2) anomalous buckets in a
  row, or one *extreme* bucket: `extreme_factor` (2.5) times further out
  (`mean + 10·sd` and 5x the mean), which a runaway loop reaches in its first
  bucket and the synthetic noise below about once in 250,000 buckets.
- **Drift.** The same 2 h mean against a long one (half-life
  `drift_long_half_life_s`, 3 days): when the short mean stays above
  `drift_ratio` (1.5) times the long one for `drift_sustain_s` (1 h) of buckets,
  at a rate of at least `floor_usd` a bucket, the spend has drifted. Spend that
  doubles over a day ends the day at about 1.6 times the long mean (which moves
  too), so 1.5, not 2, is what catches a doubling; the 1-hour
  sustain keeps a bump from counting. The long mean needs `drift_warmup_s`
  (a day) of buckets. Once a drift is reported, the long mean is set to the new
  level: the next drift alert is for a further change, not for the same one
  seen again at every daily peak while the 3-day mean catches up.

Anomalous buckets do not poison the baseline. A bucket over `mean + k·sd` (an
outlier) that stands alone is folded in *clipped to it* (winsorized: the honest
tail still widens the spread); the later buckets of a run of outliers, and every
bucket of an open spike episode, are held apart. A 10x spike then leaves both
means where they were (and raises no drift alert after it). Spend that stays
high for `drift_sustain_s` (an hour of outliers, or an hour-long spike episode
still anomalous) is a new level, not a spike: both means move to its average
(the variance scaled along) and the episode ends, its one alert sent, so a
lasting step up is one alert, not an anomaly forever nor a spike and then a
drift. Every EWMA starts as a plain running mean (weight `max(alpha, 1/n)`), so
a young baseline is an average of what it saw, not a bias toward its first
bucket.

One alert per episode, per detector: an episode starts at the first anomalous
bucket (the first of the confirming or sustained run) and ends after
`calm_buckets` (3) consecutive normal ones; the alert is emitted when it
opens, never again for the same episode. For drift, "normal" has hysteresis:
the ratio must be back below half way to `drift_ratio` (1.25). An alert's
window is the run that opened the episode, `spent_usd` its spend and
`limit_usd` what the baseline expected over it. Alert ids are stable:
`anomaly:{tenant}:{feature}:{model}:{episode start, ISO 8601}` (`:drift`
appended for drift), and an alert's `created_at` is the end of the bucket that
raised it: the same stream gives the same alerts, byte for byte.

Measured on synthetic streams (tests/unit/test_anomaly.py's: 30 requests a
5-minute bucket, lognormal costs with sigma 1, a +-20% daily cycle), 20 seeds
each: no false alert over 4 steady days (23,040 buckets); a 30-minute spike after
two steady days found on 20 of 20 seeds at 10x and 5x (in its first bucket) and
at 3x (in its second), on 3 of 20 at 2x, with no other alert; spend doubling over
a day, exactly one drift alert on 20 of 20, 22-24 h in; a lasting 2x to 10x step,
one alert; a tenant spending $0.0001 a bucket, nothing. Costs with a heavier tail
(lognormal sigma 1.5) gave about one false alert per scope every 5 days: raise `k`
where spend is that lumpy.

Memory is bounded: at most `max_scopes` scopes (the least recently active one is
evicted past that), a scope silent for `idle_s` is dropped, and a scope holds
only its open buckets, at most `lateness_s / bucket_s + 2` of them.

Limits: the state is in memory. A fresh detector (a restarted sink) is cold: no
spike alerts for `warmup_s`, no drift alerts for `drift_warmup_s`. A baseline
of hours does not know weekly or daily rhythm: a scope that is silent all night
and busy by day may alert when it wakes (above the floor).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tierline.schemas import Alert

ZERO = Decimal(0)
#: the money columns' precision (Decimal(18, 9))
NANO = Decimal("0.000000001")

Scope = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    #: the spend of a scope is summed per bucket of this many seconds
    bucket_s: float = 300.0
    #: a spike is a bucket above the baseline mean plus k standard deviations ...
    k: float = 4.0
    #: ... and at least this many times the mean ...
    min_ratio: float = 2.0
    #: ... and at least this much spend in the bucket (drift: in the short mean)
    floor_usd: Decimal = Decimal("1.00")
    #: anomalous buckets in a row that open an episode ...
    confirm_buckets: int = 2
    #: ... or one alone this many times further out (mean + factor·k·sd, factor·min_ratio)
    extreme_factor: float = 2.5
    baseline_half_life_s: float = 2 * 3600.0
    #: no spike alerts before a scope has this much history
    warmup_s: float = 6 * 3600.0
    drift_long_half_life_s: float = 3 * 86400.0
    #: the short mean over the long one, sustained, that is a drift
    drift_ratio: float = 1.5
    drift_sustain_s: float = 3600.0
    #: no drift alerts before a scope has this much history
    drift_warmup_s: float = 86400.0
    #: an episode ends after this many consecutive normal buckets
    calm_buckets: int = 3
    #: how far out of order records may come (by their time)
    lateness_s: float = 120.0
    max_scopes: int = 10_000
    #: a scope with no record for this long is forgotten
    idle_s: float = 86400.0

    def buckets(self, seconds: float) -> int:
        """How many buckets `seconds` spans (at least one)."""
        return max(1, math.ceil(seconds / self.bucket_s))

    def alpha(self, half_life_s: float) -> float:
        """The per-bucket EWMA weight of a half-life."""
        return 1.0 - math.pow(0.5, self.bucket_s / half_life_s)


@dataclass(slots=True)
class Ewma:
    """An exponentially weighted mean and variance that starts as a running mean."""

    alpha: float
    n: int = 0
    mean: float = 0.0
    var: float = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        weight = max(self.alpha, 1.0 / self.n)
        diff = x - self.mean
        step = weight * diff
        self.mean += step
        self.var = (1.0 - weight) * (self.var + diff * step)

    @property
    def sd(self) -> float:
        return math.sqrt(max(self.var, 0.0))


@dataclass(slots=True)
class Episode:
    """One detector's episodes in one scope: a run of hot buckets opens one, calm ends it."""

    #: consecutive normal buckets that end an episode
    calm_needed: int = 3
    #: the first bucket of the open episode; None = no episode
    start: int | None = None
    calm: int = 0
    #: the run of buckets from the first hot one (the episode's, once open), and its spend
    run: int = 0
    run_start: int = 0
    run_spend: Decimal = ZERO

    @property
    def open(self) -> bool:
        return self.start is not None

    def step(self, bucket: int, spend: Decimal, hot: bool, normal: bool, sustain: int) -> bool:
        """Judge one bucket; True when it opens an episode (the moment to alert)."""
        if self.start is not None:
            self.run, self.run_spend = self.run + 1, self.run_spend + spend
            self.calm = self.calm + 1 if normal else 0
            if self.calm >= self.calm_needed:
                self.close()
            return False
        if not hot:
            self.run, self.run_spend = 0, ZERO
            return False
        if self.run == 0:
            self.run_start = bucket
        self.run, self.run_spend = self.run + 1, self.run_spend + spend
        if self.run < sustain:
            return False
        self.start = self.run_start
        return True

    def close(self) -> None:
        self.start, self.calm, self.run, self.run_spend = None, 0, 0, ZERO


@dataclass(slots=True)
class ScopeState:
    #: the first bucket not yet closed
    next_bucket: int
    #: the bucket of the scope's newest record
    last_bucket: int
    baseline: Ewma
    long: Ewma
    spike: Episode
    drift: Episode
    #: the consecutive buckets above the spike threshold, kept out of the baselines
    outliers: int = 0
    outlier_spend: Decimal = ZERO
    open: dict[int, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class DetectorStats:
    records: int = 0
    #: records for a bucket that had already closed (left out)
    late: int = 0
    buckets: int = 0
    alerts: int = 0
    #: episodes whose scope cannot name an alert (a tenant that is not an identifier)
    unreportable: int = 0
    evicted: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one closed bucket looked like against its scope's baseline before it."""

    spend: Decimal
    mean: float
    sd: float
    #: mean + k·sd: a bucket above it is an outlier, kept out of the baselines (once warm)
    threshold: float
    warm: bool
    anomalous: bool
    #: so far out that it opens an episode alone, without a confirming bucket
    extreme: bool


class SpendAnomalyDetector:
    """Feed it every cost with `observe`; it returns the alerts of the buckets that closed."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self.stats = DetectorStats()
        self._scopes: OrderedDict[Scope, ScopeState] = OrderedDict()
        #: every bucket before this one is closed, for every scope (None: no record yet)
        self._closed_upto: int | None = None
        self._warmup = self.config.buckets(self.config.warmup_s)
        self._drift_warmup = self.config.buckets(self.config.drift_warmup_s)
        self._sustain = self.config.buckets(self.config.drift_sustain_s)
        self._confirm = self.config.confirm_buckets
        self._idle = self.config.buckets(self.config.idle_s)
        self._relaxed = 1.0 + (self.config.drift_ratio - 1.0) / 2

    @property
    def scopes(self) -> int:
        """How many scopes the detector holds state for."""
        return len(self._scopes)

    @property
    def open_buckets(self) -> int:
        """How many buckets, over every scope, are still gathering spend."""
        return sum(len(state.open) for state in self._scopes.values())

    # ------------------------------------------------------------------ input

    def observe(
        self, tenant: str, feature: str, model: str, cost: Decimal, at: datetime
    ) -> list[Alert]:
        """Count one billed cost at time `at`; return the alerts of buckets that closed."""
        self.stats.records += 1
        seconds = _epoch(at)
        bucket = self._bucket(seconds)
        if self._closed_upto is None:
            self._closed_upto = self._bucket(seconds - self.config.lateness_s)
        if bucket < self._closed_upto:
            self.stats.late += 1
            return []
        state = self._scope((tenant, feature, model), bucket)
        state.open[bucket] = state.open.get(bucket, ZERO) + cost
        return self._advance(self._bucket(seconds - self.config.lateness_s))

    def flush(self, now: datetime) -> list[Alert]:
        """Close every bucket that ended by `now`, late records or not; their alerts."""
        return self._advance(self._bucket(_epoch(now)))

    # ------------------------------------------------------------------ time

    def _bucket(self, seconds: float) -> int:
        return math.floor(seconds / self.config.bucket_s)

    def _scope(self, key: Scope, bucket: int) -> ScopeState:
        """The scope's state, made (evicting the least recently active one) if new."""
        state = self._scopes.get(key)
        if state is None:
            state = self._new_scope(bucket)
            self._scopes[key] = state
            if len(self._scopes) > self.config.max_scopes:
                self._scopes.popitem(last=False)
                self.stats.evicted += 1
        else:
            self._scopes.move_to_end(key)
        state.last_bucket = max(state.last_bucket, bucket)
        # a scope's history starts at its earliest record (never before a closed bucket)
        state.next_bucket = min(state.next_bucket, bucket)
        return state

    def _new_scope(self, start: int) -> ScopeState:
        config = self.config
        return ScopeState(
            next_bucket=start,
            last_bucket=start,
            baseline=Ewma(config.alpha(config.baseline_half_life_s)),
            long=Ewma(config.alpha(config.drift_long_half_life_s)),
            spike=Episode(calm_needed=config.calm_buckets),
            drift=Episode(calm_needed=config.calm_buckets),
        )

    def _advance(self, upto: int) -> list[Alert]:
        """Close every scope's buckets before `upto` (forgetting idle scopes first)."""
        if self._closed_upto is not None and upto <= self._closed_upto:
            return []
        self._closed_upto = upto
        idle = [key for key, s in self._scopes.items() if upto - s.last_bucket > self._idle]
        for key in idle:
            del self._scopes[key]
        self.stats.evicted += len(idle)
        alerts: list[Alert] = []
        for key, state in self._scopes.items():
            for bucket in range(state.next_bucket, upto):
                spend = state.open.pop(bucket, ZERO)
                alerts += self._judge(key, state, bucket, spend)
            state.next_bucket = max(state.next_bucket, upto)
        self.stats.alerts += len(alerts)
        return alerts

    # ------------------------------------------------------------------ judgement

    def _judge(self, key: Scope, state: ScopeState, bucket: int, spend: Decimal) -> list[Alert]:
        """One closed bucket: judge it against the baseline before it, then fold it in."""
        self.stats.buckets += 1
        verdict = self._verdict(state.baseline, spend)
        raised: list[Alert | None] = []
        spike, hot, during = state.spike, verdict.anomalous, state.spike.open
        if spike.step(bucket, spend, hot, not hot, 1 if verdict.extreme else self._confirm):
            raised.append(self._spike_alert(key, spike, bucket, verdict))
        _fold(state, spend, verdict.threshold if verdict.warm else None, hold=during)
        if state.outliers >= self._sustain:  # an hour of outliers, alerted or not
            _rebase(state, float(state.outlier_spend) / state.outliers)
        elif spike.open and spike.run >= self._sustain and spike.calm == 0:
            _rebase(state, float(spike.run_spend) / spike.run)  # an hour-long episode
        if self._drift_step(state, bucket, spend):
            raised.append(self._drift_alert(key, state, bucket))
            # the level just reported is what the next drift is measured from
            state.long.mean = state.baseline.mean
        alerts = [alert for alert in raised if alert is not None]
        self.stats.unreportable += len(raised) - len(alerts)
        return alerts

    def _verdict(self, baseline: Ewma, spend: Decimal) -> Verdict:
        config, x = self.config, float(spend)
        mean, sd = baseline.mean, baseline.sd

        def beyond(factor: float) -> bool:
            return x > mean + factor * config.k * sd and x >= factor * config.min_ratio * mean

        warm = baseline.n >= self._warmup
        anomalous = warm and spend >= config.floor_usd and beyond(1.0)
        extreme = anomalous and beyond(config.extreme_factor)
        return Verdict(spend, mean, sd, mean + config.k * sd, warm, anomalous, extreme)

    def _drift_step(self, state: ScopeState, bucket: int, spend: Decimal) -> bool:
        short, long = state.baseline.mean, state.long.mean
        ratio = short / long if long > 0 else 0.0
        warm = state.long.n >= self._drift_warmup
        fast = short >= float(self.config.floor_usd)
        # a spike being reported is not a drift (its clipped buckets lift the short mean)
        hot = warm and fast and ratio > self.config.drift_ratio and not state.spike.open
        normal = not warm or not fast or ratio < self._relaxed
        return state.drift.step(bucket, spend, hot, normal, self._sustain)

    def _window(self, first: int, last: int) -> tuple[datetime, datetime]:
        """The time span of buckets `first` to `last`, inclusive."""
        size = self.config.bucket_s
        start = datetime.fromtimestamp(first * size, UTC)
        return start, start + timedelta(seconds=(last - first + 1) * size)

    def _spike_alert(self, key: Scope, episode: Episode, bucket: int, v: Verdict) -> Alert | None:
        start, end = self._window(episode.run_start, bucket)
        period = _period(self.config.bucket_s)
        times = float(v.spend) / v.mean if v.mean > 0 else math.inf
        detail = (
            f"spike: ${v.spend} in the last {period} against a baseline of ${v.mean:.4f} "
            f"(sd ${v.sd:.4f}; anomalous above ${v.threshold:.4f}), {times:.1f}x; "
            f"${episode.run_spend} over the {episode.run} anomalous buckets"
        )
        expected = _money(v.mean * episode.run)
        return _alert(key, "", start, end, episode.run_spend, expected, detail, period)

    def _drift_alert(self, key: Scope, state: ScopeState, bucket: int) -> Alert | None:
        episode, short, long = state.drift, state.baseline.mean, state.long.mean
        start, end = self._window(episode.run_start, bucket)
        period = _period(self.config.bucket_s)
        detail = (
            f"drift: the {_period(self.config.baseline_half_life_s)} mean spend "
            f"(${short:.4f}/{period}) has been {short / long:.2f}x the "
            f"{_period(self.config.drift_long_half_life_s)} mean (${long:.4f}/{period}) "
            f"for {episode.run} buckets"
        )
        expected = _money(long * episode.run)
        return _alert(key, ":drift", start, end, episode.run_spend, expected, detail, period)


def _fold(state: ScopeState, spend: Decimal, threshold: float | None, hold: bool) -> None:
    """Fold a closed bucket into the baselines, unless it is one to learn nothing from.

    An outlier (over `threshold`) that starts a run is folded in clipped to the threshold,
    so that the tail of honest noise still widens the spread; the run's later buckets
    are held apart, and so is every bucket of an open spike episode (`hold`).
    """
    x = float(spend)
    if threshold is not None and x > threshold:
        state.outliers, state.outlier_spend = state.outliers + 1, state.outlier_spend + spend
        x = threshold
        hold = hold or state.outliers > 1
    else:
        state.outliers, state.outlier_spend = 0, ZERO
    if not hold:
        state.baseline.update(x)
        state.long.update(x)


def _rebase(state: ScopeState, level: float) -> None:
    """Spend that stays high for `drift_sustain_s` is a new level, not a spike: both
    baselines move to `level` (the variance scaled along, keeping its relative spread),
    and an open spike episode ends (its one alert was sent)."""
    baseline = state.baseline
    if baseline.mean > 0:
        baseline.var *= (level / baseline.mean) ** 2
    baseline.mean = state.long.mean = level
    state.outliers, state.outlier_spend = 0, ZERO
    state.spike.close()


def _alert(
    key: Scope,
    suffix: str,
    start: datetime,
    end: datetime,
    spent: Decimal,
    baseline: Decimal,
    detail: str,
    period: str,
) -> Alert | None:
    """The episode's alert; None when the scope's names cannot be an alert's (bad text)."""
    tenant, feature, model = key
    try:
        return Alert(
            alert_id=f"anomaly:{tenant}:{feature}:{model}:{start.isoformat()}{suffix}",
            kind="spend_anomaly",
            tenant=tenant,
            feature=feature,
            model=model,
            period=period,
            window_start=start,
            window_end=end,
            spent_usd=spent,
            limit_usd=baseline,
            detail=detail,
            created_at=end,
        )
    except ValueError:  # pydantic's ValidationError: a tenant that is not an identifier
        return None


def _epoch(at: datetime) -> float:
    """Seconds since the epoch; a naive time is taken as UTC (as the cost table stores it)."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def _money(amount: float) -> Decimal:
    return Decimal(repr(amount)).quantize(NANO) if math.isfinite(amount) else ZERO


def _period(seconds: float) -> str:
    """A duration as a short label: 300 -> "5m", 7200 -> "2h", 259200 -> "3d"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
