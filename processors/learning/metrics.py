"""Router metrics: the quality–share curve and the numbers read off it (RouteLLM, RouterBench).

A router gives every prompt a score. Routing the top-k scored prompts to the
strong model and the rest to the weak one, for k = 0..n, traces a curve of
(strong-call share, mean quality, mean cost). Prompts with equal scores are
routed as a block in expectation (each gets the block's mean gain), so the
curve does not depend on input order and a router that scores everything the
same is exactly as good as random routing.

Read off the curve:

* PGR (performance gap recovered) = (q - q_weak) / (q_strong - q_weak).
* APGR: the area under PGR over the strong-call share, in [0, 1]; random
  routing scores 0.5, an oracle scores near 1.
* CPT(x): the smallest strong-call share whose PGR reaches x (interpolated).
* Saving at 95%: the cost saved, against calling the strong model for every
  prompt, at the smallest share reaching 95% of the strong model's quality.
* AIQ (RouterBench): the area under the non-decreasing convex hull of
  (cost, quality) points, divided by the cost range.

PGR-based numbers are `None` when the strong model is not better than the weak
one on the data (the gap to recover is zero or negative); cost-based numbers
are `None` without costs. Everything here is plain, deterministic arithmetic.

The curve only asks scores to rank; the calibration numbers ask them to be
probabilities (of the weak model falling short, against 0/1 outcomes):

* Brier score: the mean of (p - outcome)^2; predicting the base rate r for
  every prompt scores r(1 - r).
* Reliability table: predictions in `bins` equal-width bins, each bin's count,
  mean prediction and observed rate (equal when calibrated).
* ECE (expected calibration error): the count-weighted mean over bins of
  |mean prediction - observed rate|.
* AUROC: how well a score ranks positives above negatives (0.5 = not at all),
  what the confidence check reads a confidence by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One point of the routing curve: route `strong_share` of prompts to the strong model."""

    strong_share: float
    quality: float
    pgr: float | None
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class RoutingCurve:
    """The exact curve, one point per k = 0..n prompts routed strong."""

    quality: tuple[float, ...]
    cost_usd: tuple[float, ...] | None
    weak_quality: float
    strong_quality: float

    @property
    def prompts(self) -> int:
        return len(self.quality) - 1

    @property
    def gap(self) -> float:
        return self.strong_quality - self.weak_quality

    def pgr(self) -> tuple[float, ...] | None:
        if self.gap <= 0:
            return None
        return tuple((q - self.weak_quality) / self.gap for q in self.quality)

    def at(self, share: float) -> CurvePoint:
        """The curve at any share in [0, 1], linear between routed-prompt counts."""
        k = min(max(share, 0.0), 1.0) * self.prompts
        quality = _interpolate(self.quality, k)
        cost = _interpolate(self.cost_usd, k) if self.cost_usd is not None else None
        pgr = (quality - self.weak_quality) / self.gap if self.gap > 0 else None
        return CurvePoint(share, quality, pgr, cost)

    def sampled(self, points: int = 21) -> tuple[CurvePoint, ...]:
        """`points` evenly spaced shares from 0 to 1 (21 = every 5%)."""
        if points < 2:
            raise ValueError("a curve needs at least 2 points")
        return tuple(self.at(j / (points - 1)) for j in range(points))


def routing_curve(
    scores: Sequence[float],
    strong_quality: Sequence[float],
    weak_quality: Sequence[float],
    strong_cost: Sequence[float] | None = None,
    weak_cost: Sequence[float] | None = None,
) -> RoutingCurve:
    """The curve of routing the highest-scored prompts to the strong model first."""
    n = len(scores)
    if n == 0:
        raise ValueError("no prompts to evaluate")
    if not (len(strong_quality) == len(weak_quality) == n):
        raise ValueError("scores and qualities must have one entry per prompt")
    costs: tuple[Sequence[float], Sequence[float]] | None = None
    if strong_cost is not None and weak_cost is not None:
        if not (len(strong_cost) == len(weak_cost) == n):
            raise ValueError("costs must have one entry per prompt")
        costs = (strong_cost, weak_cost)
    order = sorted(range(n), key=lambda i: -scores[i])
    quality_gain = [0.0]
    cost_gain = [0.0]
    start = 0
    while start < n:
        end = start
        while end < n and scores[order[end]] == scores[order[start]]:
            end += 1
        block = order[start:end]
        mean_q = sum(strong_quality[i] - weak_quality[i] for i in block) / len(block)
        mean_c = 0.0
        if costs is not None:
            mean_c = sum(costs[0][i] - costs[1][i] for i in block) / len(block)
        for _ in block:
            quality_gain.append(quality_gain[-1] + mean_q)
            cost_gain.append(cost_gain[-1] + mean_c)
        start = end
    weak_total = sum(weak_quality)
    quality = tuple((weak_total + gain) / n for gain in quality_gain)
    cost: tuple[float, ...] | None = None
    if costs is not None:
        weak_cost_total = sum(costs[1])
        cost = tuple((weak_cost_total + gain) / n for gain in cost_gain)
    return RoutingCurve(quality, cost, weak_total / n, sum(strong_quality) / n)


def apgr(curve: RoutingCurve) -> float | None:
    """Area under PGR over the strong-call share (trapezoids over k = 0..n)."""
    pgr = curve.pgr()
    if pgr is None:
        return None
    n = curve.prompts
    return sum((pgr[k] + pgr[k + 1]) / 2 for k in range(n)) / n


def cpt(curve: RoutingCurve, target_pgr: float) -> float | None:
    """The smallest strong-call share at which PGR reaches `target_pgr`."""
    pgr = curve.pgr()
    if pgr is None:
        return None
    k = _first_reaching(pgr, target_pgr)
    return None if k is None else k / curve.prompts


def saving_at_quality(curve: RoutingCurve, fraction_of_strong: float = 0.95) -> float | None:
    """Cost saved against all-strong, at the smallest share reaching that much of its quality."""
    if curve.cost_usd is None:
        return None
    all_strong = curve.cost_usd[-1]
    if all_strong <= 0:
        return None
    k = _first_reaching(curve.quality, fraction_of_strong * curve.strong_quality)
    if k is None:
        return None
    return 1.0 - _interpolate(curve.cost_usd, k) / all_strong


def aiq(points: Sequence[tuple[float, float]]) -> float | None:
    """RouterBench's AIQ of (cost, quality) points: hull area over the cost range.

    The hull is the upper convex hull, made non-decreasing (past the best
    quality it stays flat: paying more never has to buy less). `None` when the
    points span no cost range.
    """
    hull = nondecreasing_hull(points)
    if len(hull) < 2:
        return None
    low, high = hull[0][0], hull[-1][0]
    if high <= low:
        return None
    area = sum(
        (c1 - c0) * (q0 + q1) / 2 for (c0, q0), (c1, q1) in zip(hull, hull[1:], strict=False)
    )
    return area / (high - low)


def nondecreasing_hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper convex hull of the points, flat after its highest quality, cheapest first."""
    best: dict[float, float] = {}
    for cost, quality in points:
        if cost not in best or quality > best[cost]:
            best[cost] = quality
    ordered = sorted(best.items())
    hull: list[tuple[float, float]] = []
    for point in ordered:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
            hull.pop()
        hull.append(point)
    if not hull:
        return hull
    peak = max(range(len(hull)), key=lambda i: (hull[i][1], -i))
    flat = [(hull[-1][0], hull[peak][1])] if peak < len(hull) - 1 else []
    return hull[: peak + 1] + flat


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _interpolate(values: Sequence[float], k: float) -> float:
    low = int(k)
    if low >= len(values) - 1:
        return values[-1]
    return values[low] + (values[low + 1] - values[low]) * (k - low)


def _first_reaching(values: Sequence[float], target: float, eps: float = 1e-12) -> float | None:
    """The smallest fractional index where the piecewise-linear `values` reaches `target`."""
    if values[0] >= target - eps:
        return 0.0
    for k in range(1, len(values)):
        if values[k] >= target - eps:
            rise = values[k] - values[k - 1]
            return k - 1 + (target - values[k - 1]) / rise if rise > 0 else float(k)
    return None


# Calibration: do the scores read as probabilities? A router's score is meant to be
# P(the weak model falls short on this prompt); these check that against outcomes.


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Predictions in [low, high) (the last bin includes 1): how many, their mean, the
    observed rate of the event among them (None for an empty bin)."""

    low: float
    high: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


def brier_score(probs: Sequence[float], labels: Sequence[float]) -> float:
    """The mean squared difference between predicted probability and outcome (0 or 1):
    0 is perfect; always predicting the base rate r scores r(1 - r)."""
    _check_probabilities(probs, labels)
    return sum((p - y) ** 2 for p, y in zip(probs, labels, strict=True)) / len(probs)


def reliability(
    probs: Sequence[float], labels: Sequence[float], bins: int = 10
) -> tuple[ReliabilityBin, ...]:
    """The reliability table: `bins` equal-width bins of the predictions, each with its
    count, mean prediction and observed rate. Calibrated predictions have the two equal."""
    _check_probabilities(probs, labels)
    if bins < 1:
        raise ValueError("a reliability table needs at least one bin")
    counts = [0] * bins
    predicted = [0.0] * bins
    observed = [0.0] * bins
    for p, y in zip(probs, labels, strict=True):
        k = min(int(p * bins), bins - 1)
        counts[k] += 1
        predicted[k] += p
        observed[k] += y
    return tuple(
        ReliabilityBin(
            k / bins,
            (k + 1) / bins,
            counts[k],
            predicted[k] / counts[k] if counts[k] else None,
            observed[k] / counts[k] if counts[k] else None,
        )
        for k in range(bins)
    )


def expected_calibration_error(
    probs: Sequence[float], labels: Sequence[float], bins: int = 10
) -> float:
    """ECE: over the reliability table's bins, the count-weighted mean of
    |mean prediction - observed rate|."""
    return calibration_error(reliability(probs, labels, bins))


def calibration_error(table: Sequence[ReliabilityBin]) -> float:
    """The ECE of an already computed reliability table."""
    n = sum(b.count for b in table)
    if n == 0:
        raise ValueError("an empty reliability table")
    return (
        sum(
            b.count * abs(b.mean_predicted - b.observed_rate)
            for b in table
            if b.mean_predicted is not None and b.observed_rate is not None
        )
        / n
    )


def auroc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """The probability that a random positive (label 1) scores above a random negative,
    ties counting half (Mann-Whitney); None without both classes."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels must have one entry per prompt")
    positives = sum(1 for y in labels if y == 1)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and scores[order[end]] == scores[order[start]]:
            end += 1
        midrank = (start + 1 + end) / 2  # ranks start..end-1 are 1-based start+1..end
        rank_sum += midrank * sum(1 for i in order[start:end] if labels[i] == 1)
        start = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _check_probabilities(probs: Sequence[float], labels: Sequence[float]) -> None:
    if not probs:
        raise ValueError("no predictions")
    if len(probs) != len(labels):
        raise ValueError("predictions and labels must have one entry per prompt")
    if not all(0.0 <= p <= 1.0 for p in probs):
        raise ValueError("predictions must be probabilities in [0, 1]")
    if not all(0.0 <= y <= 1.0 for y in labels):
        raise ValueError("labels must be in [0, 1]")
