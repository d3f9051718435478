"""Fitting the learned router's weights: L2-regularised logistic regression by Adam.

The design matrix is the dense features plus the n-gram block in coordinate form;
`fit` runs full-batch gradient descent from zero weights, with one intercept per
dataset while fitting (see `training` for why). Deterministic: no sampling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tierline.processors.routing.classifiers.learned import (
    DENSE_FEATURES,
    MAX_TOKENS,
    Featurized,
    LearnedArtifact,
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


@dataclass(frozen=True, slots=True)
class Design:
    """The training matrix: dense block plus n-gram block in coordinate form."""

    dense: FloatArray
    rows: IntArray
    cols: IntArray
    values: FloatArray
    vocabulary: tuple[str, ...]


def fit(
    featurized: Sequence[Featurized], y: FloatArray, groups: IntArray, options: TrainingOptions
) -> LearnedArtifact:
    """Adam on the L2-penalised log loss; with `per_dataset_intercepts`, one intercept per
    dataset while fitting (so the weights learn what ranks prompts *within* a dataset, not
    which dataset is harder), replaced by the pooled intercept in the artifact."""
    design = design_matrix(featurized, options)
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


def design_matrix(featurized: Sequence[Featurized], options: TrainingOptions) -> Design:
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
    return Design(
        dense,
        np.array(rows, dtype=np.int64),
        np.array(cols, dtype=np.int64),
        np.array(values, dtype=np.float64),
        vocabulary,
    )
