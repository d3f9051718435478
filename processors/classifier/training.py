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

No sampling anywhere: the same data and options give the same artifact
(`created_at` is the one input that is not data; pass it to stamp the
artifact). The vocabulary is the n-grams seen in at least `min_df` training
prompts, most frequent first. `cv_folds` > 1 also records cross-validated
APGR per dataset (folds by a seeded hash of the example id) in the
artifact's metadata: an honest estimate on prompts the model has not seen.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from processors.classifier.learned import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    MAX_TOKENS,
    Featurized,
    LearnedArtifact,
    LearnedClassifier,
    featurize,
)
from processors.evaluation.datasets import Dataset, RoutingExample
from processors.evaluation.harness import evaluate

Label = Literal["hard", "soft", "consensus"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    """Every knob of `train`; the defaults are what `tierline train` uses."""

    l2: float = 3.0
    l2_ngrams: float = 30.0
    per_dataset_intercepts: bool = True
    #: dense features fitted without the L2 penalty: the prior knowledge kept at full strength
    unpenalized: tuple[str, ...] = ("rules_score",)
    min_df: int = 5
    max_vocab: int = 20_000
    steps: int = 400
    learning_rate: float = 0.05
    label: Label = "consensus"
    seed: int = 0
    cv_folds: int = 5
    max_tokens: int = MAX_TOKENS


@dataclass(frozen=True, slots=True)
class _Design:
    """The training matrix: dense block plus n-gram block in coordinate form."""

    dense: FloatArray
    rows: IntArray
    cols: IntArray
    values: FloatArray
    vocabulary: tuple[str, ...]


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


def train(
    datasets: Sequence[Dataset],
    strong: str,
    weak: str,
    options: TrainingOptions = TrainingOptions(),
    *,
    created_at: str | None = None,
) -> LearnedArtifact:
    """Fit a learned router on `datasets` for the (strong, weak) pair; return its artifact."""
    sources = [
        (d, [e for e in d.examples if strong in e.outcomes and weak in e.outcomes])
        for d in datasets
    ]
    examples = [e for _, kept in sources for e in kept]
    if len(examples) < 2:
        raise ValueError(f"need at least 2 examples with outcomes for {strong!r} and {weak!r}")
    y = labels(examples, strong, weak, options.label)
    featurized = [featurize(e.text(), max_tokens=options.max_tokens) for e in examples]
    groups = np.array([i for i, (_, kept) in enumerate(sources) for _ in kept], dtype=np.int64)
    artifact = _fit(featurized, y, groups, options)
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
        "options": {
            "l2": options.l2,
            "l2_ngrams": options.l2_ngrams,
            "per_dataset_intercepts": options.per_dataset_intercepts,
            "unpenalized": list(options.unpenalized),
            "min_df": options.min_df,
            "max_vocab": options.max_vocab,
            "steps": options.steps,
            "learning_rate": options.learning_rate,
            "label": options.label,
            "seed": options.seed,
            "cv_folds": options.cv_folds,
        },
        "metrics": _metrics(sources, featurized, y, strong, weak, options),
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


def _fit(
    featurized: Sequence[Featurized], y: FloatArray, groups: IntArray, options: TrainingOptions
) -> LearnedArtifact:
    """Adam on the L2-penalised log loss; with `per_dataset_intercepts`, one intercept per
    dataset while fitting (so the weights learn what ranks prompts *within* a dataset, not
    which dataset is harder), replaced by the pooled intercept in the artifact."""
    design = _design(featurized, options)
    mean = design.dense.mean(axis=0)
    scale = design.dense.std(axis=0)
    scale[scale < 1e-9] = 1.0
    dense = (design.dense - mean) / scale
    n, d = dense.shape
    v = len(design.vocabulary)
    if not options.per_dataset_intercepts:
        groups = np.zeros(n, dtype=np.int64)
    g = int(groups.max()) + 1
    prior = np.array(
        [
            np.clip(y[groups == k].mean() if np.any(groups == k) else 0.5, 1e-3, 1 - 1e-3)
            for k in range(g)
        ]
    )
    bias = np.log(prior / (1 - prior))
    w_dense = np.zeros(d)
    w_ngram = np.zeros(v)
    penalty = np.array(
        [0.0 if name in options.unpenalized else options.l2 for name in DENSE_FEATURES]
    )
    moments = [np.zeros(g + d + v), np.zeros(g + d + v)]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, options.steps + 1):
        z = bias[groups] + dense @ w_dense
        z += np.bincount(design.rows, weights=design.values * w_ngram[design.cols], minlength=n)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        r = (p - y) / n
        grad = np.concatenate(
            (
                np.bincount(groups, weights=r, minlength=g),
                dense.T @ r + penalty * w_dense / n,
                np.bincount(design.cols, weights=design.values * r[design.rows], minlength=v)
                + options.l2_ngrams * w_ngram / n,
            )
        )
        moments[0] = beta1 * moments[0] + (1 - beta1) * grad
        moments[1] = beta2 * moments[1] + (1 - beta2) * grad * grad
        m_hat = moments[0] / (1 - beta1**step)
        v_hat = moments[1] / (1 - beta2**step)
        update = options.learning_rate * m_hat / (np.sqrt(v_hat) + eps)
        bias -= update[:g]
        w_dense -= update[g : g + d]
        w_ngram -= update[g + d :]
    counts = np.bincount(groups, minlength=g)
    pooled_bias = float(np.dot(bias, counts) / counts.sum())
    ngram_weights = {
        gram: round(float(w), 6)
        for gram, w in zip(design.vocabulary, w_ngram, strict=True)
        if abs(w) >= 1e-6
    }
    return LearnedArtifact(
        bias=round(pooled_bias, 9),
        dense_weights=tuple(round(float(w), 9) for w in w_dense),
        dense_mean=tuple(round(float(m), 9) for m in mean),
        dense_scale=tuple(round(float(s), 9) for s in scale),
        ngram_weights=ngram_weights,
        max_tokens=options.max_tokens,
    )


def _design(featurized: Sequence[Featurized], options: TrainingOptions) -> _Design:
    df: Counter[str] = Counter()
    for x in featurized:
        df.update(x.ngrams)
    frequent = sorted((g for g, c in df.items() if c >= options.min_df), key=lambda g: (-df[g], g))
    vocabulary = tuple(frequent[: options.max_vocab])
    index = {g: i for i, g in enumerate(vocabulary)}
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, x in enumerate(featurized):
        if not x.ngrams:
            continue
        norm = 1.0 / float(np.sqrt(len(x.ngrams)))
        for gram in sorted(x.ngrams):
            col = index.get(gram)
            if col is not None:
                rows.append(row)
                cols.append(col)
                values.append(norm)
    dense = np.array([x.dense for x in featurized], dtype=np.float64).reshape(
        len(featurized), len(DENSE_FEATURES)
    )
    return _Design(
        dense,
        np.array(rows, dtype=np.int64),
        np.array(cols, dtype=np.int64),
        np.array(values, dtype=np.float64),
        vocabulary,
    )


def _fold(example_id: str, seed: int, folds: int) -> int:
    digest = hashlib.blake2b(f"{seed}\0{example_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % folds


def _metrics(
    sources: Sequence[tuple[Dataset, list[RoutingExample]]],
    featurized: Sequence[Featurized],
    y: FloatArray,
    strong: str,
    weak: str,
    options: TrainingOptions,
) -> dict[str, Any]:
    """In-sample APGR per dataset and, with `cv_folds` > 1, cross-validated APGR."""
    examples = [e for _, kept in sources for e in kept]
    metrics: dict[str, Any] = {}
    groups = np.array([i for i, (_, kept) in enumerate(sources) for _ in kept], dtype=np.int64)
    full = LearnedClassifier(_fit(featurized, y, groups, options))
    in_sample = [full.score_featurized(x) for x in featurized]
    metrics["train_apgr"] = _apgr_by_source(sources, in_sample, strong, weak)
    # Where the scores fall: the routing policy's thresholds are best read against these.
    metrics["score_quantiles"] = {
        f"p{q}": round(float(v), 4)
        for q, v in zip(
            (10, 25, 50, 75, 90), np.quantile(in_sample, [0.1, 0.25, 0.5, 0.75, 0.9]), strict=True
        )
    }
    if options.cv_folds > 1:
        folds = np.array([_fold(e.id, options.seed, options.cv_folds) for e in examples])
        held_out = np.zeros(len(examples))
        for fold in range(options.cv_folds):
            test = np.flatnonzero(folds == fold)
            train_rows = np.flatnonzero(folds != fold)
            if len(test) == 0 or len(train_rows) < 2:
                continue
            model = LearnedClassifier(
                _fit(
                    [featurized[int(i)] for i in train_rows],
                    y[train_rows],
                    groups[train_rows],
                    options,
                )
            )
            for i in test:
                held_out[i] = model.score_featurized(featurized[int(i)])
        metrics["cv_apgr"] = _apgr_by_source(sources, list(held_out), strong, weak)
    return metrics


def _apgr_by_source(
    sources: Sequence[tuple[Dataset, list[RoutingExample]]],
    scores: Sequence[float],
    strong: str,
    weak: str,
) -> dict[str, float | None]:
    """APGR per dataset and, with more than one, over all of them pooled (key `*`)."""
    result: dict[str, float | None] = {}
    start = 0
    for dataset, kept in sources:
        chunk = scores[start : start + len(kept)]
        start += len(kept)
        if kept:
            value = evaluate(kept, chunk, strong, weak).apgr
            result[dataset.name] = None if value is None else round(value, 4)
    if len(sources) > 1:
        everything = [e for _, kept in sources for e in kept]
        value = evaluate(everything, scores, strong, weak).apgr
        result["*"] = None if value is None else round(value, 4)
    return result
