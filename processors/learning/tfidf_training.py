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
are hard to beat). Measured later on many more pairs (`tfidf_blend`), it ranks
above `ngram` in distribution, and, blended with the priors across datasets,
out of distribution too: it is `tierline train`'s default learner.

The blend (`blend="cv"`, the default): trained on several datasets, the text
model is mixed with the rules' score and the prompt's length, the mix chosen by
leaving each dataset out (`tfidf_blend`); on one dataset it stays alone.

The dense prompt features (`learned.DENSE_FEATURES`, standardised) can be
appended: they carry length and structure, which TF-IDF's L2 normalisation
removes. By default (`dense="cv"`) both designs are cross-validated with every C
and the better kept: on short asks where the words carry the signal (MBPP) the
dense block is mostly noise, on long prompts (ARC) it carries length. In
distribution (each RouterBench set halved by a hash of the id, trained on one half
with only the two models' outcomes; 120 set/weak/halving pairs: the ten weak models,
halving seeds 0-3) mean APGR: with the dense features always 0.530, never 0.541,
chosen 0.543 (chosen minus always +0.013, standard error 0.006; sklearn baseline 0.539,
length 0.513). It chose the text alone on 28 of the 40 MBPP pairs, 16 of 40 ARC and 12
of 40 Winogrande. sklearn is imported only here, at training
time; `export` writes the fitted vocabulary, idf, coefficients and intercept
into the JSON artifact that `classifiers.tfidf` scores without sklearn.

Calibration (`calibrate=True`, the default, with CV folds): the fitted
probability is of the training label (by default `consensus`, whose mean is
above the rate at which the weak model actually falls short), and the routing
score is meant to be P(weak scores below strong). So the logit is recalibrated
by Platt scaling, `a * z + b` fitted on the cross-validated held-out logits of
the chosen C against the `hard` label (`blending.platt`, one group: this
model has one intercept), and folded into the exported intercept and weights:
the artifact stays one linear model, scored in pure Python; `a > 0`, so the
ranking (APGR) is unchanged. Trained on the arc/mbpp/winogrande train splits
together, scored on the three test splits pooled (strong gpt-4-1106-preview;
`tierline eval`; "base rate" is the Brier of predicting the observed rate):

    weak               Platt slope, intercept  Brier before  after   base rate  ECE before  after
    mixtral-8x7b-chat  1.023, -0.251           0.1386        0.1362  0.1398     0.0488      0.0139
    mistral-7b-chat    0.629, -0.177           0.2130        0.2121  0.2146     0.0379      0.0367

Lower on both; for mixtral by more than chance (paired bootstrap over test
prompts: 95% interval of the Brier change -0.0045..-0.0002), for mistral-7b
not (-0.0032..+0.0014; mbpp alone got worse, 0.2063 -> 0.2105). The slope, the
intercept and the cross-validated Brier before and after are recorded in the
artifact's `training.calibration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from tierline.processors.learning import tfidf_blend
from tierline.processors.learning.blending import fold_of, mean_apgr, platt
from tierline.processors.learning.datasets import Dataset, RoutingExample
from tierline.processors.learning.fitting import FloatArray, Label
from tierline.processors.learning.harness import evaluate
from tierline.processors.learning.training import labels, usable_examples
from tierline.processors.routing.classifiers.hashed_terms import as_document
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    featurize,
)
from tierline.processors.routing.classifiers.recorded import text_features
from tierline.processors.routing.classifiers.tfidf import TfidfArtifact, analyze, prepare

C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class TfidfOptions:
    label: Label = "consensus"
    #: C of the logistic regression; "cv" picks it from `C_GRID` by cross-validated APGR
    C: float | str = "cv"
    #: append the dense prompt features; "cv" fits with and without them and keeps what
    #: the cross-validated APGR prefers (with C; ties keep them). The artifact carries the
    #: dense features either way (zero weights without them), so a blend can fold in
    dense: bool | Literal["cv"] = "cv"
    min_df: int = 1
    max_features: int | None = 50_000
    cv_folds: int = 5
    seed: int = 0
    #: fit on hashed term ids (`hashed_terms`), the features the router records
    hashed: bool = False
    #: Platt-scale the logit on the CV held-out logits against the `hard` label (needs folds)
    calibrate: bool = True
    #: (rules, length) weights of the blend with the priors (`tfidf_blend`; needs `dense`);
    #: "cv" chooses them on held-out scores (other datasets' models when there are several),
    #: "none" keeps the text model alone
    blend: tuple[float, float] | Literal["cv", "none"] = "cv"


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
        # the terms serving reads: unigrams and bigrams of the ask (hashed: their ids)
        analyzer=str.split if options.hashed else analyze,
        sublinear_tf=True,
        min_df=min(options.min_df, len(texts)),
        max_features=options.max_features,
        dtype=np.float64,
    )
    vectorizer.fit(texts)
    mean, scale = _standardisation(dense) if dense is not None else (np.zeros(0), np.zeros(0))
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


def _standardisation(dense: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Each dense feature's mean and spread (1 where it does not vary)."""
    scale = dense.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return dense.mean(axis=0), scale


def _predict(fitted: _Fitted, texts: Sequence[str], dense: FloatArray | None) -> FloatArray:
    result: FloatArray = fitted.model.predict_proba(_design(fitted, texts, dense))[:, 1]
    return result


def _logits(fitted: _Fitted, texts: Sequence[str], dense: FloatArray | None) -> FloatArray:
    result: FloatArray = fitted.model.decision_function(_design(fitted, texts, dense))
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
    texts = [_document(e.text(), options.hashed) for e in examples]
    dense = _dense(examples) if options.dense else None
    names = [d.name for d, kept in sources for _ in kept]
    folds = max(options.cv_folds, 1)
    assignment = np.array([fold_of(e.id, options.seed, folds) for e in examples])
    # (with the dense features?, C) -> CV APGR per dataset, and the held-out logits
    grid: dict[tuple[bool, float], dict[str, float | None]] = {}
    held_out: dict[tuple[bool, float], FloatArray] = {}
    designs = (True, False) if options.dense == "cv" else (bool(options.dense),)
    candidates = C_GRID if options.C == "cv" else (float(options.C),)
    if options.cv_folds > 1:
        for with_dense in designs:
            for c in candidates:
                grid[with_dense, c], held_out[with_dense, c] = _cross_validate(
                    examples,
                    texts,
                    dense if with_dense else None,
                    y,
                    names,
                    assignment,
                    c,
                    options,
                    strong,
                    weak,
                )
    if grid:
        chosen = max(grid, key=lambda k: mean_apgr(grid[k]))  # ties: the first, dense
    else:  # no folds: nothing to choose by
        chosen = (designs[0], 1.0 if options.C == "cv" else float(options.C))
    with_dense, c = chosen
    fit_dense = dense if with_dense else None
    fitted = _fit(texts, fit_dense, y, c, options)
    artifact = export(fitted, with_dense, hashed=options.hashed)
    if dense is not None and not with_dense:
        artifact = _zero_dense(artifact, dense)
    calibration_logits = held_out.get(chosen)
    blend: dict[str, Any] = {"chosen_by": "none", "rules": 0.0, "length": 0.0}
    if dense is not None and options.blend != "none":
        artifact, calibration_logits, blend = _blend(
            artifact,
            examples,
            texts,
            dense,
            fit_dense,
            y,
            names,
            sources,
            c,
            options,
            strong,
            weak,
            held_out.get(chosen),
        )
    calibration: dict[str, Any] = {"method": "none", "why": "calibrate=False"}
    if options.calibrate:
        hard = labels(examples, strong, weak, "hard")
        artifact, calibration = calibrate(artifact, calibration_logits, hard)
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
        "dense": with_dense,
        "blend": blend,
        "calibration": calibration,
        "options": {
            "label": options.label,
            "C": options.C,
            "dense": options.dense,
            "min_df": options.min_df,
            "max_features": options.max_features,
            "cv_folds": options.cv_folds,
            "seed": options.seed,
            "hashed": options.hashed,
            "calibrate": options.calibrate,
            "blend": options.blend if isinstance(options.blend, str) else list(options.blend),
        },
        "metrics": {
            "train_apgr": _apgr_by_name(
                examples, list(_predict(fitted, texts, fit_dense)), names, strong, weak
            ),
            # the chosen design's; the other's (dense: "cv") beside it
            "cv_apgr_by_C": {str(k): v for (d, k), v in grid.items() if d == with_dense},
            **(
                {
                    "cv_apgr_by_C_other_design": {
                        str(k): v for (d, k), v in grid.items() if d != with_dense
                    }
                }
                if len(designs) > 1
                else {}
            ),
            **({"cv_apgr": grid[chosen]} if chosen in grid else {}),
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
        hashed=artifact.hashed,
    )


def _zero_dense(artifact: TfidfArtifact, dense: FloatArray) -> TfidfArtifact:
    """A text-only fit with the dense feature slots its blend folds into: the features'
    standardisation from `dense`, every weight zero (its scores are unchanged)."""
    mean, scale = _standardisation(dense)
    return replace(
        artifact,
        dense_features=DENSE_FEATURES,
        dense_mean=tuple(float(m) for m in mean),
        dense_scale=tuple(float(v) for v in scale),
        dense_weights=(0.0,) * len(DENSE_FEATURES),
    )


def _blend(
    artifact: TfidfArtifact,
    examples: Sequence[RoutingExample],
    texts: Sequence[str],
    dense: FloatArray,
    fit_dense: FloatArray | None,
    y: FloatArray,
    names: Sequence[str],
    sources: Sequence[tuple[Dataset, list[RoutingExample]]],
    c: float,
    options: TfidfOptions,
    strong: str,
    weak: str,
    k_fold_logits: FloatArray | None,
) -> tuple[TfidfArtifact, FloatArray | None, dict[str, Any]]:
    """Blend the text model with the priors (`tfidf_blend`); return the blended artifact,
    the held-out blended logits (what calibration is fitted on) and what to record of it.

    A given mix is standardised on held-out logits. "cv" chooses one only when there are
    several datasets, each scored by a model fitted on the others. On one dataset the
    text model stays alone: its dense features carry length and the rules' score already,
    and choosing a mix on its k-fold scores was noise (30 RouterBench set/weak pairs,
    halves of 140-530 prompts: mean APGR 0.520 alone, 0.493 with the mix; MBPP 0.509 vs
    0.428, where a half's priors ranked well on one half and badly on the other)."""
    # no CV folds asked for (faster), no held-out scores of any kind
    many = options.cv_folds > 1 and sum(1 for _, kept in sources if kept) > 1
    if options.blend == "cv" and not many:
        why = "one dataset: the text model alone" if options.cv_folds > 1 else "no held-out scores"
        return artifact, k_fold_logits, {"chosen_by": f"none ({why})"}
    if many:
        by_dataset = np.array([i for i, (_, kept) in enumerate(sources) for _ in kept])
        _, logits = _cross_validate(
            examples,
            texts,
            fit_dense,
            y,
            names,
            by_dataset,
            c,
            replace(options, cv_folds=len(sources)),
            strong,
            weak,
        )
    else:
        logits = k_fold_logits if k_fold_logits is not None else np.full(len(examples), np.nan)
    rows = [int(i) for i in np.flatnonzero(np.isfinite(logits))]
    if not rows:
        return artifact, k_fold_logits, {"chosen_by": "none (no held-out scores)"}
    parts = tfidf_blend.standardise(logits, dense, artifact)

    def held_out_apgr(scores: FloatArray) -> float:
        # each left-out dataset is scored by one model, so its APGR ranks one model's scores
        kept = [examples[i] for i in rows]
        by_name = _apgr_by_name(kept, list(scores[rows]), [names[i] for i in rows], strong, weak)
        return mean_apgr(by_name)

    grid: dict[tuple[float, float], float] = {}
    if options.blend == "cv":  # only with several datasets (above)
        mix, grid = tfidf_blend.choose(parts, held_out_apgr)
        chosen_by = "leave one dataset out"
    else:
        mix, chosen_by = options.blend, "given"  # type: ignore[assignment]
    blended = tfidf_blend.fold_in(artifact, mix, parts)
    # calibration reads the served logit: unblended, the k-fold held-out logits as before;
    # blended, the held-out mix in the blended logit's units (NaN without a held-out logit)
    served = tfidf_blend.mixed(parts.parts, mix)
    record = {
        "chosen_by": chosen_by,
        "rules": mix[0],
        "length": mix[1],
        "learned": round(1.0 - mix[0] - mix[1], 6),
        "held_out_apgr_by_blend": {f"rules={r},length={n}": v for (r, n), v in grid.items()},
    }
    return blended, served if mix != (0.0, 0.0) else k_fold_logits, record


def _document(text: str, hashed: bool) -> str:
    """What the vectorizer reads of a prompt: its ask's tokens, or its terms' ids."""
    if not hashed:
        return prepare(text)
    found = text_features(text)
    return as_document(found.term_ids, found.term_counts)


def fit_documents(
    documents: Sequence[str],
    dense: FloatArray | None,
    y: FloatArray,
    options: TfidfOptions,
) -> tuple[TfidfArtifact, float, dict[float, float]]:
    """Fit on hashed documents (`hashed_terms.as_document`) with soft labels `y`, C chosen
    by cross-validated log loss (there are no outcome pairs to score APGR on); return the
    artifact, the C and the CV log loss per C."""
    from sklearn.metrics import log_loss

    hashed = TfidfOptions(**{**_fields(options), "hashed": True})
    folds = max(min(options.cv_folds, len(documents)), 1)
    assignment = np.arange(len(documents)) % folds
    np.random.default_rng(options.seed).shuffle(assignment)
    grid: dict[float, float] = {}
    candidates = C_GRID if options.C == "cv" else (float(options.C),)
    for c in candidates if folds > 1 and len(candidates) > 1 else ():
        losses = []
        for fold in range(folds):
            test, train = assignment == fold, assignment != fold
            if not test.any() or len(set((y[train] > 0.5).tolist())) < 2:
                continue
            rows = [documents[int(i)] for i in np.flatnonzero(train)]
            fitted = _fit(rows, None if dense is None else dense[train], y[train], c, hashed)
            held = [documents[int(i)] for i in np.flatnonzero(test)]
            p = _predict(fitted, held, None if dense is None else dense[test])
            truth = np.r_[np.ones(int(test.sum())), np.zeros(int(test.sum()))]
            weights = np.r_[y[test], 1.0 - y[test]]
            losses.append(log_loss(truth, np.r_[p, p], sample_weight=weights, labels=[0, 1]))
        if losses:
            grid[c] = round(float(np.mean(losses)), 6)
    c = (
        min(grid, key=grid.__getitem__)
        if grid
        else float(candidates[0] if options.C != "cv" else 1.0)
    )
    fitted = _fit(documents, dense, y, c, hashed)
    return export(fitted, dense is not None, hashed=True), c, grid


def _fields(options: TfidfOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in TfidfOptions.__slots__}


def calibrate(
    artifact: TfidfArtifact, held_out: FloatArray | None, hard: FloatArray
) -> tuple[TfidfArtifact, dict[str, Any]]:
    """Platt scaling of the artifact's logit, fitted on held-out logits against the `hard`
    label and folded into its intercept and weights (unchanged without held-out logits of
    both outcomes); and what to record of it."""
    none = {"method": "none", "why": "no cross-validated held-out scores of both outcomes"}
    if held_out is None:
        return artifact, none
    rows = np.flatnonzero(np.isfinite(held_out))
    z, y = held_out[rows], hard[rows]
    if len(set(y.tolist())) < 2:
        return artifact, none
    a, b = platt(z, y, np.zeros(len(rows), dtype=np.int64))
    record = {
        "method": "platt",
        "label": "hard: weak scores below strong",
        "fitted_on": f"{len(rows)} cross-validated held-out logits",
        "slope": round(a, 6),
        "intercept": round(b, 6),
        "cv_brier_before": round(_brier(z, y), 6),
        "cv_brier_after": round(_brier(a * z + b, y), 6),
    }
    scaled = replace(
        artifact,
        intercept=a * artifact.intercept + b,
        weights={t: a * w for t, w in artifact.weights.items()},
        dense_weights=tuple(a * w for w in artifact.dense_weights),
    )
    return scaled, record


def _brier(z: FloatArray, y: FloatArray) -> float:
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
    return float(np.mean((p - y) ** 2))


def export(fitted: _Fitted, dense: bool, *, hashed: bool = False) -> TfidfArtifact:
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
        hashed=hashed,
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


def _cross_validate(
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
) -> tuple[dict[str, float | None], FloatArray]:
    """Mean over folds of each fold's APGR, per dataset; and every example's held-out logit
    (NaN where its fold was skipped), what calibration is fitted on."""
    per_name: dict[str, list[float]] = {n: [] for n in dict.fromkeys(names)}
    held_out = np.full(len(examples), np.nan)
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
        held_texts = [texts[int(i)] for i in test]
        held_dense = None if dense is None else dense[test]
        held_out[test] = _logits(fitted, held_texts, held_dense)
        scores = _predict(fitted, held_texts, held_dense)
        held = [examples[int(i)] for i in test]
        apgrs = _apgr_by_name(held, list(scores), [names[int(i)] for i in test], strong, weak)
        for name, value in apgrs.items():
            if value is not None:
                per_name[name].append(value)
    cv = {n: (round(float(np.mean(v)), 4) if v else None) for n, v in per_name.items()}
    return cv, held_out
