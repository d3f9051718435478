"""Does a wordllama sentence embedding help the learned router in distribution? (issue #12)

The bar (issue #12): in distribution, i.e. each RouterBench set's train split halved by a
hash of the sample id (`router_quality.half`, the same halves as `router_quality.py`),
trained on half a and scored on half b, for both weak models, a learner must beat BOTH
prompt length and the plain scikit-learn TF-IDF + L2 LR baseline on every one of the 6
(set, weak) pairs (APGR), within 200 us p99 per request.

Methods, all trained on half a only (every choice by 5-fold CV on half a, folds by
`blending.fold_of(id, seed)`; CV score = mean per-fold APGR; labels = the tfidf learner's
default `consensus`, fitted exactly as soft labels, as `tfidf_training` does):

* `tfidf`: the current tfidf learner (`train_tfidf`, default options), scored through
  `LearnedClassifier` as `router_quality.py` does;
* `sklearn-tfidf-lr`: `router_quality.sklearn_baseline` (word 1-2-grams, sublinear tf, C=1);
* `length`: `LengthScorer`;
* `emb-lr`: L2 LR on the wordllama embedding (l2_supercat, 256-d, mean-pooled, unit
  norm) of the prompt's ask (`features.extract(text).ask`, what the tfidf learner reads
  too, capped at 1200 chars), columns standardised; C from `EMB_C_GRID`; Platt-scaled on
  its CV held-out logits against the `hard` label (as the tfidf learner is);
* `concat`: one L2 LR over [the tfidf learner's design: tf-idf of the ask (L2 rows) |
  standardised `DENSE_FEATURES`] + beta * standardised embedding / sqrt(256) (so the
  block's rows have norm ~beta, as the tf-idf block's have 1); (C, beta) from
  `C_GRID` x `BETAS`;
* `blend`: w * p(tfidf) + (1 - w) * p(emb-lr), both calibrated probabilities, w from
  `WEIGHTS` chosen on out-of-fold probabilities of both (nested CV: each outer fold
  refits both learners, their own CV included, on the other folds);
* `emb-lr-full` (for information): `emb-lr` on the whole prompt, few-shot examples and all.

The embedding is loaded from the wheel by explicit path (`load_wordllama`), never the
network; `wordllama` is not a tierline dependency: `pip install wordllama` first.
`--timing` measures per-prompt inference cost instead (us, p50/p99, CPU and wall, one
core) of the embedding and of the current tfidf classifier on the test halves' prompts.

    python bench/embedding_experiment.py [--data DIR] [--seed 0] [--json] [--timing]
        [--weak MODEL ...]        # a subset of the weak models (e.g. one per process)
    python bench/embedding_experiment.py --merge a.json b.json   # their reports' table

Measured 2026-12 (wordllama 0.4.0.post1, scikit-learn 1.9.1), seed 0, strong
gpt-4-1106-preview, APGR on half b (train/test rows: arc 546/481, mbpp 154/145,
winogrande 425/462):

    set         weak        tfidf  sklearn  length  emb-lr  concat  blend  emb-lr-full
    arc         mixtral     0.509  0.490    0.554   0.526   0.518   0.526  0.529
    arc         mistral-7b  0.544  0.544    0.509   0.498   0.511   0.519  0.490
    mbpp        mixtral     0.561  0.559    0.469   0.526   0.565   0.561  0.526
    mbpp        mistral-7b  0.529  0.530    0.526   0.519   0.529   0.533  0.519
    winogrande  mixtral     0.533  0.497    0.448   0.501   0.523   0.519  0.494
    winogrande  mistral-7b  0.512  0.495    0.532   0.470   0.476   0.493  0.456

Pairs (of 6) on which a method beats both baselines, seeds 0 / 1 / 2: tfidf 2/3/1,
emb-lr 1/1/0, concat 2/3/0, blend 3/3/1, emb-lr-full 0/1/1. None reaches 6/6 on any
seed; every method's APGR is 0.40-0.68 and which one leads flips with the seed (the
halves are 145-531 prompts). The embedding alone costs ~300 us p50 / ~750 us p99 per
ask on this box (the Rust tokenizer alone ~150 / ~450), against the 200 us p99 budget
for the whole classifier. So it is not in the product.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from router_quality import DATA, STRONG, WEAKS, half, sets, sklearn_baseline, subset

from tierline.processors.learning.blending import fold_of, platt
from tierline.processors.learning.datasets import Dataset, RoutingExample, load_dataset
from tierline.processors.learning.harness import evaluate
from tierline.processors.learning.scorers import ClassifierScorer, LengthScorer
from tierline.processors.learning.tfidf_training import C_GRID, TfidfOptions, train_tfidf
from tierline.processors.learning.training import labels
from tierline.processors.routing.classifiers.features import extract, forget
from tierline.processors.routing.classifiers.learned import LearnedClassifier, featurize
from tierline.processors.routing.classifiers.tfidf import analyze, prepare

FOLDS = 5
EMB_C_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
BETAS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: blend weight of the tfidf learner; ties keep the first (tfidf alone)
WEIGHTS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
METHODS = ("tfidf", "sklearn-tfidf-lr", "length", "emb-lr", "concat", "blend", "emb-lr-full")
BASELINES = ("sklearn-tfidf-lr", "length")

Array = np.ndarray[Any, np.dtype[np.float64]]
Rows = np.ndarray[Any, np.dtype[np.intp]]


# --- the embedding -------------------------------------------------------------------------


def load_wordllama() -> Any:
    """wordllama's l2_supercat 256-d model from the files its wheel ships, no network.

    `WordLlama.load` looks for the tokenizer under `<package>/tokenizer/`, the wheel has it
    under `<package>/tokenizers/`; as a `cache_dir`, the package folder itself has both
    `weights/` and `tokenizers/`, and `disable_download` makes a missing file an error.
    """
    import wordllama
    from wordllama import WordLlama

    root = Path(wordllama.__file__).parent
    for needed in (
        "weights/l2_supercat_256.safetensors",
        "tokenizers/l2_supercat_tokenizer_config.json",
    ):
        if not (root / needed).is_file():
            raise FileNotFoundError(f"wordllama wheel without {needed}")
    return WordLlama.load("l2_supercat", dim=256, cache_dir=root, disable_download=True)


def ask(text: str) -> str:
    return extract(text).ask


def embed(model: Any, texts: Sequence[str]) -> Array:
    out: Array = np.asarray(model.embed(list(texts), norm=True), dtype=np.float64)
    return out


# --- fitting ---------------------------------------------------------------------------------


def fit_lr(x: Any, y: Array, c: float) -> Any:
    """L2 LR on soft labels, the exact soft log loss (each row as 1 and as 0, weighted)."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n = x.shape[0]
    stacked = sp.vstack([x, x]).tocsr() if sp.issparse(x) else np.vstack([x, x])
    targets = np.r_[np.ones(n), np.zeros(n)].astype(np.int64)
    model = LogisticRegression(C=c, max_iter=5000, tol=1e-6)
    return model.fit(stacked, targets, sample_weight=np.r_[y, 1.0 - y])


def apgr(rows: Sequence[RoutingExample], scores: Sequence[float] | Array, weak: str) -> float:
    value = evaluate(rows, list(scores), STRONG, weak).apgr
    return float("nan") if value is None else float(value)


def folds_of(rows: Sequence[RoutingExample], seed: int) -> Rows:
    return np.array([fold_of(e.id, seed, FOLDS) for e in rows])


def cv_apgr(
    rows: Sequence[RoutingExample],
    assignment: Rows,
    weak: str,
    fit_predict: Callable[[Rows, Rows], Array],
) -> tuple[float, Array]:
    """Mean per-fold APGR of out-of-fold scores, and the out-of-fold scores."""
    held = np.full(len(rows), np.nan)
    values = []
    for fold in range(FOLDS):
        test = np.flatnonzero(assignment == fold)
        train = np.flatnonzero(assignment != fold)
        if len(test) == 0:
            continue
        held[test] = fit_predict(train, test)
        value = apgr([rows[int(i)] for i in test], held[test], weak)
        if not math.isnan(value):
            values.append(value)
    return (float(np.mean(values)) if values else float("nan")), held


def standardise(train: Array, *others: Array) -> list[Array]:
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return [(m - mean) / scale for m in (train, *others)]


class EmbeddingLR:
    """`emb-lr`: C by CV APGR, then Platt scaling on the chosen C's out-of-fold logits."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.record: dict[str, Any] = {}

    def fit(
        self, rows: Sequence[RoutingExample], x: Array, y: Array, hard: Array, weak: str
    ) -> EmbeddingLR:
        assignment = folds_of(rows, self.seed)
        grid: dict[float, float] = {}
        logits: dict[float, Array] = {}
        for c in EMB_C_GRID:

            def fit_predict(train: Rows, test: Rows, c: float = c) -> Array:
                xs, xt = standardise(x[train], x[test])
                out: Array = fit_lr(xs, y[train], c).decision_function(xt)
                return out

            grid[c], logits[c] = cv_apgr(rows, assignment, weak, fit_predict)
        self.c = max(grid, key=lambda k: (grid[k], -k))  # ties: the stronger penalty
        self.mean = x.mean(axis=0)
        self.scale = x.std(axis=0)
        self.scale[self.scale < 1e-9] = 1.0
        self.model = fit_lr((x - self.mean) / self.scale, y, self.c)
        z = logits[self.c]
        ok = np.isfinite(z)
        self.a, self.b = platt(z[ok], hard[ok], np.zeros(int(ok.sum()), dtype=np.int64))
        self.record = {"C": self.c, "cv_apgr_by_C": {str(k): round(v, 4) for k, v in grid.items()}}
        return self

    def predict(self, x: Array) -> Array:
        z = self.model.decision_function((x - self.mean) / self.scale)
        out: Array = 1.0 / (1.0 + np.exp(-np.clip(self.a * z + self.b, -40, 40)))
        return out


def concat_design(
    texts_train: Sequence[str],
    dense_train: Array,
    emb_train: Array,
    texts_test: Sequence[str],
    dense_test: Array,
    emb_test: Array,
    beta: float,
) -> tuple[Any, Any]:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        analyzer=analyze, sublinear_tf=True, max_features=50_000, dtype=np.float64
    )
    tf_train = vectorizer.fit_transform(texts_train)
    tf_test = vectorizer.transform(texts_test)
    d_train, d_test = standardise(dense_train, dense_test)
    e_train, e_test = (
        beta * m / math.sqrt(emb_train.shape[1]) for m in standardise(emb_train, emb_test)
    )
    left = sp.hstack([tf_train, sp.csr_matrix(d_train), sp.csr_matrix(e_train)]).tocsr()
    right = sp.hstack([tf_test, sp.csr_matrix(d_test), sp.csr_matrix(e_test)]).tocsr()
    return left, right


def fit_concat(
    rows: Sequence[RoutingExample],
    texts: Sequence[str],
    dense: Array,
    emb: Array,
    y: Array,
    weak: str,
    seed: int,
) -> tuple[float, float, dict[str, float]]:
    """(C, beta) by CV APGR on the training rows; the grid's CV APGRs."""
    assignment = folds_of(rows, seed)
    grid: dict[tuple[float, float], float] = {}
    for beta in BETAS:
        for c in C_GRID:

            def fit_predict(train: Rows, test: Rows, c: float = c, beta: float = beta) -> Array:
                left, right = concat_design(
                    [texts[int(i)] for i in train], dense[train], emb[train],
                    [texts[int(i)] for i in test], dense[test], emb[test], beta,
                )  # fmt: skip
                out: Array = fit_lr(left, y[train], c).decision_function(right)
                return out

            grid[(c, beta)] = cv_apgr(rows, assignment, weak, fit_predict)[0]
    c, beta = max(grid, key=lambda k: (grid[k], -k[0], -k[1]))
    return c, beta, {f"C={k[0]},beta={k[1]}": round(v, 4) for k, v in grid.items()}


# --- one (set, weak) pair ----------------------------------------------------------------------


def pair(train_set: Dataset, test_set: Dataset, weak: str, seed: int, wl: Any) -> dict[str, Any]:
    rows = [e for e in train_set.examples if STRONG in e.outcomes and weak in e.outcomes]
    test = [e for e in test_set.examples if STRONG in e.outcomes and weak in e.outcomes]
    y = labels(rows, STRONG, weak, "consensus")
    hard = labels(rows, STRONG, weak, "hard")
    emb, emb_test = (
        embed(wl, [ask(e.text()) for e in rows]),
        embed(wl, [ask(e.text()) for e in test]),
    )
    scores: dict[str, Array] = {}
    chosen: dict[str, Any] = {}

    tfidf = LearnedClassifier(train_tfidf([train_set], STRONG, weak, TfidfOptions(seed=seed)))
    scores["tfidf"] = np.array([ClassifierScorer(tfidf).score(e) for e in test])
    baseline = sklearn_baseline(train_set, weak)
    scores["sklearn-tfidf-lr"] = np.array([baseline(e) for e in test])
    scores["length"] = np.array([LengthScorer().score(e) for e in test])

    emb_lr = EmbeddingLR(seed).fit(rows, emb, y, hard, weak)
    scores["emb-lr"] = emb_lr.predict(emb_test)
    chosen["emb-lr"] = emb_lr.record

    texts = [prepare(e.text()) for e in rows]
    texts_test = [prepare(e.text()) for e in test]
    dense = np.array([featurize(e.text()).dense for e in rows], dtype=np.float64)
    dense_test = np.array([featurize(e.text()).dense for e in test], dtype=np.float64)
    c, beta, grid = fit_concat(rows, texts, dense, emb, y, weak, seed)
    left, right = concat_design(texts, dense, emb, texts_test, dense_test, emb_test, beta)
    scores["concat"] = fit_lr(left, y, c).decision_function(right)
    chosen["concat"] = {"C": c, "beta": beta, "cv_apgr": grid}

    # blend: out-of-fold calibrated probabilities of both learners (nested CV), then w
    assignment = folds_of(rows, seed)
    oof = {"tfidf": np.full(len(rows), np.nan), "emb-lr": np.full(len(rows), np.nan)}
    for fold in range(FOLDS):
        inner = np.flatnonzero(assignment != fold)
        outer = np.flatnonzero(assignment == fold)
        if len(outer) == 0:
            continue
        part = Dataset(train_set.name, tuple(rows[int(i)] for i in inner), path=train_set.path)
        model = LearnedClassifier(train_tfidf([part], STRONG, weak, TfidfOptions(seed=seed)))
        oof["tfidf"][outer] = [ClassifierScorer(model).score(rows[int(i)]) for i in outer]
        inner_rows = [rows[int(i)] for i in inner]
        inner_emb = EmbeddingLR(seed).fit(inner_rows, emb[inner], y[inner], hard[inner], weak)
        oof["emb-lr"][outer] = inner_emb.predict(emb[outer])
    by_w: dict[float, float] = {}
    for w in WEIGHTS:
        blended = w * oof["tfidf"] + (1.0 - w) * oof["emb-lr"]
        values = [
            apgr(
                [rows[int(i)] for i in np.flatnonzero(assignment == k)],
                blended[assignment == k],
                weak,
            )
            for k in range(FOLDS)
            if (assignment == k).any()
        ]
        by_w[w] = float(np.nanmean(values))
    w = max(WEIGHTS, key=lambda k: by_w[k])  # first maximum: ties keep tfidf alone
    scores["blend"] = w * scores["tfidf"] + (1.0 - w) * scores["emb-lr"]
    chosen["blend"] = {"w_tfidf": w, "cv_apgr_by_w": {str(k): round(v, 4) for k, v in by_w.items()}}

    full = embed(wl, [e.text() for e in rows])
    full_lr = EmbeddingLR(seed).fit(rows, full, y, hard, weak)
    scores["emb-lr-full"] = full_lr.predict(embed(wl, [e.text() for e in test]))
    chosen["emb-lr-full"] = full_lr.record

    result = {name: round(apgr(test, scores[name], weak), 4) for name in METHODS}
    return {"train": len(rows), "test": len(test), "apgr": result, "chosen": chosen}


def run(data: Path, seed: int, weaks: Sequence[str] = WEAKS) -> dict[str, Any]:
    wl = load_wordllama()
    report: dict[str, Any] = {"strong": STRONG, "seed": seed, "data": str(data), "pairs": {}}
    for name in sets(data):
        full = load_dataset(data / f"{name}_train.csv", name)
        a = subset(full, lambda e: half(e.id, seed) == 0, "/a")
        b = subset(full, lambda e: half(e.id, seed) == 1, "/b")
        for weak in weaks:
            started = time.monotonic()
            report["pairs"][f"{name}|{weak}"] = pair(a, b, weak, seed, wl)
            print(f"{name} / {weak}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Per method, on how many pairs it beats both baselines, and its mean APGR."""
    pairs = list(report["pairs"].values())
    out = {}
    for method in METHODS:
        if method in BASELINES:
            continue
        wins = sum(all(p["apgr"][method] > p["apgr"][base] for base in BASELINES) for p in pairs)
        out[method] = {
            "beats_both_on": f"{wins}/{len(pairs)}",
            "mean_apgr": round(statistics.fmean(p["apgr"][method] for p in pairs), 4),
        }
    for base in BASELINES:
        out[base] = {"mean_apgr": round(statistics.fmean(p["apgr"][base] for p in pairs), 4)}
    return out


# --- inference cost ------------------------------------------------------------------------


def timing(data: Path, seed: int) -> dict[str, Any]:
    """us per prompt, one prompt at a time, over the in-distribution test halves' prompts."""
    wl = load_wordllama()
    prompts = []
    trains = []
    for name in sets(data):
        full = load_dataset(data / f"{name}_train.csv", name)
        prompts += [e.text() for e in full.examples if half(e.id, seed) == 1]
        trains.append(subset(full, lambda e: half(e.id, seed) == 0, "/a"))
    tfidf = LearnedClassifier(train_tfidf(trains, STRONG, WEAKS[0], TfidfOptions(seed=seed)))
    tokenizer = wl.tokenizer
    table = wl.embedding
    weights = np.random.default_rng(seed).standard_normal(table.shape[1]).astype(np.float32)

    def embed_ask(text: str) -> object:
        return wl.embed(extract(text).ask, norm=True)

    def emb_lr_ask(text: str) -> object:
        # everything `emb-lr` does at inference: embed, one 256-d dot product, a sigmoid
        vector = wl.embed(extract(text).ask, norm=True)[0]
        return 1.0 / (1.0 + math.exp(-float(vector @ weights)))

    def tokenize_ask(text: str) -> object:
        return tokenizer.encode(extract(text).ask, add_special_tokens=False).ids

    def pooled_ask(text: str) -> object:
        # the same embedding without the library's batching/padding: ids, gather, mean, norm
        ids = tokenizer.encode(extract(text).ask, add_special_tokens=False).ids
        vector = table[ids].mean(axis=0) if ids else np.zeros(table.shape[1], np.float32)
        return vector / (np.linalg.norm(vector) or 1.0)

    def embed_full(text: str) -> object:
        return wl.embed(text, norm=True)

    def tfidf_classify(text: str) -> object:
        return tfidf.classify_text(text)

    def tfidf_plus_emb(text: str) -> object:
        tfidf.classify_text(text)
        return emb_lr_ask(text)

    calls: dict[str, Callable[[str], object]] = {
        "tfidf classifier (current)": tfidf_classify,
        "wordllama embed(ask)": embed_ask,
        "wordllama tokenize(ask) only": tokenize_ask,
        "ids->gather->mean->norm (ask)": pooled_ask,
        "emb-lr score (ask)": emb_lr_ask,
        "tfidf classifier + emb-lr": tfidf_plus_emb,
        "wordllama embed(full prompt)": embed_full,
    }
    out: dict[str, Any] = {"prompts": len(prompts)}
    for name, call in calls.items():
        for text in prompts[:200]:
            call(text)
            forget()
        gc.collect()
        cpu, wall = [], []
        for text in prompts:
            forget()  # each prompt is new to the router
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            call(text)
            wall.append((time.perf_counter_ns() - w0) / 1000.0)
            cpu.append((time.thread_time_ns() - c0) / 1000.0)
        out[name] = {"cpu": summary(cpu), "wall": summary(wall)}
    return out


def summary(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)

    return {"p50_us": pct(50), "p99_us": pct(99), "mean_us": round(statistics.fmean(ordered), 1)}


# --- output --------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    lines = [f"in-distribution APGR (train half a, score half b; seed {report['seed']})"]
    lines.append(f"{'set':<15}{'weak':<14}" + "".join(f"{m:>18}" for m in METHODS))
    for key, result in report["pairs"].items():
        name, weak = key.split("|")
        cells = "".join(f"{result['apgr'][m]:>18.3f}" for m in METHODS)
        lines.append(f"{name:<15}{weak.split('/')[-1]:<14}{cells}")
    lines.append("")
    for method, v in report["verdict"].items():
        lines.append(f"{method:<18} {json.dumps(v)}")
    return "\n".join(lines)


def timing_table(result: dict[str, Any]) -> str:
    lines = [f"per-prompt cost over {result['prompts']} prompts (us)"]
    lines.append(f"{'call':<32}{'cpu p50':>9}{'cpu p99':>9}{'wall p50':>10}{'wall p99':>10}")
    for name, v in result.items():
        if name == "prompts":
            continue
        c, w = v["cpu"], v["wall"]
        lines.append(
            f"{name:<32}{c['p50_us']:>9}{c['p99_us']:>9}{w['p50_us']:>10}{w['p99_us']:>10}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--weak", action="append", default=None, help="only these weak models")
    parser.add_argument("--timing", action="store_true", help="measure inference cost only")
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="print the table of --json reports (e.g. per --weak)"
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"{args.data}: no such directory (RouterBench-style *_train/_test.csv)")
    if args.timing:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
        result = timing(args.data, args.seed)
        print(json.dumps(result) if args.json else timing_table(result))
        return 0
    if args.merge:
        reports = [json.loads(p.read_text()) for p in args.merge]
        report = {**reports[0], "pairs": {k: v for r in reports for k, v in r["pairs"].items()}}
        report["pairs"] = dict(sorted(report["pairs"].items()))
        report["verdict"] = verdict(report)
        print(json.dumps(report) if args.json else table(report))
        return 0
    report = run(args.data, args.seed, args.weak or WEAKS)
    print(json.dumps(report) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
