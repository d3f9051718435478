"""The learned classifier: labels, training, the artifact, train -> load -> classify."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tierline.processors.learning.blending import platt
from tierline.processors.learning.datasets import Dataset, ModelOutcome, RoutingExample
from tierline.processors.learning.training import (
    BLEND_GRID,
    DEFAULT_BLEND,
    TrainingOptions,
    labels,
    train,
)
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    ArtifactError,
    LearnedArtifact,
    LearnedClassifier,
    featurize,
    ngrams,
)
from tierline.schemas import ChatMessage, Hints, RouteRequest
from tierline.streams.cli import train as train_cli

HARD = [
    "Prove that there are infinitely many primes p such that p + 2 is also prime {i}",
    "Derive the closed form of the recurrence and prove its asymptotic bound {i}",
    "Prove the inequality for every convex function on the interval {i}",
]
EASY = [
    "Say hello to my friend number {i}",
    "Thanks a lot, have a nice day {i}",
    "Hello! Tell me a fun greeting {i}",
]
FAST = TrainingOptions(min_df=2, cv_folds=2, steps=150, l2=1.0, l2_ngrams=1.0)


def example(
    i: int, text: str, strong: float, weak: float, other: float | None = None
) -> RoutingExample:
    outcomes = {"big": ModelOutcome(strong, 0.01), "small": ModelOutcome(weak, 0.001)}
    if other is not None:
        outcomes["mid"] = ModelOutcome(other, 0.003)
    return RoutingExample(f"x{i}", (ChatMessage(role="user", content=text),), outcomes)


def toy_dataset(name: str = "toy", n: int = 60) -> Dataset:
    examples = []
    for i in range(n):
        if i % 2:
            examples.append(example(i, HARD[i % 3].format(i=i), 1.0, 0.0))
        else:
            examples.append(example(i, EASY[i % 3].format(i=i), 1.0, 1.0))
    return Dataset(name, tuple(examples))


def test_labels_hard_soft_and_consensus() -> None:
    examples = [
        example(0, "a", 1.0, 0.0, other=1.0),
        example(1, "b", 1.0, 1.0, other=0.0),
        example(2, "c", 0.8, 0.5),
        example(3, "d", 0.0, 1.0),
    ]
    assert labels(examples, "big", "small", "hard").tolist() == [1.0, 0.0, 1.0, 0.0]
    assert labels(examples, "big", "small", "soft") == pytest.approx([1.0, 0.0, 0.3, 0.0])
    # consensus: (hard + mean shortfall of every non-strong model) / 2
    assert labels(examples, "big", "small", "consensus") == pytest.approx(
        [(1 + 0.5) / 2, (0 + 0.5) / 2, (1 + 0.3) / 2, 0.0]
    )


def test_ngrams_are_unigrams_bigrams_and_the_opening_word() -> None:
    assert ngrams(("write", "a", "poem")) == {"write", "a", "poem", "write a", "a poem", "^write"}
    assert ngrams(("a", "b", "c"), max_tokens=2) == {"a", "b", "a b", "^a"}
    assert ngrams(()) == frozenset()


def test_featurize_gives_one_value_per_dense_feature() -> None:
    x = featurize("Write a Python function that sorts a list.")
    assert len(x.dense) == len(DENSE_FEATURES)
    assert x.rules.task == "code"
    assert x.dense[DENSE_FEATURES.index("task=code")] == 1.0


def test_training_learns_which_prompts_the_weak_model_fails() -> None:
    artifact = train([toy_dataset()], "big", "small", FAST, created_at="2026-01-01")
    model = LearnedClassifier(artifact)
    hard = model.classify_text(HARD[0].format(i=999))
    easy = model.classify_text(EASY[0].format(i=999))
    assert 0.0 <= easy.score < 0.5 < hard.score <= 1.0
    assert hard.reasons[1].startswith("learned p=")
    metrics = artifact.training["metrics"]
    # half the prompts need the strong model: a perfect ranking recovers the whole gap by a
    # strong share of 50%, so its APGR is 0.5 * 0.5 (the ramp) + 0.5 (the plateau) = 0.75
    assert metrics["train_apgr"]["toy"] == pytest.approx(0.75)
    assert metrics["cv_apgr"]["toy"] == pytest.approx(0.75)


def test_training_is_deterministic() -> None:
    first = train([toy_dataset()], "big", "small", FAST, created_at="d")
    second = train([toy_dataset()], "big", "small", FAST, created_at="d")
    assert first.to_json() == second.to_json()


def test_training_records_its_provenance() -> None:
    artifact = train([toy_dataset("a"), toy_dataset("b", 20)], "big", "small", FAST, created_at="d")
    meta = artifact.training
    assert (meta["strong"], meta["weak"], meta["created_at"]) == ("big", "small", "d")
    assert [d["name"] for d in meta["datasets"]] == ["a", "b"]
    assert [d["examples"] for d in meta["datasets"]] == [60, 20]
    assert meta["options"]["label"] == FAST.label
    assert meta["positive_rate"] == pytest.approx(0.5)


def test_training_needs_both_models() -> None:
    with pytest.raises(ValueError, match="need at least 2 examples"):
        train([toy_dataset()], "big", "nobody", FAST)


def test_artifact_round_trip_scores_the_same(tmp_path: Path) -> None:
    artifact = train([toy_dataset()], "big", "small", FAST, created_at="d")
    path = tmp_path / "router.json"
    artifact.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "tierline.learned-router"
    assert data["format_version"] == ARTIFACT_VERSION
    assert data["features"]["dense"] == list(DENSE_FEATURES)
    loaded = LearnedClassifier.load(path)
    request = RouteRequest(
        id="q", tenant="t", messages=[ChatMessage(role="user", content=HARD[1].format(i=5))]
    )
    assert loaded.classify(request) == LearnedClassifier(artifact).classify(request)
    assert loaded.classify(request).score == pytest.approx(
        LearnedClassifier(artifact).classify_text(HARD[1].format(i=5)).score
    )


def test_the_task_hint_reaches_the_learned_classifier() -> None:
    model = LearnedClassifier(train([toy_dataset()], "big", "small", FAST))
    hinted = RouteRequest(
        id="q",
        tenant="t",
        messages=[ChatMessage(role="user", content="hello")],
        hints=Hints(task="code"),
    )
    assert model.classify(hinted).task == "code"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something-else"}, "not a learned-router artifact"),
        ({"format_version": ARTIFACT_VERSION + 1}, "format_version"),
        ({"weights": {"bias": 0.0}}, "malformed artifact"),
    ],
)
def test_unreadable_artifacts_are_refused(change: dict[str, object], message: str) -> None:
    data = train([toy_dataset()], "big", "small", FAST).to_json()
    data.update(change)
    with pytest.raises(ArtifactError, match=message):
        LearnedArtifact.from_json(data)


def test_an_artifact_with_other_features_is_refused() -> None:
    data = train([toy_dataset()], "big", "small", FAST).to_json()
    data["features"]["dense"] = ["something", *DENSE_FEATURES[1:]]
    with pytest.raises(ArtifactError, match="dense features differ"):
        LearnedArtifact.from_json(data)


def test_a_non_json_artifact_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="not JSON"):
        LearnedClassifier.load(path)


def write_jsonl(path: Path, dataset: Dataset) -> None:
    with path.open("w") as out:
        for e in dataset.examples:
            outcomes = {
                m: {"score": o.score, "cost_usd": o.cost_usd} for m, o in e.outcomes.items()
            }
            out.write(json.dumps({"id": e.id, "prompt": e.text(), "outcomes": outcomes}) + "\n")


def test_train_cli_writes_an_artifact_and_a_json_summary(tmp_path: Path) -> None:
    data, out = tmp_path / "toy.jsonl", tmp_path / "router.json"
    write_jsonl(data, toy_dataset())
    result = CliRunner().invoke(
        train_cli.command,
        ["--dataset", str(data), "--strong", "big", "--weak", "small", "--out", str(out),
         "--min-df", "2", "--cv-folds", "2", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["artifact"] == str(out)
    assert summary["examples"] == 60
    assert "loaded" in result.stderr and "training" in result.stderr
    model = LearnedClassifier.load(out)
    assert model.classify_text(HARD[2].format(i=7)).score > 0.5


def test_train_cli_names_the_models_it_has(tmp_path: Path) -> None:
    data = tmp_path / "toy.jsonl"
    write_jsonl(data, toy_dataset())
    result = CliRunner().invoke(
        train_cli.command,
        ["--dataset", str(data), "--strong", "gpt-5", "--weak", "small",
         "--out", str(tmp_path / "r.json")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "'gpt-5' is in no dataset; models: big, small" in result.output
    assert not (tmp_path / "r.json").exists()


def test_train_cli_help_teaches_by_example() -> None:
    result = CliRunner().invoke(train_cli.command, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "tierline train --dataset" in result.output


def test_scores_do_not_depend_on_string_hash_seed() -> None:
    model = LearnedClassifier(train([toy_dataset()], "big", "small", FAST))
    x = featurize(HARD[0].format(i=3))
    # fsum over a set is exact, so iteration order (hash-salted) cannot change the score
    reversed_weights = dict(reversed(list(model._ngrams.items())))
    model._ngrams = reversed_weights
    assert model.score_featurized(x) == pytest.approx(
        LearnedClassifier(model.artifact).score_featurized(x), abs=0.0
    )
    assert np.isfinite(model.score_featurized(x))


def test_the_blend_is_chosen_by_cross_validation_and_recorded() -> None:
    artifact = train([toy_dataset()], "big", "small", FAST)
    blend = artifact.training["blend"]
    assert blend["chosen_by"] == "cv"
    assert (blend["rules"], blend["length"]) in BLEND_GRID
    assert blend["learned"] == pytest.approx(1 - blend["rules"] - blend["length"])
    assert len(blend["cv_apgr_mean_by_blend"]) == len(BLEND_GRID)
    # the toy's words separate it perfectly: no blend beats the learned model alone, and
    # ties keep the least blending
    assert (blend["rules"], blend["length"]) == (0.0, 0.0)
    assert "cv_apgr_learned_only" in artifact.training["metrics"]


def test_a_given_blend_is_used_and_without_folds_the_default_one() -> None:
    given = train([toy_dataset()], "big", "small", replace(FAST, blend=(0.25, 0.15)))
    assert given.training["blend"]["chosen_by"] == "given"
    assert (given.training["blend"]["rules"], given.training["blend"]["length"]) == (0.25, 0.15)
    no_cv = train([toy_dataset()], "big", "small", replace(FAST, cv_folds=0))
    assert no_cv.training["blend"]["chosen_by"].startswith("default")
    assert (no_cv.training["blend"]["rules"], no_cv.training["blend"]["length"]) == DEFAULT_BLEND
    assert "cv_apgr" not in no_cv.training["metrics"]
    with pytest.raises(ValueError, match="blend weights"):
        train([toy_dataset()], "big", "small", replace(FAST, blend=(0.8, 0.5)))


def test_a_full_blend_scores_like_the_rules_and_the_length_alone() -> None:
    # learned weight 0: the score ranks prompts by 0.7 * z(rules) + 0.3 * z(log chars) only
    artifact = train([toy_dataset()], "big", "small", replace(FAST, blend=(0.7, 0.3)))
    assert all(w == 0 for w in artifact.ngram_weights.values())
    rules, length = DENSE_FEATURES.index("rules_score"), DENSE_FEATURES.index("log_chars")
    dense = artifact.dense_weights
    assert dense[rules] > 0 and dense[length] > 0
    assert dense[rules] / dense[length] == pytest.approx(0.7 / 0.3)
    others = [w for i, w in enumerate(dense) if i not in (rules, length)]
    assert all(w == 0 for w in others)


def test_platt_scaling_fits_the_slope_within_datasets() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=4000)
    groups = np.repeat(np.arange(2), 2000)
    # within each dataset the label rises with z (slope 2); the datasets' base rates differ
    # against z's mean, which a pooled fit would read as a flatter (or negative) slope
    z[groups == 1] += 3
    logit = 2 * z - 6 * groups
    y = (rng.random(4000) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    a, b = platt(z, y, groups)
    assert a == pytest.approx(2.0, rel=0.15)
    assert b == pytest.approx(-3.0, abs=0.5)
    # no signal at all: the slope stays positive, so recalibration never reorders prompts
    a, _ = platt(z, np.full(4000, 0.3), groups)
    assert a > 0


def test_the_logit_is_the_score_before_the_sigmoid() -> None:
    model = LearnedClassifier(train([toy_dataset()], "big", "small", FAST))
    x = featurize(HARD[1].format(i=11))
    assert 1 / (1 + np.exp(-model.logit_featurized(x))) == pytest.approx(model.score_featurized(x))
