"""The blend and its choice: the fitted logit mixed with the rules' score and prompt length.

Cross-validation folds (by a seeded hash of the example id) give held-out scores;
the blend weights are picked from `BLEND_GRID` by mean APGR over datasets, folded
into one linear model and recalibrated by Platt scaling (see `training`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tierline.processors.learning.datasets import Dataset, RoutingExample
from tierline.processors.learning.fitting import FloatArray, IntArray, TrainingOptions, fit
from tierline.processors.learning.harness import evaluate
from tierline.processors.routing.classifiers.learned import (
    DENSE_FEATURES,
    Featurized,
    LearnedArtifact,
    LearnedClassifier,
)

#: Candidate (rules, length) blend weights, least blending first (ties keep the first).
BLEND_GRID: tuple[tuple[float, float], ...] = tuple(
    (rules, length) for rules in (0.0, 0.25, 0.5) for length in (0.0, 0.15, 0.3)
)
#: The blend when there are no CV folds to choose one: what 5-fold CV (3 fold seeds) on the
#: RouterBench arc/mbpp/winogrande train splits favours for both weak models tried.
DEFAULT_BLEND = (0.5, 0.3)
BLEND_FEATURES = ("rules_score", "log_chars")


def fold_of(example_id: str, seed: int, folds: int) -> int:
    digest = hashlib.blake2b(f"{seed}\0{example_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % folds


@dataclass(frozen=True, slots=True)
class Fold:
    """One cross-validation fold: its held-out rows and the model fitted on the others."""

    rows: IntArray
    model: LearnedArtifact


def cross_validate(
    examples: Sequence[RoutingExample],
    featurized: Sequence[Featurized],
    y: FloatArray,
    groups: IntArray,
    options: TrainingOptions,
) -> list[Fold]:
    """With `cv_folds` > 1, one model per fold, fitted on the other folds."""
    if options.cv_folds <= 1:
        return []
    assignment = np.array([fold_of(e.id, options.seed, options.cv_folds) for e in examples])
    folds = []
    for fold in range(options.cv_folds):
        test = np.flatnonzero(assignment == fold)
        train_rows = np.flatnonzero(assignment != fold)
        if len(test) == 0 or len(train_rows) < 2:
            continue
        model = fit(
            [featurized[int(i)] for i in train_rows], y[train_rows], groups[train_rows], options
        )
        folds.append(Fold(test, model))
    return folds


def logit_scale(model: LearnedClassifier, featurized: Sequence[Featurized]) -> float:
    """The spread (std) of a model's logit over prompts: what standardises it in the blend."""
    logits = np.array([model.logit_featurized(x) for x in featurized])
    spread = float(logits.std()) if len(logits) > 1 else 0.0
    return spread if spread > 1e-9 else 1.0


def blend_parts(featurized: Sequence[Featurized], folds: Sequence[Fold]) -> FloatArray | None:
    """Per prompt, held out: (standardised learned logit, standardised rules, standardised
    length), each fold's model reading its own held-out prompts; None without folds."""
    if not folds:
        return None
    parts = np.zeros((len(featurized), 3))
    for fold in folds:
        model = LearnedClassifier(fold.model)
        held = set(int(i) for i in fold.rows)
        seen = [x for i, x in enumerate(featurized) if i not in held]
        spread = logit_scale(model, seen)
        columns = [DENSE_FEATURES.index(name) for name in BLEND_FEATURES]
        for i in fold.rows:
            x = featurized[int(i)]
            parts[i, 0] = model.logit_featurized(x) / spread
            for k, j in enumerate(columns, start=1):
                parts[i, k] = (x.dense[j] - fold.model.dense_mean[j]) / fold.model.dense_scale[j]
    return parts


def blended_scores(parts: FloatArray, blend: tuple[float, float]) -> list[float]:
    rules, length = blend
    mix = np.array([1.0 - rules - length, rules, length])
    return [float(v) for v in parts @ mix]


def mean_apgr(scores: dict[str, float | None]) -> float:
    """The mean APGR over datasets (not the pooled `*`), what the blend is chosen by."""
    values = [v for name, v in scores.items() if name != "*" and v is not None]
    return round(float(np.mean(values)), 6) if values else 0.0


def fold_in_blend(
    fitted: LearnedArtifact,
    featurized: Sequence[Featurized],
    y: FloatArray,
    groups: IntArray,
    blend: tuple[float, float],
    held_out: Sequence[float] | None,
) -> LearnedArtifact:
    """Fold the blend into the weights, then recalibrate (Platt) so the score is a probability.

    The blend is linear in the features: the learned logit divided by its spread, plus the
    rules' and the length's standardised values, which are dense features already. Platt
    scaling (a * z + b, `platt`) is fitted on the held-out blended scores when there are
    any (the in-sample ones are overconfident), else on the in-sample ones; `a` is kept
    positive so recalibrating never reorders prompts.
    """
    rules, length = blend
    if not (rules >= 0 and length >= 0 and rules + length <= 1):
        raise ValueError(f"blend weights must be >= 0 and sum to <= 1: {blend}")
    learned = 1.0 - rules - length
    scale = learned / logit_scale(LearnedClassifier(fitted), featurized)
    dense = [w * scale for w in fitted.dense_weights]
    for weight, name in zip((rules, length), BLEND_FEATURES, strict=True):
        dense[DENSE_FEATURES.index(name)] += weight
    blended = LearnedArtifact(
        bias=fitted.bias * scale,
        dense_weights=tuple(dense),
        dense_mean=fitted.dense_mean,
        dense_scale=fitted.dense_scale,
        ngram_weights={g: w * scale for g, w in fitted.ngram_weights.items()},
        max_tokens=fitted.max_tokens,
    )
    if held_out is None:
        model = LearnedClassifier(blended)
        held_out = [model.logit_featurized(x) for x in featurized]
    a, b = platt(np.asarray(held_out, dtype=np.float64), y, groups)
    return LearnedArtifact(
        bias=round(a * blended.bias + b, 9),
        dense_weights=tuple(round(a * w, 9) for w in blended.dense_weights),
        dense_mean=fitted.dense_mean,
        dense_scale=fitted.dense_scale,
        ngram_weights={
            g: round(a * w, 6) for g, w in blended.ngram_weights.items() if abs(a * w) >= 1e-6
        },
        max_tokens=fitted.max_tokens,
    )


def platt(z: FloatArray, y: FloatArray, groups: IntArray, steps: int = 50) -> tuple[float, float]:
    """Slope and intercept of a logistic fit of (soft) labels on scores, by damped Newton.

    Like the fit itself, one intercept per dataset (pooled, the datasets' base rates would
    set the slope, not the ranking within each), then their example-weighted mean. A whisper
    of L2 keeps separable data finite; the slope is kept >= 1e-3.
    """
    g = int(groups.max()) + 1
    design = np.column_stack((z, np.eye(g)[groups]))
    ridge = np.full(g + 1, 1e-9)
    ridge[0] = 1e-3
    rates = np.array([np.clip(y[groups == k].mean(), 1e-3, 1 - 1e-3) for k in range(g)])
    theta = np.concatenate(([0.0], np.log(rates / (1 - rates))))

    def loss(t: FloatArray) -> float:
        u = design @ t
        return float(np.sum(np.logaddexp(0.0, u) - y * u) + 0.5 * np.dot(ridge * t, t))

    current = loss(theta)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -40, 40)))
        grad = design.T @ (p - y) + ridge * theta
        hess = (design * (p * (1 - p))[:, None]).T @ design + np.diag(ridge)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        size = 1.0
        while size > 1e-6 and loss(theta - size * step) > current:
            size /= 2
        theta = theta - size * step
        previous, current = current, loss(theta)
        if previous - current < 1e-12:
            break
    counts = np.bincount(groups, minlength=g)
    return max(float(theta[0]), 1e-3), float(np.dot(theta[1:], counts) / counts.sum())


def apgr_by_source(
    sources: Sequence[tuple[Dataset, list[RoutingExample]]],
    scores: Sequence[float],
    folds: Sequence[Fold] | None,
    strong: str,
    weak: str,
) -> dict[str, float | None]:
    """APGR per dataset and, with more than one, over all of them pooled (key `*`).

    With `folds`, the mean over folds of each fold's APGR (folds without a gap to recover
    are skipped): each fold's scores come from its own model, so only those are compared.
    """
    spans: list[tuple[str, range]] = []
    start = 0
    for dataset, kept in sources:
        if kept:
            spans.append((dataset.name, range(start, start + len(kept))))
        start += len(kept)
    if len(sources) > 1:
        spans.append(("*", range(start)))
    examples = [e for _, kept in sources for e in kept]
    subsets = [np.arange(len(examples))] if folds is None else [f.rows for f in folds]
    result: dict[str, float | None] = {}
    for name, span in spans:
        values = []
        for subset in subsets:
            rows = [int(i) for i in subset if int(i) in span]
            if not rows:
                continue
            value = evaluate(
                [examples[i] for i in rows], [scores[i] for i in rows], strong, weak
            ).apgr
            if value is not None:
                values.append(value)
        result[name] = round(float(np.mean(values)), 4) if values else None
    return result
