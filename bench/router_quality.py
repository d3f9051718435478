"""How well the learned routers rank prompts, against the baselines they must beat.

Two measurements on RouterBench-style data (`../shared/data/routing/routerbench_subset`,
or any directory of `<set>_train.csv` / `<set>_test.csv` pairs), for each weak model:

* **held out**: train on every set's train split pooled, score each test split:
  the ngram and tfidf learners against rules, prompt length and random;
* **in distribution**: each set split in half by a hash of the sample id, train on
  one half, score the other: the learners against length and a plain scikit-learn
  TF-IDF (word 1-2-grams, sublinear tf) + L2 logistic regression baseline.

APGR per set (higher is better, random = 0.5), plus Brier for probabilistic scores.
Deterministic for a seed.

    python bench/router_quality.py [--data DIR] [--weak mistralai/mixtral-8x7b-chat ...]
        [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tierline.processors.learning.datasets import Dataset, RoutingExample, load_dataset
from tierline.processors.learning.harness import evaluate, falls_short
from tierline.processors.learning.metrics import brier_score
from tierline.processors.learning.scorers import ClassifierScorer, LengthScorer, RandomScorer
from tierline.processors.learning.tfidf_training import TfidfOptions, train_tfidf
from tierline.processors.learning.training import TrainingOptions, train
from tierline.processors.routing.classifiers.learned import LearnedClassifier
from tierline.processors.routing.classifiers.rules import RulesClassifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing" / "routerbench_subset"
STRONG = "gpt-4-1106-preview"
WEAKS = ("mistralai/mixtral-8x7b-chat", "mistralai/mistral-7b-chat")

Score = Callable[[RoutingExample], float]


def half(example_id: str, seed: int) -> int:
    return hashlib.blake2b(f"{seed}\0{example_id}".encode(), digest_size=1).digest()[0] % 2


def sets(data: Path) -> list[str]:
    return sorted(p.name.removesuffix("_train.csv") for p in data.glob("*_train.csv"))


def subset(dataset: Dataset, keep: Callable[[RoutingExample], bool], suffix: str) -> Dataset:
    chosen = tuple(e for e in dataset.examples if keep(e))
    return Dataset(f"{dataset.name}{suffix}", chosen, path=dataset.path, models=dataset.models)


def learners(train_sets: Sequence[Dataset], weak: str, seed: int) -> dict[str, Score]:
    ngram = LearnedClassifier(train(train_sets, STRONG, weak, TrainingOptions(seed=seed)))
    tfidf = LearnedClassifier(train_tfidf(train_sets, STRONG, weak, TfidfOptions(seed=seed)))
    hashed = LearnedClassifier(
        train_tfidf(train_sets, STRONG, weak, TfidfOptions(seed=seed, hashed=True))
    )
    return {
        "ngram": ClassifierScorer(ngram).score,
        "tfidf": ClassifierScorer(tfidf).score,
        "tfidf-hashed": ClassifierScorer(hashed).score,
    }


def sklearn_baseline(train_set: Dataset, weak: str) -> Score:
    """The issue's plain baseline: TF-IDF word 1-2-grams, sublinear tf, L2 LR (C=1)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = [e for e in train_set.examples if STRONG in e.outcomes and weak in e.outcomes]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vectorizer.fit_transform([e.text() for e in rows])
    y = falls_short(rows, STRONG, weak)
    model = LogisticRegression(max_iter=2000).fit(x, y)
    return lambda e: float(model.predict_proba(vectorizer.transform([e.text()]))[0, 1])


def measure(
    routers: dict[str, Score], test: Dataset, weak: str
) -> dict[str, dict[str, float | None]]:
    rows = [e for e in test.examples if STRONG in e.outcomes and weak in e.outcomes]
    labels = [float(v) for v in falls_short(rows, STRONG, weak)]
    out: dict[str, dict[str, float | None]] = {}
    for name, score in routers.items():
        scores = [score(e) for e in rows]
        result = evaluate(rows, scores, STRONG, weak, router=name, dataset=test.name)
        probabilistic = name not in ("length", "random") and all(0 <= s <= 1 for s in scores)
        out[name] = {
            "apgr": None if result.apgr is None else round(result.apgr, 4),
            "brier": round(brier_score(scores, labels), 4) if probabilistic else None,
        }
    return out


def run(data: Path, weaks: Sequence[str], seed: int) -> dict[str, Any]:
    names = sets(data)
    report: dict[str, Any] = {"strong": STRONG, "seed": seed, "data": str(data), "weak": {}}
    for weak in weaks:
        started = time.monotonic()
        trains = [load_dataset(data / f"{n}_train.csv", n) for n in names]
        tests = [load_dataset(data / f"{n}_test.csv", n) for n in names]
        held_routers = {
            **learners(trains, weak, seed),
            "rules": ClassifierScorer(RulesClassifier()).score,
            "length": LengthScorer().score,
            "random": RandomScorer(seed).score,
        }
        held = {t.name: measure(held_routers, t, weak) for t in tests}
        inside: dict[str, Any] = {}
        for full in (load_dataset(data / f"{n}_train.csv", n) for n in names):
            a = subset(full, lambda e: half(e.id, seed) == 0, "/a")
            b = subset(full, lambda e: half(e.id, seed) == 1, "/b")
            routers = {
                **learners([a], weak, seed),
                "length": LengthScorer().score,
                "sklearn-tfidf-lr": sklearn_baseline(a, weak),
            }
            inside[full.name] = measure(routers, b, weak)
        report["weak"][weak] = {
            "held_out": held,
            "in_distribution": inside,
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"{weak}: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return report


def table(report: dict[str, Any]) -> str:
    lines = []
    for weak, parts in report["weak"].items():
        for part in ("held_out", "in_distribution"):
            results = parts[part]
            routers = list(next(iter(results.values())))
            lines.append(f"\n{weak} — {part.replace('_', ' ')} (APGR)")
            lines.append(f"{'set':<16}" + "".join(f"{r:>18}" for r in routers))
            for name, by_router in results.items():
                cells = "".join(f"{_fmt(by_router[r]['apgr']):>18}" for r in routers)
                lines.append(f"{name:<16}{cells}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--weak", action="append", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"{args.data}: no such directory (RouterBench-style *_train/_test.csv)")
    report = run(args.data, args.weak or WEAKS, args.seed)
    print(json.dumps(report) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
