"""How well the learned routers rank prompts, against the baselines they must beat.

Three measurements on RouterBench-style data (`../shared/data/routing/routerbench_subset`,
or any directory of `<set>_train.csv` / `<set>_test.csv` pairs), for each weak model:

* **held out**: train on every set's train split pooled, score each test split:
  the ngram and tfidf learners against rules, prompt length and random;
* **in distribution**: each set (its train and test splits together) split in half by
  a hash of the sample id, train on one half, score the other: the learners against
  length and a plain scikit-learn TF-IDF (word 1-2-grams, sublinear tf) + L2 logistic
  regression baseline; `--halvings N` averages N halvings (seeds seed .. seed+N-1),
  since on one halving of a few hundred prompts which router leads flips with the seed;
* **out of distribution** (`--leave-one-out`): train on every other set (both
  splits), score the set left out: what a router trained on public benchmarks does
  on traffic that is none of them.

`--weak all` runs every model in the data as the weak one (strong stays GPT-4);
`--pair-outcomes` keeps only the strong and the weak model's outcomes, as a team's
own data would (the `consensus` label then equals `hard`). The summary counts, per
learner, the (set, weak) pairs where it beats both baselines and its mean APGR.

APGR per set (higher is better, random = 0.5), plus Brier for probabilistic scores.
Deterministic for a seed.

    python bench/router_quality.py [--data DIR] [--weak MODEL ... | --weak all]
        [--pair-outcomes] [--leave-one-out] [--seed 0] [--halvings 1] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tierline.processors.learning.datasets import Dataset, RoutingExample, load_dataset
from tierline.processors.learning.harness import evaluate, falls_short, paired
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


def pair_only(dataset: Dataset, weak: str) -> Dataset:
    """The examples with both outcomes, each keeping only the strong and the weak one."""
    kept = tuple(
        replace(e, outcomes={m: e.outcomes[m] for m in (STRONG, weak)})
        for e in paired(dataset.examples, STRONG, weak)
    )
    return Dataset(dataset.name, kept, path=dataset.path, models=(STRONG, weak))


def whole(data: Path, name: str) -> Dataset:
    """A set's train and test splits together (ids once)."""
    train_split = load_dataset(data / f"{name}_train.csv", name)
    test_split = load_dataset(data / f"{name}_test.csv", name)
    seen: set[str] = set()
    kept = []
    for e in (*train_split.examples, *test_split.examples):
        if e.id not in seen:
            seen.add(e.id)
            kept.append(e)
    return Dataset(name, tuple(kept), path=train_split.path, models=train_split.models)


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


def halved(full: Dataset, weak: str, seed: int) -> dict[str, dict[str, float | None]]:
    """In distribution, one halving: trained on the half a hash of the id (and `seed`)
    puts first, scored on the other."""
    a = subset(full, lambda e: half(e.id, seed) == 0, "/a")
    b = subset(full, lambda e: half(e.id, seed) == 1, "/b")
    routers = {
        **learners([a], weak, seed),
        "length": LengthScorer().score,
        "sklearn-tfidf-lr": sklearn_baseline(a, weak),
    }
    return measure(routers, b, weak)


def averaged(cells: Sequence[dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    """Each router's mean over halvings (of those with a figure), and every halving's APGR:
    one halving of a few hundred prompts decides little (which router leads flips with
    the seed), the mean of several decides more."""
    out: dict[str, Any] = {}
    for name in cells[0]:
        row: dict[str, Any] = {}
        for metric in ("apgr", "brier"):
            values = [c[name][metric] for c in cells if c[name][metric] is not None]
            row[metric] = round(statistics.mean(values), 4) if values else None
        if len(cells) > 1:
            row["apgr_by_halving"] = [c[name]["apgr"] for c in cells]
        out[name] = row
    return out


def run(
    data: Path,
    weaks: Sequence[str],
    seed: int,
    *,
    pair_outcomes: bool = False,
    leave_one_out: bool = False,
    halvings: int = 1,
) -> dict[str, Any]:
    names = sets(data)
    report: dict[str, Any] = {
        "strong": STRONG,
        "seed": seed,
        "halvings": halvings,
        "data": str(data),
        "pair_outcomes": pair_outcomes,
        "weak": {},
    }
    for weak in weaks:
        started = time.monotonic()

        def load(path: Path, name: str, weak: str = weak) -> Dataset:
            loaded = load_dataset(path, name)
            return pair_only(loaded, weak) if pair_outcomes else loaded

        trains = [load(data / f"{n}_train.csv", n) for n in names]
        tests = [load(data / f"{n}_test.csv", n) for n in names]
        held_routers = {
            **learners(trains, weak, seed),
            "rules": ClassifierScorer(RulesClassifier()).score,
            "length": LengthScorer().score,
            "random": RandomScorer(seed).score,
        }
        held = {t.name: measure(held_routers, t, weak) for t in tests}
        wholes = {n: whole(data, n) for n in names}
        if pair_outcomes:
            wholes = {n: pair_only(d, weak) for n, d in wholes.items()}
        inside = {
            n: averaged([halved(d, weak, seed + k) for k in range(halvings)])
            for n, d in wholes.items()
        }
        report["weak"][weak] = {"held_out": held, "in_distribution": inside}
        if leave_one_out:
            outside: dict[str, Any] = {}
            for n in names:
                routers = {
                    **learners([d for m, d in wholes.items() if m != n], weak, seed),
                    "rules": ClassifierScorer(RulesClassifier()).score,
                    "length": LengthScorer().score,
                }
                outside[n] = measure(routers, wholes[n], weak)
            report["weak"][weak]["out_of_distribution"] = outside
        report["weak"][weak]["seconds"] = round(time.monotonic() - started, 1)
        print(f"{weak}: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return report


PARTS = {
    "held_out": ("rules", "length"),
    "in_distribution": ("length", "sklearn-tfidf-lr"),
    "out_of_distribution": ("rules", "length"),
}
LEARNERS = ("ngram", "tfidf", "tfidf-hashed")


def summary(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per measurement and learner: over every (set, weak) pair, its mean APGR and on how
    many pairs it beats both of the measurement's baselines (and each one)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for part, baselines in PARTS.items():
        cells = [r for w in report["weak"].values() for r in w.get(part, {}).values()]
        cells = [c for c in cells if all(c[n]["apgr"] is not None for n in c)]
        if not cells:
            continue
        out[part] = {}
        for name in (*LEARNERS, *baselines):
            row: dict[str, Any] = {
                "pairs": len(cells),
                "mean_apgr": round(statistics.mean(c[name]["apgr"] for c in cells), 4),
            }
            if name in LEARNERS:
                for b in baselines:
                    row[f"beats_{b}"] = sum(c[name]["apgr"] > c[b]["apgr"] for c in cells)
                row["beats_both"] = sum(
                    all(c[name]["apgr"] > c[b]["apgr"] for b in baselines) for c in cells
                )
            out[part][name] = row
    return out


def table(report: dict[str, Any]) -> str:
    lines = []
    for weak, parts in report["weak"].items():
        for part in PARTS:
            if part not in parts:
                continue
            results = parts[part]
            routers = list(next(iter(results.values())))
            lines.append(f"\n{weak} — {part.replace('_', ' ')} (APGR)")
            lines.append(f"{'set':<16}" + "".join(f"{r:>18}" for r in routers))
            for name, by_router in results.items():
                cells = "".join(f"{_fmt(by_router[r]['apgr']):>18}" for r in routers)
                lines.append(f"{name:<16}{cells}")
    for part, rows in report.get("summary", {}).items():
        lines.append(f"\nsummary — {part.replace('_', ' ')}, over (set, weak) pairs")
        for name, row in rows.items():
            wins = ", ".join(f"{k} {v}/{row['pairs']}" for k, v in row.items() if k[:5] == "beats")
            lines.append(f"{name:<16}mean APGR {row['mean_apgr']:.4f}  {wins}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--weak", action="append", default=None, help="a weak model (repeat), or 'all'"
    )
    parser.add_argument(
        "--pair-outcomes",
        action="store_true",
        help="keep only the strong and the weak model's outcomes (as a team's own data)",
    )
    parser.add_argument(
        "--leave-one-out",
        action="store_true",
        help="also train on every other set and score the one left out",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--halvings",
        type=int,
        default=1,
        help="in distribution: average over this many halvings (seeds seed, seed+1, ...)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.halvings < 1:
        parser.error("--halvings must be at least 1")
    if not args.data.is_dir():
        parser.error(f"{args.data}: no such directory (RouterBench-style *_train/_test.csv)")
    weaks = args.weak or list(WEAKS)
    if weaks == ["all"]:
        first = load_dataset(args.data / f"{sets(args.data)[0]}_train.csv")
        weaks = [m for m in first.models if m != STRONG]
    report = run(
        args.data,
        weaks,
        args.seed,
        pair_outcomes=args.pair_outcomes,
        leave_one_out=args.leave_one_out,
        halvings=args.halvings,
    )
    report["summary"] = summary(report)
    print(json.dumps(report) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
