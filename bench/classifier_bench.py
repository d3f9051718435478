"""How long classification takes: p50/p99 µs per `classify(request)`, rules and learned.

Classification runs on every request before anything else, so its cost is a
latency floor for the whole router. This script generates a few thousand
prompts (seeded) of varied tasks and lengths — one-line chats, code asks with
snippets, few-shot multiple choice, long documents to summarise — builds the
`RouteRequest`s up front, and times each `classify` call alone on one core.
`--dataset FILE` times a routing dataset's prompts instead (real asks).

Each prompt is classified `--passes` times (default 3), in passes over the
whole batch; its cost is the median of its calls, and the percentiles are
over prompts. `cpu_every_call` keeps every single call's time as well: on a
shared VM its tail is partly the machine's (see `time_classifier`).

The learned classifier is timed with `--artifact PATH` (from `tierline
train`) or, by default, with a model trained here on the generated prompts
(synthetic labels; only its size matters for speed, not its quality).

    python bench/classifier_bench.py [--prompts 3000] [--artifact router.json] [--passes 3]
        [--dataset FILE ...] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tierline.processors.learning.datasets import (
    Dataset,
    ModelOutcome,
    RoutingExample,
    load_dataset,
)
from tierline.processors.routing.classifiers.base import Classifier
from tierline.processors.routing.classifiers.features import forget
from tierline.processors.routing.classifiers.hashed_terms import ngram_ids
from tierline.processors.routing.classifiers.learned import LearnedClassifier
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.schemas import ChatMessage, RouteRequest

WORDS = [
    "the",
    "model",
    "data",
    "user",
    "request",
    "price",
    "token",
    "system",
    "service",
    "latency",
    "order",
    "customer",
    "report",
    "table",
    "value",
    "error",
    "result",
    "function",
    "list",
    "file",
    "query",
    "number",
    "time",
    "account",
    "policy",
    "market",
    "energy",
    "plant",
    "river",
    "cell",
    "force",
    "light",
    "sound",
    "history",
    "city",
    "country",
    "team",
    "project",
    "budget",
]
CODE = "```python\ndef total(items):\n    return sum(i.price * i.qty for i in items)\n```\n"
ASKS = (
    "Hi! How are you today?",
    "Write a python function that merges two sorted lists and returns the result.",
    "Translate into French: the meeting moved to Thursday.",
    "Summarize the following report in three bullet points:",
    "Extract every date and amount from this invoice as JSON:",
    "Classify the sentiment of this review as positive or negative:",
    "Solve for x: 3x^2 - 12x + 9 = 0. Show each step.",
    "Explain why the sky is blue, then compare it with sunsets.",
    "Write a short poem about autumn rain.",
    "First read the log, then find the bug, and finally propose a fix:\n" + CODE,
)
CHOICES = "\nA) {0}\nB) {1}\nC) {2}\nD) {3}\nAnswer:"


def filler(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def prompt(rng: random.Random) -> str:
    """One prompt: an ask, sometimes after few-shot examples or before a long document."""
    kind = rng.random()
    ask = rng.choice(ASKS)
    if kind < 0.2:  # few-shot multiple choice
        shots = "\n\n".join(
            f"Which {filler(rng, 8)}?" + CHOICES.format(*(filler(rng, 2) for _ in range(4))) + " B"
            for _ in range(rng.randint(1, 5))
        )
        return shots + f"\n\nWhich {filler(rng, 12)}?" + CHOICES.format(*WORDS[:4])
    # context from a few words to ~12k words (~70 kB): log-uniform
    context = filler(rng, int(10 ** rng.uniform(0.5, 4.1)))
    return f"{ask}\n\n{context}" if kind < 0.8 else f"{context}\n\n{ask}"


def requests(count: int, seed: int) -> list[RouteRequest]:
    rng = random.Random(seed)
    return [
        RouteRequest(
            id=f"bench-{i}",
            tenant="bench",
            messages=[ChatMessage(role="user", content=prompt(rng))],
        )
        for i in range(count)
    ]


def dataset_requests(paths: Sequence[Path]) -> list[RouteRequest]:
    """The prompts of routing datasets, as requests, in file order."""
    return [
        RouteRequest(id=f"{path.stem}-{i}", tenant="bench", messages=list(example.messages))
        for path in paths
        for i, example in enumerate(load_dataset(path).examples)
    ]


def synthetic_model(count: int, seed: int) -> LearnedClassifier:
    """A learned classifier trained on generated prompts, labelled by a made-up rule."""
    from tierline.processors.learning.training import TrainingOptions, train

    rng = random.Random(seed + 1)
    examples = []
    for i in range(count):
        text = prompt(rng)
        hard = ("def " in text) + ("Solve" in text) + (len(text) > 4000) + rng.random()
        examples.append(
            RoutingExample(
                id=f"train-{i}",
                messages=(ChatMessage(role="user", content=text),),
                outcomes={
                    "strong": ModelOutcome(1.0),
                    "weak": ModelOutcome(0.0 if hard > 1.2 else 1.0),
                },
            )
        )
    dataset = Dataset("synthetic", tuple(examples))
    options = TrainingOptions(cv_folds=0, min_df=2, steps=200)
    return LearnedClassifier(train([dataset], "strong", "weak", options))


def time_classifier(
    classifier: Classifier, batch: Sequence[RouteRequest], passes: int = 3, warmup: int = 200
) -> tuple[list[float], list[float], list[float]]:
    """µs per `classify` call, one call at a time, `passes` times over the batch:
    (per prompt, the median CPU time of its calls; every call's CPU time; per prompt,
    the median wall time).

    CPU time is what the call costs the core it runs on; wall time also counts
    any moment the OS gave the core to another process, so on a busy machine
    its tail is the machine's, not the classifier's. Even CPU time carries the
    machine's noise on a shared VM (interrupts, stolen cycles); a prompt's
    median over the passes is its cost with most of that noise removed. Each
    pass starts with the router's prompt caches forgotten and classifies each
    prompt once, so every timed call measures a prompt as new.
    """
    classify: Callable[[RouteRequest], object] = classifier.classify
    for request in batch[:warmup]:
        classify(request)
    cpu_clock, wall_clock = time.thread_time_ns, time.perf_counter_ns
    cpu: list[list[float]] = [[] for _ in batch]
    wall: list[list[float]] = [[] for _ in batch]
    for _ in range(passes):
        forget()
        ngram_ids.cache_clear()
        gc.collect()
        for index, request in enumerate(batch):
            cpu_start, wall_start = cpu_clock(), wall_clock()
            classify(request)
            wall[index].append((wall_clock() - wall_start) / 1000.0)
            cpu[index].append((cpu_clock() - cpu_start) / 1000.0)
    every = [sample for samples in cpu for sample in samples]
    return list(map(statistics.median, cpu)), every, list(map(statistics.median, wall))


def summary(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)

    return {
        "mean_us": round(statistics.fmean(ordered), 1),
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "max_us": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--prompts", type=int, default=3000, help="prompts to classify")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artifact", type=Path, help="a learned artifact to time")
    parser.add_argument(
        "--passes",
        type=int,
        default=3,
        help="times each prompt is classified; its cost is the median (1 = single calls)",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        action="append",
        help="time these datasets' prompts (tierline train's formats) instead of generated ones",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    batch = dataset_requests(args.dataset) if args.dataset else requests(args.prompts, args.seed)
    if args.artifact:
        learned = LearnedClassifier.load(args.artifact)
        learned_from = str(args.artifact)
    else:
        learned = synthetic_model(2000, args.seed)
        learned_from = "synthetic (trained here)"
    chars = sorted(len(r.prompt_text()) for r in batch)
    result: dict[str, object] = {
        "prompts": len(batch),
        "prompt_chars": {"p50": chars[len(chars) // 2], "max": chars[-1]},
        "python": sys.version.split()[0],
        "passes": args.passes,
        "source": [str(d) for d in args.dataset] if args.dataset else "generated",
        "learned_artifact": learned_from,
        "learned_learner": learned.learner,
        "learned_vocabulary": learned.vocabulary_size,
    }
    for classifier in (RulesClassifier(), learned):
        cpu, every, wall = time_classifier(classifier, batch, args.passes)
        result[classifier.name] = {
            "cpu": summary(cpu),
            "cpu_every_call": summary(every),
            "wall": summary(wall),
        }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['prompts']} prompts, chars p50 {chars[len(chars) // 2]:,} max {chars[-1]:,}; "
        f"learned ({learned.learner}): {learned_from}, {result['learned_vocabulary']} terms; "
        f"a prompt's cost is its median of {args.passes} calls"
    )
    print(f"{'classifier':<30}{'mean':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}   (µs)")
    for name in ("rules", "learned"):
        clocks = result[name]
        assert isinstance(clocks, dict)
        for clock in ("cpu", "cpu_every_call", "wall"):
            s = clocks[clock]
            print(
                f"{name + ' (' + clock + ')':<30}{s['mean_us']:>8}{s['p50_us']:>8}"
                f"{s['p90_us']:>8}{s['p99_us']:>8}{s['max_us']:>9}"
            )


if __name__ == "__main__":
    main()
