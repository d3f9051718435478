"""bench/router_quality.py's bookkeeping: outcomes kept per pair, and the wins it counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from tierline.processors.learning.datasets import Dataset, ModelOutcome, RoutingExample
from tierline.schemas import ChatMessage

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "router_quality.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("router_quality", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pair_outcomes_keep_the_strong_and_the_weak_model_only() -> None:
    rq = bench()
    message = (ChatMessage(role="user", content="hi"),)
    every = {rq.STRONG: ModelOutcome(1.0), "weak": ModelOutcome(0.0), "other": ModelOutcome(1.0)}
    data = Dataset(
        "d",
        (
            RoutingExample("a", message, every),
            RoutingExample("b", message, {rq.STRONG: ModelOutcome(1.0)}),  # no weak outcome
        ),
        models=(rq.STRONG, "weak", "other"),
    )
    kept = rq.pair_only(data, "weak")
    assert [e.id for e in kept.examples] == ["a"]
    assert set(kept.examples[0].outcomes) == {rq.STRONG, "weak"}
    assert kept.models == (rq.STRONG, "weak")


def _cell(**apgr: float | None) -> dict[str, dict[str, float | None]]:
    return {name: {"apgr": value, "brier": None} for name, value in apgr.items()}


def test_summary_counts_pairs_where_a_learner_beats_both_baselines() -> None:
    rq = bench()
    base = {"ngram": 0.5, "tfidf-hashed": 0.5}
    report: dict[str, Any] = {
        "weak": {
            "w1": {
                "in_distribution": {
                    "s1": _cell(**base, tfidf=0.60, length=0.55, **{"sklearn-tfidf-lr": 0.58}),
                    "s2": _cell(**base, tfidf=0.56, length=0.57, **{"sklearn-tfidf-lr": 0.50}),
                }
            },
            "w2": {
                "in_distribution": {
                    "s1": _cell(**base, tfidf=0.70, length=0.50, **{"sklearn-tfidf-lr": 0.60}),
                    # a set with no gap to recover has no APGR: not a pair
                    "s2": _cell(**base, tfidf=None, length=None, **{"sklearn-tfidf-lr": None}),
                }
            },
        }
    }
    inside = rq.summary(report)["in_distribution"]
    assert inside["tfidf"] == {
        "pairs": 3,
        "mean_apgr": 0.62,
        "beats_length": 2,
        "beats_sklearn-tfidf-lr": 3,
        "beats_both": 2,
    }
    assert inside["length"] == {"pairs": 3, "mean_apgr": 0.54}
    assert "held_out" not in rq.summary(report)


def test_halvings_are_averaged_per_router() -> None:
    rq = bench()
    first = _cell(tfidf=0.6, length=0.4)
    second = _cell(tfidf=0.5, length=None)
    first["tfidf"]["brier"] = 0.2
    mean = rq.averaged([first, second])
    assert mean["tfidf"] == {"apgr": 0.55, "brier": 0.2, "apgr_by_halving": [0.6, 0.5]}
    # a halving with no figure is left out of the mean, not counted as zero
    assert mean["length"] == {"apgr": 0.4, "brier": None, "apgr_by_halving": [0.4, None]}
    # one halving: its figures as they are
    assert rq.averaged([first]) == first
