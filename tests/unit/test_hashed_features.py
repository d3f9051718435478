"""Hashed features: stable ids, a hashed tf-idf artifact that scores like sklearn, recorded
features that score like the text they came from, and the production labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_learner_tfidf import synthetic
from tierline.processors.learning.production import ScoredRequest, labelled
from tierline.processors.learning.tfidf_training import (
    TfidfOptions,
    _dense,
    _document,
    _fit,
    _predict,
    train_tfidf,
)
from tierline.processors.learning.training import labels
from tierline.processors.routing.classifiers.hashed_terms import (
    HASHING,
    as_document,
    hashed_counts,
    meta_terms,
    term_id,
)
from tierline.processors.routing.classifiers.learned import (
    ArtifactError,
    LearnedClassifier,
    artifact_from_json,
    load_artifact,
    save_artifact,
)
from tierline.processors.routing.classifiers.recorded import text_features


def test_ids_are_stable_20_bit_crc32s_and_metadata_never_collides_by_spelling() -> None:
    # zlib.crc32(b"hello") = 0x3610A686; its low 20 bits are 0x0A686 = 42630
    assert term_id("hello") == 42630
    assert term_id("hello world") == 659845
    assert meta_terms("code", "faq", "acme") == [
        "\x00task=code",
        "\x00feature=faq",
        "\x00tenant=acme",
    ]
    assert meta_terms(None, None, "acme") == ["\x00tenant=acme"]
    assert term_id("\x00feature=faq") != term_id("feature=faq")
    counts = hashed_counts(["a", "b", "a"], ["\x00tenant=t"])
    assert counts == {term_id("a"): 2, term_id("b"): 1, term_id("\x00tenant=t"): 1}
    assert as_document([7, 9], [2, 1]) == "7 7 9"


@pytest.mark.parametrize("dense", [False, True])
def test_a_hashed_artifact_scores_as_sklearn_does_on_the_same_ids(dense: bool) -> None:
    data = synthetic()
    options = TfidfOptions(C=3.0, dense=dense, cv_folds=0, hashed=True, calibrate=False)
    artifact = train_tfidf([data], "big", "small", options)
    assert artifact.hashed and all(t.isdigit() for t in artifact.weights)
    model = LearnedClassifier(artifact)
    y = labels(list(data.examples), "big", "small", options.label)
    docs = [_document(e.text(), hashed=True) for e in data.examples]
    fitted = _fit(docs, _dense(list(data.examples)) if dense else None, y, 3.0, options)
    unseen = synthetic(40, seed=11).examples
    expected = _predict(
        fitted,
        [_document(e.text(), hashed=True) for e in unseen],
        _dense(list(unseen)) if dense else None,
    )
    got = np.array([model.score_text(e.text()) for e in unseen])
    assert np.max(np.abs(got - expected)) < 1e-9
    # the recorded features score exactly as the text did at route time
    for example in unseen[:10]:
        found = text_features(example.text())
        ids = dict(zip(found.term_ids, found.term_counts, strict=True))
        assert model.score_recorded(ids, found.dense) == pytest.approx(
            model.score_text(example.text()), abs=1e-12
        )


def test_a_hashed_artifact_round_trips_and_a_foreign_hashing_is_refused(tmp_path: Path) -> None:
    options = TfidfOptions(C=1.0, cv_folds=0, hashed=True, calibrate=False)
    artifact = train_tfidf([synthetic()], "big", "small", options)
    path = tmp_path / "router.json"
    save_artifact(artifact, path)
    data = json.loads(path.read_text())
    assert data["features"]["tfidf"]["terms"] == HASHING
    loaded = load_artifact(path)
    assert LearnedClassifier(loaded).hashed
    data["features"]["tfidf"]["terms"] = "murmur3/18"
    with pytest.raises(ArtifactError, match="murmur3/18"):
        artifact_from_json(data)
    plain = train_tfidf([synthetic()], "big", "small", TfidfOptions(C=1.0, cv_folds=0))
    with pytest.raises(ArtifactError, match="hashed"):
        LearnedClassifier(plain).score_recorded({1: 1}, ())


def request(rid: str, tier: str, feedback: float | None, escalated: bool = False) -> ScoredRequest:
    return ScoredRequest(
        request_id=rid, tenant="t", ids={1: 1}, dense=(), routed_score=0.3, artifact="",
        tier=tier, feedback=feedback, escalated=escalated, cost_usd=0.001,
    )  # fmt: skip


def test_production_labels_say_how_the_weak_tier_did_and_nothing_else() -> None:
    rows = labelled(
        [
            request("a", "economy", 1.0),  # a good cheap answer: no shortfall
            request("b", "economy", 0.0),  # a thumbs-down on a cheap answer
            request("c", "economy", 0.7),  # a graded answer: a 0.3 shortfall
            request("d", "premium", 1.0, escalated=True),  # the cheap answer failed its check
            request("e", "premium", 0.2),  # the strong tier's answer: not about economy
            request("f", "economy", None),  # no feedback
        ],
        "economy",
    )
    assert [(r.request.request_id, r.label, r.why) for r in rows] == [
        ("a", 0.0, "weak tier scored"),
        ("b", 1.0, "weak tier scored"),
        ("c", pytest.approx(0.3), "weak tier scored"),
        ("d", 1.0, "cascade escalated"),
    ]
