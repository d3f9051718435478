"""Learning from feedback: which tasks need more than the cheap tier, per task and feature.

What ClickHouse holds is what a request cost, where it went and what the
application said about the answer (the `decisions` view: costs joined to
feedback). It does not hold prompts — tierline never stores them — so it
cannot train the text classifier, which learns from prompt words. What it can
learn is per *segment*: for each task (and each task within a feature), the
mean feedback score each tier earned. Where a cheaper tier scores clearly
worse than the best tier of the segment, requests of that segment should not
go below the tier that holds up: a `[[floors]]` entry for the policy file.

    floor = the cheapest tier whose mean score is within `tolerance` of the
            best tier's, among tiers with at least `min_signals` scored
            requests; reported only when a cheaper tier with enough signals
            falls short (otherwise there is nothing to raise).

Read the result with care: it is observational. Within a segment the
classifier already sent harder prompts to higher tiers, so the comparison is
biased *against* the higher tiers (they got the hard ones): a floor it finds
is conservative evidence that the cheap tier falls short, and the absence of
a floor proves little. For a clean comparison run an experiment (random arms,
`processors.experiments`) and compare its arms. To train the text classifier
on your own traffic, join your prompts (kept by your application) to these
outcomes by request id into a routing dataset (`tierline train --dataset`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierline.schemas import Tier

#: The per-segment, per-tier feedback the floors are learned from. `{since_days}` and
#: `{tenant_filter}` are filled by `segment_query` with a checked integer and a quoted
#: literal; everything else is fixed text.
SEGMENT_SQL = """
SELECT
    task,
    feature,
    if(tier = 'batch', 'economy', tier) AS ladder_tier,
    count()                             AS scored,
    avg(feedback_score)                 AS mean_score,
    sum(cost_usd)                       AS cost_usd
FROM decisions
WHERE feedback_score IS NOT NULL
  AND created_at >= now() - INTERVAL {since_days} DAY{tenant_filter}
GROUP BY task, feature, ladder_tier
ORDER BY task, feature, ladder_tier
"""


def segment_query(since_days: int, tenant: str | None = None) -> str:
    """The SQL over `decisions` that `learn_floors` reads (one row per task, feature, tier)."""
    days = int(since_days)
    if days <= 0:
        raise ValueError("since_days must be positive")
    tenant_filter = ""
    if tenant is not None:
        quoted = tenant.replace("\\", "\\\\").replace("'", "\\'")
        tenant_filter = f"\n  AND tenant = '{quoted}'"
    return SEGMENT_SQL.format(since_days=days, tenant_filter=tenant_filter)


@dataclass(frozen=True, slots=True)
class TierStats:
    """One tier's scored requests in a segment."""

    scored: int
    mean_score: float


@dataclass(frozen=True, slots=True)
class Floor:
    """A learned floor: requests of `task` (in `feature`, if set) start at `min_tier`."""

    task: str
    min_tier: Tier
    feature: str | None = None
    evidence: dict[Tier, TierStats] = field(default_factory=dict, hash=False)


def learn_floors(
    rows: Iterable[Sequence[Any]], *, min_signals: int = 30, tolerance: float = 0.05
) -> list[Floor]:
    """Floors from rows `(task, feature, tier, scored, mean_score, ...)` (see `SEGMENT_SQL`).

    Each task is judged over all its features pooled, and again per feature; a
    feature's floor is kept only when it is higher than its task's.
    """
    by_segment: dict[tuple[str, str | None], dict[Tier, list[tuple[int, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        task, row_feature, tier_name = str(row[0]), str(row[1]), str(row[2])
        scored, mean = int(row[3]), float(row[4])
        try:
            tier = Tier(tier_name)
        except ValueError:
            continue
        if tier is Tier.BATCH:
            tier = Tier.ECONOMY
        by_segment[(task, None)][tier].append((scored, mean))
        if row_feature:  # requests without a feature are judged with their task only
            by_segment[(task, row_feature)][tier].append((scored, mean))
    found: dict[tuple[str, str | None], Floor] = {}
    for segment, tiers in sorted(by_segment.items(), key=_segment_order):
        stats = {tier: _pooled(parts) for tier, parts in tiers.items()}
        min_tier = _floor(stats, min_signals, tolerance)
        if min_tier is not None:
            found[segment] = Floor(segment[0], min_tier, segment[1], stats)
    kept = []
    for (task, feature), learned in found.items():
        overall = found.get((task, None))
        if feature is None or overall is None or learned.min_tier.rank > overall.min_tier.rank:
            kept.append(learned)
    return kept


def _segment_order(item: tuple[tuple[str, str | None], object]) -> tuple[str, str]:
    (task, feature), _ = item
    return task, feature or ""


def _pooled(parts: list[tuple[int, float]]) -> TierStats:
    scored = sum(n for n, _ in parts)
    mean = sum(n * m for n, m in parts) / scored if scored else 0.0
    return TierStats(scored, mean)


def _floor(stats: dict[Tier, TierStats], min_signals: int, tolerance: float) -> Tier | None:
    eligible = sorted(
        (tier for tier, s in stats.items() if s.scored >= min_signals), key=lambda t: t.rank
    )
    if len(eligible) < 2:
        return None
    best = max(stats[t].mean_score for t in eligible)
    holds = next(t for t in eligible if stats[t].mean_score >= best - tolerance)
    if holds is eligible[0]:
        return None  # the cheapest tier with evidence holds up: nothing to raise
    return holds


def render_toml(floors: Sequence[Floor], *, header: str = "") -> str:
    """The floors as `[[floors]]` entries to paste into a policy file, evidence in comments."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for floor in floors:
        lines.append("")
        evidence = ", ".join(
            f"{tier} {s.mean_score:.3f} (n={s.scored})"
            for tier, s in sorted(floor.evidence.items(), key=lambda kv: kv[0].rank)
        )
        lines.append(f"# mean feedback score: {evidence}")
        lines.append("[[floors]]")
        lines.append(f"task = {_quote(floor.task)}")
        if floor.feature is not None:
            lines.append(f"feature = {_quote(floor.feature)}")
        lines.append(f"min_tier = {_quote(str(floor.min_tier))}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
