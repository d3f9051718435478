"""The evaluation harness: score a dataset with a router and read the metrics off its curve.

`evaluate` takes examples, a router's scores for them and a (strong, weak)
model pair, keeps the examples on which both models have an outcome, and
returns a `RouterEvaluation`: APGR, CPT(50%), CPT(80%), the cost saving at
95% of the strong model's quality, the sampled curve, and, where costs allow,
three AIQs: `aiq` over every costed model's point plus the router's curve (as
RouterBench draws it), `aiq_router_only` over the router's curve alone (its
ends are the weak and the strong model: the number that tells two-model
routers apart), and `aiq_models_only`, the hull of the models by themselves
(the "zero router" every router is compared with). Same inputs, same numbers:
nothing here is random or order-dependent.

When every score is in [0, 1], it also reads the scores as what a router's
score is meant to be, P(the weak model falls short on this prompt), and checks
them against what happened (`falls_short`: the weak model scored below the
strong one): the Brier score, the reliability table and its expected
calibration error (`Calibration`). Given the classifier's confidences too, it
checks whether they predict which score-above-0.5 decisions are right
(`ConfidenceCheck`), next to `max(p, 1 - p)`, what a calibrated score's own
confidence would be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tierline.processors.learning.datasets import RoutingExample
from tierline.processors.learning.metrics import (
    CurvePoint,
    ReliabilityBin,
    aiq,
    apgr,
    auroc,
    brier_score,
    calibration_error,
    cpt,
    reliability,
    routing_curve,
    saving_at_quality,
)
from tierline.processors.learning.scorers import Scorer

#: the decision a score stands for: at or above it, "the weak model falls short"
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Calibration:
    """The scores as P(weak falls short), against what happened.

    `brier_base_rate` is the Brier score of predicting the observed rate for every
    prompt, r(1 - r): a score that does no better knows nothing about the prompt.
    """

    positive_rate: float
    brier: float
    brier_base_rate: float
    ece: float
    reliability: tuple[ReliabilityBin, ...]


@dataclass(frozen=True, slots=True)
class ConfidenceCheck:
    """Does a confidence predict whether the decision (score >= 0.5: "weak falls short")
    is right? `by_bin`: per confidence bin, its mean confidence (`mean_predicted`) and the
    decisions' accuracy (`observed_rate`). `brier`: the confidence read as P(right);
    `auroc`: how well it ranks right decisions above wrong ones (0.5 = not at all)."""

    accuracy: float
    brier: float
    auroc: float | None
    ece: float
    by_bin: tuple[ReliabilityBin, ...]


@dataclass(frozen=True, slots=True)
class RouterEvaluation:
    """One router on one dataset and model pair."""

    router: str
    dataset: str
    strong: str
    weak: str
    prompts: int
    strong_quality: float
    weak_quality: float
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    saving_at_95: float | None
    aiq: float | None
    aiq_router_only: float | None
    aiq_models_only: float | None
    aiq_models: tuple[str, ...]
    curve: tuple[CurvePoint, ...]
    #: None when some score is outside [0, 1]
    calibration: Calibration | None = None
    #: the classifier's confidences, checked (None: none given)
    confidence: ConfidenceCheck | None = None
    #: `max(p, 1 - p)` as the confidence, checked the same way (None: not probabilities)
    confidence_max_p: ConfidenceCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired(examples: Iterable[RoutingExample], strong: str, weak: str) -> list[RoutingExample]:
    """The examples on which both the strong and the weak model have an outcome."""
    return [e for e in examples if strong in e.outcomes and weak in e.outcomes]


def falls_short(examples: Sequence[RoutingExample], strong: str, weak: str) -> list[int]:
    """Per example, 1 where the weak model scored below the strong one, else 0: the event
    a router's score is meant to be the probability of (training's `hard` label)."""
    return [int(e.outcomes[strong].score > e.outcomes[weak].score) for e in examples]


def calibration(
    scores: Sequence[float], outcomes: Sequence[int], bins: int = 10
) -> Calibration | None:
    """Brier, ECE and the reliability table of `scores` against `outcomes` (`falls_short`);
    None when some score is not a probability."""
    if not scores or not all(0.0 <= s <= 1.0 for s in scores):
        return None
    rate = sum(outcomes) / len(outcomes)
    table = reliability(scores, outcomes, bins)
    return Calibration(
        positive_rate=rate,
        brier=brier_score(scores, outcomes),
        brier_base_rate=rate * (1 - rate),
        ece=calibration_error(table),
        reliability=table,
    )


def check_confidence(
    scores: Sequence[float],
    confidences: Sequence[float],
    outcomes: Sequence[int],
    bins: int = 10,
) -> ConfidenceCheck:
    """How well `confidences` predict that `score >= DECISION_THRESHOLD` matches the
    outcome."""
    right = [
        int((s >= DECISION_THRESHOLD) == bool(y)) for s, y in zip(scores, outcomes, strict=True)
    ]
    table = reliability(confidences, right, bins)
    return ConfidenceCheck(
        accuracy=sum(right) / len(right),
        brier=brier_score(confidences, right),
        auroc=auroc(confidences, right),
        ece=calibration_error(table),
        by_bin=table,
    )


def score_all(router: Scorer, examples: Sequence[RoutingExample]) -> list[float]:
    return [router.score(example) for example in examples]


def evaluate(
    examples: Sequence[RoutingExample],
    scores: Sequence[float] | Mapping[str, float],
    strong: str,
    weak: str,
    *,
    router: str = "router",
    dataset: str = "",
    curve_points: int = 21,
    confidences: Sequence[float] | None = None,
) -> RouterEvaluation:
    """Metrics of routing `examples` by `scores` (a list aligned with them, or id -> score);
    `confidences`, aligned with the examples, are checked too when given."""
    if isinstance(scores, Mapping):
        by_id = scores
        aligned = [by_id[e.id] for e in examples]
    else:
        if len(scores) != len(examples):
            raise ValueError(f"{len(scores)} scores for {len(examples)} examples")
        aligned = list(scores)
    if confidences is not None and len(confidences) != len(examples):
        raise ValueError(f"{len(confidences)} confidences for {len(examples)} examples")
    keep = [i for i, e in enumerate(examples) if strong in e.outcomes and weak in e.outcomes]
    if not keep:
        raise ValueError(f"no example has outcomes for both {strong!r} and {weak!r}")
    chosen = [examples[i] for i in keep]
    chosen_scores = [aligned[i] for i in keep]
    outcomes = falls_short(chosen, strong, weak)
    calibrated = calibration(chosen_scores, outcomes)
    confidence = max_p = None
    if calibrated is not None:
        if confidences is not None:
            kept = [confidences[i] for i in keep]
            confidence = check_confidence(chosen_scores, kept, outcomes)
        margins = [max(s, 1.0 - s) for s in chosen_scores]
        max_p = check_confidence(chosen_scores, margins, outcomes)
    curve = routing_curve(
        chosen_scores,
        [e.outcomes[strong].score for e in chosen],
        [e.outcomes[weak].score for e in chosen],
        *_pair_costs(chosen, strong, weak),
    )
    models = _costed_models(chosen)
    model_points = [_mean_point(chosen, model) for model in models]
    both_aiq = router_aiq = models_aiq = None
    if curve.cost_usd is not None:
        router_points = list(zip(curve.cost_usd, curve.quality, strict=True))
        both_aiq = aiq(model_points + router_points)
        router_aiq = aiq(router_points)
        models_aiq = aiq(model_points) if len(model_points) >= 2 else None
    return RouterEvaluation(
        router=router,
        dataset=dataset,
        strong=strong,
        weak=weak,
        prompts=len(chosen),
        strong_quality=curve.strong_quality,
        weak_quality=curve.weak_quality,
        apgr=apgr(curve),
        cpt50=cpt(curve, 0.5),
        cpt80=cpt(curve, 0.8),
        saving_at_95=saving_at_quality(curve, 0.95),
        aiq=both_aiq,
        aiq_router_only=router_aiq,
        aiq_models_only=models_aiq,
        aiq_models=tuple(models),
        curve=curve.sampled(curve_points),
        calibration=calibrated,
        confidence=confidence,
        confidence_max_p=max_p,
    )


def evaluate_router(
    router: Scorer,
    examples: Sequence[RoutingExample],
    strong: str,
    weak: str,
    *,
    dataset: str = "",
    curve_points: int = 21,
) -> RouterEvaluation:
    """Score the examples with `router`, then `evaluate`."""
    chosen = paired(examples, strong, weak)
    return evaluate(
        chosen,
        score_all(router, chosen),
        strong,
        weak,
        router=router.name,
        dataset=dataset,
        curve_points=curve_points,
    )


def _pair_costs(
    examples: Sequence[RoutingExample], strong: str, weak: str
) -> tuple[list[float], list[float]] | tuple[None, None]:
    strong_costs = [e.outcomes[strong].cost_usd for e in examples]
    weak_costs = [e.outcomes[weak].cost_usd for e in examples]
    if any(c is None for c in strong_costs) or any(c is None for c in weak_costs):
        return None, None
    return [float(c or 0.0) for c in strong_costs], [float(c or 0.0) for c in weak_costs]


def _costed_models(examples: Sequence[RoutingExample]) -> list[str]:
    """Models with a score and a cost on every example: the ones AIQ can place."""
    models: set[str] | None = None
    for example in examples:
        costed = {m for m, o in example.outcomes.items() if o.cost_usd is not None}
        models = costed if models is None else models & costed
    return sorted(models or ())


def _mean_point(examples: Sequence[RoutingExample], model: str) -> tuple[float, float]:
    n = len(examples)
    cost = sum(e.outcomes[model].cost_usd or 0.0 for e in examples) / n
    return cost, sum(e.outcomes[model].score for e in examples) / n
