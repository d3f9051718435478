"""Training the learned classifier from routing datasets: pure, deterministic, numpy only.

The label says where routing to the weak model costs quality (see `labels`):
`hard` (the weak model scores below the strong one), `soft` (by how much), or
the default `consensus`, which averages the hard label with how far *every*
non-strong model in the data falls short: one weak model's pass/fail is a
noisy reading of a prompt's difficulty, and RouterBench-style data scores
eleven models per prompt. Examples missing either model's outcome are skipped.

The model is L2-regularised logistic regression over `learned.featurize`,
fitted by full-batch gradient descent with Adam from zero weights. Two
choices keep it honest on few, narrow datasets:

* one intercept per dataset while fitting (`per_dataset_intercepts`), so the
  weights learn what makes a prompt harder *than its neighbours*, not which
  benchmark is harder; the artifact keeps their example-weighted mean;
* the rules' score is left unpenalised (`unpenalized`): prior knowledge the
  data may re-weigh but regularisation does not erase.

The fitted logit is then blended with two priors that generalise across
benchmarks where the pooled fit may not: the rules' score and the prompt's
length (log characters, what the length heuristic routes on), each
standardised, with the learned logit standardised too (`blend`). The mix is
chosen from `BLEND_GRID` by cross-validated APGR on the training data (mean
over datasets) unless given; it is folded into the weights and recalibrated
(Platt scaling on the held-out scores), so the artifact and serving are
unchanged: one linear model, one sigmoid. On the RouterBench subsets the
pooled fit is dominated by the largest dataset and ranks worse than the rules
score alone on the others; the blend recovers that.

No sampling anywhere: the same data and options give the same artifact
(`created_at` is the one input that is not data; pass it to stamp the
artifact). The vocabulary is the n-grams seen in at least `min_df` training
prompts, most frequent first. `cv_folds` > 1 also records cross-validated
APGR per dataset (folds by a seeded hash of the example id) in the
artifact's metadata: an honest estimate on prompts the model has not seen.
It is the mean of each fold's APGR, not the APGR of the pooled held-out
scores: each fold has its own model, and a fold's intercept and weights are
fitted on the *other* folds, so they lean against the held-out fold's own
labels; pooling folds scored by different models makes that a systematic
penalty (the pooled estimate of a one-feature model fell ~0.015 below that
feature's own APGR on the RouterBench subsets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tierline.processors.learning.blending import (
    BLEND_GRID,
    DEFAULT_BLEND,
    apgr_by_source,
    blend_parts,
    blended_scores,
    cross_validate,
    fold_in_blend,
    mean_apgr,
)
from tierline.processors.learning.datasets import Dataset, RoutingExample
from tierline.processors.learning.fitting import FloatArray, Label, TrainingOptions, fit
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    LearnedArtifact,
    LearnedClassifier,
    featurize,
)

__all__ = ["BLEND_GRID", "DEFAULT_BLEND", "TrainingOptions", "labels", "train"]


def labels(examples: Sequence[RoutingExample], strong: str, weak: str, label: Label) -> FloatArray:
    """The training target: how much the weak side falls short of the strong model.

    * `hard`: 1 where the weak model scores below the strong one, else 0.
    * `soft`: the shortfall itself, `max(0, strong - weak)` (differs for graded scores).
    * `consensus`: the `hard` label averaged with the mean shortfall of *every* other
      model on the prompt: how hard the prompt is for models below the strong one. One
      weak model's pass/fail is a noisy reading of a prompt's difficulty; the other
      models' outcomes, where a dataset has them, make it less noisy.
    """
    gaps = np.array(
        [e.outcomes[strong].score - e.outcomes[weak].score for e in examples], dtype=np.float64
    )
    if label == "hard":
        return (gaps > 0).astype(np.float64)
    if label == "soft":
        return np.clip(gaps, 0.0, 1.0)
    hard = (gaps > 0).astype(np.float64)
    shortfall = np.array(
        [
            np.mean(
                [
                    max(0.0, e.outcomes[strong].score - o.score)
                    for model, o in e.outcomes.items()
                    if model != strong
                ]
            )
            for e in examples
        ]
    )
    consensus: FloatArray = (hard + shortfall) / 2
    return consensus


Sources = Sequence[tuple[Dataset, list[RoutingExample]]]
BlendGrid = dict[tuple[float, float], dict[str, float | None]]


def usable_examples(
    datasets: Sequence[Dataset], strong: str, weak: str
) -> tuple[list[tuple[Dataset, list[RoutingExample]]], list[RoutingExample]]:
    """Per dataset, the examples that have outcomes for both models; and all of them
    (ValueError when fewer than 2 are left)."""
    sources = [
        (d, [e for e in d.examples if strong in e.outcomes and weak in e.outcomes])
        for d in datasets
    ]
    examples = [e for _, kept in sources for e in kept]
    if len(examples) < 2:
        raise ValueError(f"need at least 2 examples with outcomes for {strong!r} and {weak!r}")
    return sources, examples


def train(
    datasets: Sequence[Dataset],
    strong: str,
    weak: str,
    options: TrainingOptions | None = None,
    *,
    created_at: str | None = None,
) -> LearnedArtifact:
    """Fit a learned router on `datasets` for the (strong, weak) pair; return its artifact."""
    options = options or TrainingOptions()
    sources, examples = usable_examples(datasets, strong, weak)
    y = labels(examples, strong, weak, options.label)
    featurized = [featurize(e.text(), max_tokens=options.max_tokens) for e in examples]
    groups = np.array([i for i, (_, kept) in enumerate(sources) for _ in kept], dtype=np.int64)
    fitted = fit(featurized, y, groups, options)
    folds = cross_validate(examples, featurized, y, groups, options)
    parts = blend_parts(featurized, folds)
    grid: BlendGrid = {}
    if folds and parts is not None:
        for candidate in BLEND_GRID if options.blend == "cv" else (options.blend,):
            grid[candidate] = apgr_by_source(
                sources, blended_scores(parts, candidate), folds, strong, weak
            )
    blend, chosen_by = _choose_blend(options, grid)
    held_out = blended_scores(parts, blend) if parts is not None else None
    artifact = fold_in_blend(fitted, featurized, y, groups, blend, held_out)
    model = LearnedClassifier(artifact)
    in_sample = [model.score_featurized(x) for x in featurized]
    metrics: dict[str, Any] = {
        "train_apgr": apgr_by_source(sources, in_sample, None, strong, weak),
        # Where the scores fall: the routing policy's thresholds are best read against these.
        "score_quantiles": _quantiles(in_sample),
    }
    if held_out is not None and folds:
        metrics["cv_apgr"] = apgr_by_source(sources, list(held_out), folds, strong, weak)
        if parts is not None:
            metrics["cv_apgr_learned_only"] = apgr_by_source(
                sources, blended_scores(parts, (0.0, 0.0)), folds, strong, weak
            )
    metadata: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "strong": strong,
        "weak": weak,
        "label": f"{options.label}: weak falls short of strong",
        "created_at": created_at,
        "datasets": [
            {"name": d.name, "path": d.path, "examples": len(kept), "duplicates": d.duplicates}
            for d, kept in sources
        ],
        "examples": len(examples),
        "positive_rate": round(float(y.mean()), 6),
        "vocabulary": len(artifact.ngram_weights),
        "blend": _blend_record(blend, chosen_by, grid),
        "options": _options_record(options),
        "metrics": metrics,
    }
    return LearnedArtifact(
        bias=artifact.bias,
        dense_weights=artifact.dense_weights,
        dense_mean=artifact.dense_mean,
        dense_scale=artifact.dense_scale,
        ngram_weights=artifact.ngram_weights,
        max_tokens=options.max_tokens,
        training=metadata,
    )


def _choose_blend(options: TrainingOptions, grid: BlendGrid) -> tuple[tuple[float, float], str]:
    """The blend to ship and how it was chosen: given, by CV over the grid, or the default."""
    if options.blend != "cv":
        return options.blend, "given"
    if grid:
        return max(grid, key=lambda b: mean_apgr(grid[b])), "cv"
    return DEFAULT_BLEND, "default (no cv folds)"


def _quantiles(scores: Sequence[float]) -> dict[str, float]:
    cuts = (10, 25, 50, 75, 90)
    values = np.quantile(scores, [c / 100 for c in cuts])
    return {f"p{c}": round(float(v), 4) for c, v in zip(cuts, values, strict=True)}


def _blend_record(blend: tuple[float, float], chosen_by: str, grid: BlendGrid) -> dict[str, Any]:
    return {
        "learned": round(1.0 - blend[0] - blend[1], 6),
        "rules": blend[0],
        "length": blend[1],
        "chosen_by": chosen_by,
        "cv_apgr_mean_by_blend": {
            f"rules={r},length={n}": mean_apgr(scores) for (r, n), scores in grid.items()
        },
    }


def _options_record(options: TrainingOptions) -> dict[str, Any]:
    record: dict[str, Any] = {
        name: getattr(options, name)
        for name in (
            "l2",
            "l2_ngrams",
            "per_dataset_intercepts",
            "min_df",
            "max_vocab",
            "steps",
            "learning_rate",
            "label",
            "seed",
            "cv_folds",
        )
    }
    record["unpenalized"] = list(options.unpenalized)
    record["blend"] = options.blend if options.blend == "cv" else list(options.blend)
    return record
