"""The tfidf learner: sklearn fit, pure-Python scoring equal to sklearn's, artifact v1/v2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from tierline.processors.learning.datasets import Dataset, ModelOutcome, RoutingExample
from tierline.processors.learning.tfidf_training import TfidfOptions, _fit, _predict, train_tfidf
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    ArtifactError,
    LearnedArtifact,
    LearnedClassifier,
    artifact_from_json,
    load_artifact,
    save_artifact,
)
from tierline.processors.routing.classifiers.tfidf import (
    TfidfArtifact,
    analyze,
    prepare,
    terms,
)
from tierline.schemas import ChatMessage

HARD = ["prove", "derive", "theorem", "asymptotic", "recurrence", "integral", "lemma"]
EASY = ["hello", "thanks", "friend", "greeting", "weather", "nice", "day"]
COMMON = ["the", "please", "about", "this", "with", "question", "me", "tell"]


def synthetic(n: int = 160, seed: int = 3, long: bool = False) -> Dataset:
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        hard = i % 2 == 0
        words = [rng.choice(HARD if hard else EASY) for _ in range(rng.randint(2, 6))]
        words += [rng.choice(COMMON) for _ in range(rng.randint(3, 12) + 150 * long)]
        rng.shuffle(words)
        text = " ".join(words) + (" " + "x" * rng.randint(0, 300) if hard else "")
        flip = rng.random() < 0.15
        weak = 0.0 if hard != flip else 1.0
        outcomes = {"big": ModelOutcome(1.0, 0.01), "small": ModelOutcome(weak, 0.001)}
        examples.append(
            RoutingExample(f"s{i}", (ChatMessage(role="user", content=text),), outcomes)
        )
    return Dataset("synthetic", tuple(examples))


def test_terms_are_what_sklearn_is_given() -> None:
    from collections import Counter

    from sklearn.feature_extraction.text import TfidfVectorizer

    from tierline.processors.routing.classifiers.features import extract

    text = "Prove that x_1, x-2 and the THE café's ünïcode a b c; 42 == 42!"
    prepared = prepare(text)
    analyzer = TfidfVectorizer(analyzer=analyze).build_analyzer()
    tokens = extract(text).tokens
    assert prepared.split() == list(tokens)
    assert Counter(terms(tokens)) == Counter(analyzer(prepared))
    assert "the the" in terms(tokens) and "prove" in terms(tokens)
    long = " ".join(f"w{i}" for i in range(300))
    assert prepare(long).split() == [f"w{i}" for i in range(96)]
    assert Counter(terms(extract(long).tokens)) == Counter(analyzer(prepare(long)))


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("label", ["hard", "consensus"])
def test_pure_python_scores_equal_sklearn_predict_proba(dense: bool, label: str) -> None:
    data = synthetic()
    options = TfidfOptions(C=3.0, dense=dense, cv_folds=0, label=label)  # type: ignore[arg-type]
    artifact = train_tfidf([data], "big", "small", options)
    model = LearnedClassifier(artifact)
    # refit the same model with sklearn and compare on unseen texts
    from tierline.processors.learning.tfidf_training import _dense
    from tierline.processors.learning.training import labels

    y = labels(list(data.examples), "big", "small", options.label)
    texts = [prepare(e.text()) for e in data.examples]
    fitted = _fit(texts, _dense(list(data.examples)) if dense else None, y, 3.0, options)
    unseen = (*synthetic(40, seed=11).examples, *synthetic(4, seed=5, long=True).examples)
    expected = _predict(
        fitted, [prepare(e.text()) for e in unseen], _dense(list(unseen)) if dense else None
    )
    got = np.array([model.score_text(e.text()) for e in unseen])
    assert np.max(np.abs(got - expected)) < 1e-9
    assert model.classify_text(unseen[0].text()).score == pytest.approx(got[0], abs=1e-6)


def test_learns_the_synthetic_signal_and_chooses_c_by_cv() -> None:
    artifact = train_tfidf([synthetic()], "big", "small", TfidfOptions(cv_folds=3))
    assert artifact.training["C"] in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    assert set(artifact.training["metrics"]["cv_apgr_by_C"]) == {
        "0.1", "0.3", "1.0", "3.0", "10.0", "30.0"
    }  # fmt: skip
    model = LearnedClassifier(artifact)
    assert model.score_text("prove the theorem and derive the lemma") > model.score_text(
        "hello friend, nice day"
    )


def test_artifact_round_trips_and_old_versions_still_load(tmp_path: Path) -> None:
    artifact = train_tfidf([synthetic()], "big", "small", TfidfOptions(C=1.0, cv_folds=0))
    path = tmp_path / "router.json"
    save_artifact(artifact, path)
    data = json.loads(path.read_text())
    assert data["format_version"] == ARTIFACT_VERSION == 2 and data["learner"] == "tfidf"
    loaded = load_artifact(path)
    assert isinstance(loaded, TfidfArtifact)
    text = "prove the integral with me"
    assert LearnedClassifier.load(path).score_text(text) == LearnedClassifier(artifact).score_text(
        text
    )
    with pytest.raises(ArtifactError, match="tfidf"):
        LearnedArtifact.load(path)
    # a version-1 (ngram) artifact has no "learner" key and still loads
    ngram = LearnedArtifact(0.1, (0.0,) * 27, (0.0,) * 27, (1.0,) * 27, {"hello": 0.5})
    old = ngram.to_json()
    old["format_version"] = 1
    old.pop("learner")
    assert isinstance(artifact_from_json(old), LearnedArtifact)
    with pytest.raises(ArtifactError, match="format_version"):
        artifact_from_json({**old, "format_version": 3})
    with pytest.raises(ArtifactError, match="learner"):
        artifact_from_json({**data, "learner": "forest"})
    broken = {**data, "weights": {"intercept": 0.0}}
    with pytest.raises(ArtifactError, match="malformed"):
        artifact_from_json(broken)


def test_cli_trains_a_tfidf_artifact_that_eval_loads(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tierline.streams.cli import evaluate as eval_cli
    from tierline.streams.cli import train as train_cli

    data = _jsonl(synthetic(80), tmp_path / "outcomes.jsonl")
    out = tmp_path / "router.json"
    common = ["--dataset", str(data), "--strong", "big", "--weak", "small"]
    result = CliRunner().invoke(
        train_cli.command, [*common, "--learner", "tfidf", "--cv-folds", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["learner"] == "tfidf"
    result = CliRunner().invoke(eval_cli.command, [*common, "--router", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["apgr"] > 0.5


def _jsonl(dataset: Dataset, path: Path) -> Path:
    """`dataset` as the outcome file `tierline train --dataset` reads."""
    lines = []
    for e in dataset.examples:
        outcomes = {m: {"score": o.score, "cost_usd": o.cost_usd} for m, o in e.outcomes.items()}
        lines.append(json.dumps({"id": e.id, "prompt": e.text(), "outcomes": outcomes}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _vocabulary_shift(
    name: str, hard_words: list[str], easy_words: list[str], n: int = 160, seed: int = 3
) -> Dataset:
    """Hard prompts use `hard_words` and easy ones `easy_words` (made-up words, which the
    rules do not read): another dataset with other words shares none of them."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        hard = i % 2 == 0
        words = [rng.choice(hard_words if hard else easy_words) for _ in range(rng.randint(2, 5))]
        words += [rng.choice(COMMON) for _ in range(rng.randint(3, 8))]
        rng.shuffle(words)
        weak = 0.0 if hard != (rng.random() < 0.15) else 1.0
        outcomes = {"big": ModelOutcome(1.0, 0.01), "small": ModelOutcome(weak, 0.001)}
        message = ChatMessage(role="user", content=" ".join(words))
        examples.append(RoutingExample(f"{name}{i}", (message,), outcomes))
    return Dataset(name, tuple(examples))


def _logit(artifact: TfidfArtifact, text: str) -> float:
    p = LearnedClassifier(artifact).score_text(text)
    return float(np.log(p / (1.0 - p)))


def test_blend_is_folded_into_the_artifact_exactly() -> None:
    from tierline.processors.learning import tfidf_blend
    from tierline.processors.learning.tfidf_training import _dense

    data = synthetic()
    plain = train_tfidf([data], "big", "small", TfidfOptions(C=1.0, cv_folds=0))
    assert plain.training["blend"]["chosen_by"] == "none (no held-out scores)"
    unseen = list(synthetic(30, seed=9).examples)
    logits = np.array([_logit(plain, e.text()) for e in unseen])
    standardised = tfidf_blend.standardise(logits - 0.3, _dense(unseen), plain)
    blended = tfidf_blend.fold_in(plain, (0.25, 0.15), standardised)
    want = tfidf_blend.mixed(standardised.parts, (0.25, 0.15))
    got = np.array([_logit(blended, e.text()) for e in unseen])
    # the held-out logits were shifted by -0.3: the served logit is the mix of its own
    assert np.max(np.abs(got - want - 0.3 * 0.6 / standardised.logit_scale)) < 1e-7
    assert tfidf_blend.fold_in(plain, (0.0, 0.0), standardised) is plain
    with pytest.raises(ValueError, match="sum to <= 1"):
        tfidf_blend.fold_in(plain, (0.7, 0.5), standardised)


def test_blend_is_chosen_on_a_dataset_the_text_model_did_not_see() -> None:
    first = _vocabulary_shift("first", ["zorb", "quix", "blen"], ["tamo", "feru", "lisk"])
    second = _vocabulary_shift("second", ["mavo", "ruxe", "pelt"], ["gond", "wira", "sute"], seed=4)
    options = TfidfOptions(cv_folds=3, calibrate=False)
    across = train_tfidf([first, second], "big", "small", options).training["blend"]
    assert across["chosen_by"] == "leave one dataset out"
    grid = across["held_out_apgr_by_blend"]
    assert len(grid) == 12 and "rules=1.0,length=0.0" in grid
    assert grid[f"rules={across['rules']},length={across['length']}"] == max(grid.values())
    # one dataset: no mix is chosen (the k-fold choice was noise), the text model stays alone
    alone = train_tfidf([first], "big", "small", options).training
    assert alone["blend"]["chosen_by"] == "none (one dataset: the text model alone)"
    # across datasets each is scored by a model that never saw its hard words
    seen, unseen = alone["metrics"]["cv_apgr"]["first"], grid["rules=0.0,length=0.0"]
    assert seen > 0.62 and unseen < 0.56
    given = train_tfidf([first], "big", "small", TfidfOptions(cv_folds=3, blend=(0.5, 0.0)))
    assert given.training["blend"]["chosen_by"] == "given"
    assert given.training["blend"]["rules"] == 0.5
    none = train_tfidf([first, second], "big", "small", TfidfOptions(cv_folds=3, blend="none"))
    assert none.training["blend"]["chosen_by"] == "none"


def test_cli_reports_the_blends_own_left_out_apgr(tmp_path: Path) -> None:
    """The train / cv APGR lines are the text model's before the blend; the report also
    gives the chosen mix's figure with each dataset left out, and the text model's there."""
    from click.testing import CliRunner

    from tierline.streams.cli import train as train_cli

    first = _vocabulary_shift("first", ["zorb", "quix", "blen"], ["tamo", "feru", "lisk"])
    second = _vocabulary_shift("second", ["mavo", "ruxe", "pelt"], ["gond", "wira", "sute"], seed=4)
    out = tmp_path / "router.json"
    args = ["--strong", "big", "--weak", "small", "--cv-folds", "3", "--out", str(out)]
    for data in (first, second):
        args += ["--dataset", str(_jsonl(data, tmp_path / f"{data.name}.jsonl"))]
    result = CliRunner().invoke(train_cli.command, args)
    assert result.exit_code == 0, result.output
    blend = json.loads(out.read_text())["training"]["blend"]
    grid = blend["held_out_apgr_by_blend"]
    chosen = grid[f"rules={blend['rules']},length={blend['length']}"]
    line = next(x for x in result.output.splitlines() if "left out" in x)
    assert f"text alone {grid['rules=0.0,length=0.0']:.3f}" in line
    assert f"chosen blend {chosen:.3f}" in line
    # one dataset: no mix, so no such line
    single = CliRunner().invoke(train_cli.command, [*args[:-2]])
    assert single.exit_code == 0, single.output
    assert "left out" not in single.output


def _length_only(n: int = 240, seed: int = 5) -> Dataset:
    """Hard prompts are longer than easy ones, both long and drawn from one large made-up
    vocabulary: the words tell nothing, only the length does."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("bcdfghjklmnpqrstvwxz", k=5)) for _ in range(3000)]
    examples = []
    for i in range(n):
        hard = i % 2 == 0
        words = rng.choices(vocabulary, k=rng.randint(90, 120) if hard else rng.randint(40, 60))
        weak = 0.0 if hard != (rng.random() < 0.1) else 1.0
        outcomes = {"big": ModelOutcome(1.0, 0.01), "small": ModelOutcome(weak, 0.001)}
        message = ChatMessage(role="user", content=" ".join(words))
        examples.append(RoutingExample(f"l{i}", (message,), outcomes))
    return Dataset("length-only", tuple(examples))


def _best(grid: dict[str, dict[str, float]]) -> float:
    return max(sum(v.values()) / len(v) for v in grid.values())


def _words_only() -> Dataset:
    """Made-up words tell, lengths are noise: the dense features only add noise."""
    return _vocabulary_shift("words", ["zorb", "quix", "blen"], ["tamo", "feru", "lisk"], 60, 4)


@pytest.mark.parametrize(
    ("data", "keeps_dense"),
    [(_length_only(), True), (_words_only(), False)],
    ids=["length", "words"],
)
def test_the_dense_features_are_kept_only_when_cross_validation_prefers_them(
    data: Dataset, keeps_dense: bool
) -> None:
    """Where only length tells, the text-only fit cannot see it (the rows are L2-normalised)
    and the dense design is kept; where only words tell, the dense features are noise."""
    fitted = train_tfidf([data], "big", "small", TfidfOptions(cv_folds=3))
    metrics = fitted.training["metrics"]
    chosen, other = metrics["cv_apgr_by_C"], metrics["cv_apgr_by_C_other_design"]
    assert len(chosen) == len(other) == 6
    assert _best(chosen) > _best(other)
    assert fitted.training["dense"] is keeps_dense
    # the artifact has the dense slots either way; without the features, every weight is 0
    assert fitted.dense_features == DENSE_FEATURES
    if not keeps_dense:
        assert fitted.dense_weights == (0.0,) * len(DENSE_FEATURES)
        text_only = train_tfidf([data], "big", "small", TfidfOptions(cv_folds=3, dense=False))
        assert text_only.dense_features == ()
        for e in data.examples[:20]:
            assert LearnedClassifier(fitted).score_text(e.text()) == pytest.approx(
                LearnedClassifier(text_only).score_text(e.text()), abs=1e-9
            )
    fixed = train_tfidf([data], "big", "small", TfidfOptions(cv_folds=3, dense=True))
    assert fixed.training["dense"] is True
    assert "cv_apgr_by_C_other_design" not in fixed.training["metrics"]
