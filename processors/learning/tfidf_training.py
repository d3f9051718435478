"""Training the `tfidf` learner with scikit-learn; the artifact is scored in pure Python.

Issue #12: the `ngram` learner (`training`) ranked no better than prompt length
while a plain sklearn TF-IDF + logistic regression did better on the same
split. The differences between the two, measured on the RouterBench
arc/mbpp/winogrande train/test splits with `tierline train`/`tierline eval`:

* features: binary n-gram presence over the first 96 tokens, scaled by
  1/sqrt(#n-grams), vs sublinear tf * idf, L2-normalised, over the ask
  (`features.extract`): the idf down-weights the boilerplate every prompt
  shares;
* regularisation: a fixed L2 (30 on n-grams, fitted by 400 Adam steps, not
  to convergence) vs C chosen by cross-validated APGR, fitted to convergence
  (lbfgs);
* fitting: the soft `consensus` label (the default, as for `ngram`; `hard`
  works too) fitted exactly by lbfgs, each row twice with weights p and 1 - p.

Held-out APGR (train on `*_train.csv`, score `*_test.csv`; strong
gpt-4-1106-preview, weak mixtral-8x7b-chat), 2026-12:

    dataset        length  ngram  sklearn tfidf+LR  tfidf (this, with dense)
    arc_challenge  0.571   0.566  0.470             0.524
    mbpp           0.381   0.450  0.535             0.617
    winogrande     0.433   0.581  0.559             0.590

Better on mbpp, level on winogrande, worse on arc (where length and the rules
are hard to beat): not better everywhere, so `ngram` stays the default and
this learner is opt-in (`tierline train --learner tfidf`).

The dense prompt features (`learned.DENSE_FEATURES`, standardised) can be
appended (`dense=True`, the default): they carry length and structure, which
TF-IDF's L2 normalisation removes. sklearn is imported only here, at training
time; `export` writes the fitted vocabulary, idf, coefficients and intercept
into the JSON artifact that `classifiers.tfidf` scores without sklearn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tierline.processors.learning.blending import fold_of, mean_apgr
from tierline.processors.learning.datasets import Dataset, RoutingExample
from tierline.processors.learning.fitting import FloatArray, Label
from tierline.processors.learning.harness import evaluate
from tierline.processors.learning.training import labels, usable_examples
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    featurize,
)
from tierline.processors.routing.classifiers.tfidf import TfidfArtifact, analyze, prepare

C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class TfidfOptions:
    label: Label = "consensus"
    #: C of the logistic regression; "cv" picks it from `C_GRID` by cross-validated APGR
    C: float | str = "cv"
    dense: bool = True
    min_df: int = 1
    max_features: int | None = 50_000
    cv_folds: int = 5
    seed: int = 0


@dataclass(frozen=True, slots=True)
class _Fitted:
    vectorizer: Any
    model: Any
    mean: FloatArray
    scale: FloatArray


def _dense(examples: Sequence[RoutingExample]) -> FloatArray:
    rows = [featurize(e.text()).dense for e in examples]
    return np.array(rows, dtype=np.float64).reshape(len(examples), len(DENSE_FEATURES))


def _design(fitted: _Fitted, texts: Sequence[str], dense: FloatArray | None) -> Any:
    import scipy.sparse as sp

    x = fitted.vectorizer.transform(texts)
    if dense is None:
        return x
    return sp.hstack([x, sp.csr_matrix((dense - fitted.mean) / fitted.scale)]).tocsr()


def _fit(
    texts: Sequence[str], dense: FloatArray | None, y: FloatArray, c: float, options: TfidfOptions
) -> _Fitted:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        analyzer=analyze,  # the terms serving reads: unigrams and bigrams of the ask
        sublinear_tf=True,
        min_df=min(options.min_df, len(texts)),
        max_features=options.max_features,
        dtype=np.float64,
    )
    vectorizer.fit(texts)
    if dense is not None:
        mean = dense.mean(axis=0)
        scale = dense.std(axis=0)
        scale[scale < 1e-9] = 1.0
    else:
        mean = scale = np.zeros(0)
    fitted = _Fitted(vectorizer, None, mean, scale)
    x = _design(fitted, texts, dense)
    model = LogisticRegression(C=c, max_iter=5000, tol=1e-6)
    if set(np.unique(y)) <= {0.0, 1.0}:
        model.fit(x, y.astype(np.int64))
    else:  # soft labels: the exact soft log loss, each row once as 1 and once as 0
        n = x.shape[0]
        targets = np.r_[np.ones(n), np.zeros(n)].astype(np.int64)
        model.fit(sp.vstack([x, x]).tocsr(), targets, sample_weight=np.r_[y, 1.0 - y])
    return _Fitted(vectorizer, model, mean, scale)


def _predict(fitted: _Fitted, texts: Sequence[str], dense: FloatArray | None) -> FloatArray:
    result: FloatArray = fitted.model.predict_proba(_design(fitted, texts, dense))[:, 1]
    return result


def train_tfidf(
    datasets: Sequence[Dataset],
    strong: str,
    weak: str,
    options: TfidfOptions | None = None,
    *,
    created_at: str | None = None,
) -> TfidfArtifact:
    """Fit the tfidf learner on `datasets` for (strong, weak); return its artifact."""
    options = options or TfidfOptions()
    sources, examples = usable_examples(datasets, strong, weak)
    y = labels(examples, strong, weak, options.label)
    if len(set((y > 0.5).tolist())) < 2 and set(np.unique(y)) <= {0.0, 1.0}:
        raise ValueError("every example has the same label: nothing to learn")
    texts = [prepare(e.text()) for e in examples]
    dense = _dense(examples) if options.dense else None
    names = [d.name for d, kept in sources for _ in kept]
    folds = max(options.cv_folds, 1)
    assignment = np.array([fold_of(e.id, options.seed, folds) for e in examples])
    grid: dict[float, dict[str, float | None]] = {}
    candidates = C_GRID if options.C == "cv" else (float(options.C),)
    if options.cv_folds > 1:
        for c in candidates:
            grid[c] = _cv_apgr(
                examples, texts, dense, y, names, assignment, c, options, strong, weak
            )
    if options.C == "cv":
        c = max(grid, key=lambda k: mean_apgr(grid[k])) if grid else 1.0
    else:
        c = float(options.C)
    fitted = _fit(texts, dense, y, c, options)
    artifact = export(fitted, options.dense)
    metadata: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "learner": "tfidf",
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
        "vocabulary": len(artifact.weights),
        "C": c,
        "options": {
            "label": options.label,
            "C": options.C,
            "dense": options.dense,
            "min_df": options.min_df,
            "max_features": options.max_features,
            "cv_folds": options.cv_folds,
            "seed": options.seed,
        },
        "metrics": {
            "train_apgr": _apgr_by_name(
                examples, list(_predict(fitted, texts, dense)), names, strong, weak
            ),
            "cv_apgr_by_C": {str(k): v for k, v in grid.items()},
            **({"cv_apgr": grid[c]} if c in grid else {}),
        },
    }
    return TfidfArtifact(
        intercept=artifact.intercept,
        idf=artifact.idf,
        weights=artifact.weights,
        dense_features=artifact.dense_features,
        dense_mean=artifact.dense_mean,
        dense_scale=artifact.dense_scale,
        dense_weights=artifact.dense_weights,
        training=metadata,
    )


def export(fitted: _Fitted, dense: bool) -> TfidfArtifact:
    """The fitted vectorizer and model as an artifact (full float precision)."""
    vocabulary = fitted.vectorizer.vocabulary_
    coef = fitted.model.coef_[0]
    idf = fitted.vectorizer.idf_
    terms = {t: (float(idf[i]), float(coef[i])) for t, i in vocabulary.items() if coef[i] != 0.0}
    width = len(vocabulary)
    return TfidfArtifact(
        intercept=float(fitted.model.intercept_[0]),
        idf={t: v[0] for t, v in terms.items()},
        weights={t: v[1] for t, v in terms.items()},
        dense_features=DENSE_FEATURES if dense else (),
        dense_mean=tuple(float(m) for m in fitted.mean),
        dense_scale=tuple(float(s) for s in fitted.scale),
        dense_weights=tuple(float(w) for w in coef[width:]) if dense else (),
    )


def _apgr_by_name(
    examples: Sequence[RoutingExample],
    scores: Sequence[float],
    names: Sequence[str],
    strong: str,
    weak: str,
) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for name in dict.fromkeys(names):
        rows = [i for i, n in enumerate(names) if n == name]
        value = evaluate([examples[i] for i in rows], [scores[i] for i in rows], strong, weak).apgr
        result[name] = None if value is None else round(value, 4)
    return result


def _cv_apgr(
    examples: Sequence[RoutingExample],
    texts: Sequence[str],
    dense: FloatArray | None,
    y: FloatArray,
    names: Sequence[str],
    assignment: Any,
    c: float,
    options: TfidfOptions,
    strong: str,
    weak: str,
) -> dict[str, float | None]:
    """Mean over folds of each fold's APGR, per dataset."""
    per_name: dict[str, list[float]] = {n: [] for n in dict.fromkeys(names)}
    for fold in range(options.cv_folds):
        test = np.flatnonzero(assignment == fold)
        train_rows = np.flatnonzero(assignment != fold)
        if len(test) == 0 or len(set(y[train_rows].tolist())) < 2:
            continue
        fitted = _fit(
            [texts[int(i)] for i in train_rows],
            None if dense is None else dense[train_rows],
            y[train_rows],
            c,
            options,
        )
        scores = _predict(
            fitted, [texts[int(i)] for i in test], None if dense is None else dense[test]
        )
        held = [examples[int(i)] for i in test]
        apgrs = _apgr_by_name(held, list(scores), [names[int(i)] for i in test], strong, weak)
        for name, value in apgrs.items():
            if value is not None:
                per_name[name].append(value)
    return {n: (round(float(np.mean(v)), 4) if v else None) for n, v in per_name.items()}
