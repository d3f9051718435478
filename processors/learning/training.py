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

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tierline.processors.learning.datasets import Dataset, RoutingExample
from tierline.processors.learning.harness import evaluate
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    MAX_TOKENS,
    Featurized,
    LearnedArtifact,
    LearnedClassifier,
    featurize,
)

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
    #: (rules, length) weights of the blend, the learned logit getting the rest; "cv" picks
    #: them from `BLEND_GRID` by cross-validated APGR (`DEFAULT_BLEND` without CV folds)
    blend: tuple[float, float] | Literal["cv"] = "cv"


#: Candidate (rules, length) blend weights, least blending first (ties keep the first).
BLEND_GRID: tuple[tuple[float, float], ...] = tuple(
    (rules, length) for rules in (0.0, 0.25, 0.5) for length in (0.0, 0.15, 0.3)
)
#: The blend when there are no CV folds to choose one: what 5-fold CV (3 fold seeds) on the
#: RouterBench arc/mbpp/winogrande train splits favours for both weak models tried.
DEFAULT_BLEND = (0.5, 0.3)
BLEND_FEATURES = ("rules_score", "log_chars")


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
    fitted = _fit(featurized, y, groups, options)
    folds = _cross_validate(examples, featurized, y, groups, options)
    parts = _blend_parts(featurized, folds)
    grid: dict[tuple[float, float], dict[str, float | None]] = {}
    if folds and parts is not None:
        for candidate in BLEND_GRID if options.blend == "cv" else (options.blend,):
            grid[candidate] = _apgr_by_source(
                sources, _blended_scores(parts, candidate), folds, strong, weak
            )
    if options.blend != "cv":
        blend, chosen_by = options.blend, "given"
    elif grid:
        blend, chosen_by = max(grid, key=lambda b: _mean_apgr(grid[b])), "cv"
    else:
        blend, chosen_by = DEFAULT_BLEND, "default (no cv folds)"
    held_out = _blended_scores(parts, blend) if parts is not None else None
    artifact = _blend(fitted, featurized, y, groups, blend, held_out)
    model = LearnedClassifier(artifact)
    in_sample = [model.score_featurized(x) for x in featurized]
    metrics: dict[str, Any] = {
        "train_apgr": _apgr_by_source(sources, in_sample, None, strong, weak),
        # Where the scores fall: the routing policy's thresholds are best read against these.
        "score_quantiles": {
            f"p{q}": round(float(v), 4)
            for q, v in zip(
                (10, 25, 50, 75, 90),
                np.quantile(in_sample, [0.1, 0.25, 0.5, 0.75, 0.9]),
                strict=True,
            )
        },
    }
    if held_out is not None and folds:
        metrics["cv_apgr"] = _apgr_by_source(sources, list(held_out), folds, strong, weak)
        if parts is not None:
            metrics["cv_apgr_learned_only"] = _apgr_by_source(
                sources, _blended_scores(parts, (0.0, 0.0)), folds, strong, weak
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
        "blend": {
            "learned": round(1.0 - blend[0] - blend[1], 6),
            "rules": blend[0],
            "length": blend[1],
            "chosen_by": chosen_by,
            "cv_apgr_mean_by_blend": {
                f"rules={r},length={n}": _mean_apgr(scores) for (r, n), scores in grid.items()
            },
        },
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
            "blend": options.blend if options.blend == "cv" else list(options.blend),
        },
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


@dataclass(frozen=True, slots=True)
class _Fold:
    """One cross-validation fold: its held-out rows and the model fitted on the others."""

    rows: IntArray
    model: LearnedArtifact


def _cross_validate(
    examples: Sequence[RoutingExample],
    featurized: Sequence[Featurized],
    y: FloatArray,
    groups: IntArray,
    options: TrainingOptions,
) -> list[_Fold]:
    """With `cv_folds` > 1, one model per fold, fitted on the other folds."""
    if options.cv_folds <= 1:
        return []
    assignment = np.array([_fold(e.id, options.seed, options.cv_folds) for e in examples])
    folds = []
    for fold in range(options.cv_folds):
        test = np.flatnonzero(assignment == fold)
        train_rows = np.flatnonzero(assignment != fold)
        if len(test) == 0 or len(train_rows) < 2:
            continue
        model = _fit(
            [featurized[int(i)] for i in train_rows], y[train_rows], groups[train_rows], options
        )
        folds.append(_Fold(test, model))
    return folds


def _logit_scale(model: LearnedClassifier, featurized: Sequence[Featurized]) -> float:
    """The spread (std) of a model's logit over prompts: what standardises it in the blend."""
    logits = np.array([model.logit_featurized(x) for x in featurized])
    spread = float(logits.std()) if len(logits) > 1 else 0.0
    return spread if spread > 1e-9 else 1.0


def _blend_parts(featurized: Sequence[Featurized], folds: Sequence[_Fold]) -> FloatArray | None:
    """Per prompt, held out: (standardised learned logit, standardised rules, standardised
    length), each fold's model reading its own held-out prompts; None without folds."""
    if not folds:
        return None
    parts = np.zeros((len(featurized), 3))
    for fold in folds:
        model = LearnedClassifier(fold.model)
        held = set(int(i) for i in fold.rows)
        seen = [x for i, x in enumerate(featurized) if i not in held]
        spread = _logit_scale(model, seen)
        columns = [DENSE_FEATURES.index(name) for name in BLEND_FEATURES]
        for i in fold.rows:
            x = featurized[int(i)]
            parts[i, 0] = model.logit_featurized(x) / spread
            for k, j in enumerate(columns, start=1):
                parts[i, k] = (x.dense[j] - fold.model.dense_mean[j]) / fold.model.dense_scale[j]
    return parts


def _blended_scores(parts: FloatArray, blend: tuple[float, float]) -> list[float]:
    rules, length = blend
    mix = np.array([1.0 - rules - length, rules, length])
    return [float(v) for v in parts @ mix]


def _mean_apgr(scores: dict[str, float | None]) -> float:
    """The mean APGR over datasets (not the pooled `*`), what the blend is chosen by."""
    values = [v for name, v in scores.items() if name != "*" and v is not None]
    return round(float(np.mean(values)), 6) if values else 0.0


def _blend(
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
    scaling (a * z + b, `_platt`) is fitted on the held-out blended scores when there are
    any (the in-sample ones are overconfident), else on the in-sample ones; `a` is kept
    positive so recalibrating never reorders prompts.
    """
    rules, length = blend
    if not (rules >= 0 and length >= 0 and rules + length <= 1):
        raise ValueError(f"blend weights must be >= 0 and sum to <= 1: {blend}")
    learned = 1.0 - rules - length
    scale = learned / _logit_scale(LearnedClassifier(fitted), featurized)
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
    a, b = _platt(np.asarray(held_out, dtype=np.float64), y, groups)
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


def _platt(z: FloatArray, y: FloatArray, groups: IntArray, steps: int = 50) -> tuple[float, float]:
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


def _apgr_by_source(
    sources: Sequence[tuple[Dataset, list[RoutingExample]]],
    scores: Sequence[float],
    folds: Sequence[_Fold] | None,
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
