"""Hot swap of the classifier artifact: a good new file takes effect, a bad one never does."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tierline.processors.learning.datasets import Dataset, ModelOutcome, RoutingExample
from tierline.processors.learning.tfidf_training import TfidfOptions, train_tfidf
from tierline.processors.learning.training import TrainingOptions, train
from tierline.processors.routing.classifiers.learned import (
    Artifact,
    ArtifactError,
    LearnedClassifier,
    save_artifact,
)
from tierline.processors.routing.classifiers.reloading import ReloadingClassifier
from tierline.schemas import ChatMessage, RouteRequest

HARD = "Prove that the recurrence has an asymptotic bound and derive the integral {i}"
EASY = "Say hello to my friend and have a nice day {i}"
PROBE = "prove the integral bound, my friend"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dataset(flip_every: int) -> Dataset:
    """Hard prompts the weak model fails; every `flip_every`-th label flipped (noise that
    makes two artifacts trained on different flips score differently)."""
    examples = []
    for i in range(40):
        hard = i % 2 == 0
        fails = hard != (i % flip_every == 0)
        outcomes = {
            "big": ModelOutcome(1.0, 0.01),
            "small": ModelOutcome(0.0 if fails else 1.0, 0.001),
        }
        text = (HARD if hard else EASY).format(i=i)
        messages = (ChatMessage(role="user", content=text),)
        examples.append(RoutingExample(f"e{i}", messages, outcomes))
    return Dataset("toy", tuple(examples))


def tfidf(flip_every: int = 7, training_id: str | None = None) -> Artifact:
    artifact = train_tfidf([dataset(flip_every)], "big", "small", TfidfOptions(C=1.0, cv_folds=0))
    if training_id is None:
        return artifact
    return replace(artifact, training={**artifact.training, "id": training_id})


def ngram() -> Artifact:
    options = TrainingOptions(min_df=2, cv_folds=0, steps=100, l2=1.0, l2_ngrams=1.0)
    return train([dataset(5)], "big", "small", options)


def place(path: Path, content: bytes, bump: int) -> None:
    """Replace the file atomically (write, then rename over), `bump` seconds newer."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(content)
    stamp = 1_700_000_000 + bump
    os.utime(temporary, (stamp, stamp))
    temporary.replace(path)


def bytes_of(artifact: Artifact, tmp_path: Path) -> bytes:
    """The artifact as `save_artifact` writes it."""
    scratch = tmp_path / "scratch.json"
    save_artifact(artifact, scratch)
    return scratch.read_bytes()


def request(text: str = PROBE) -> RouteRequest:
    return RouteRequest(id="r1", tenant="t", messages=[ChatMessage(role="user", content=text)])


@pytest.fixture
def started(tmp_path: Path) -> tuple[Path, Clock, ReloadingClassifier, bytes]:
    path = tmp_path / "router.json"
    good = bytes_of(tfidf(), tmp_path)
    place(path, good, 0)
    clock = Clock()
    return path, clock, ReloadingClassifier(path, check_every_s=5, clock=clock), good


def test_a_new_artifact_is_swapped_in_at_the_next_check(
    started: tuple[Path, Clock, ReloadingClassifier, bytes], tmp_path: Path
) -> None:
    path, clock, classifier, good = started
    first = LearnedClassifier(tfidf())
    second = LearnedClassifier(tfidf(flip_every=3))
    assert first.score_text(PROBE) != pytest.approx(second.score_text(PROBE), abs=1e-4)
    assert classifier.classify(request()) == first.classify(request())
    assert classifier.artifact_id == "sha256:" + hashlib.sha256(good).hexdigest()[:12]
    place(path, bytes_of(tfidf(flip_every=3), tmp_path), 1)
    clock.now += 4.9
    assert classifier.classify(request()) == first.classify(request())  # not checked yet
    clock.now += 0.2
    assert classifier.classify(request()) == second.classify(request())
    assert classifier.reloads == 1 and classifier.last_error is None
    assert classifier.artifact_id != "sha256:" + hashlib.sha256(good).hexdigest()[:12]


def test_the_learner_may_change_with_the_artifact(
    started: tuple[Path, Clock, ReloadingClassifier, bytes], tmp_path: Path
) -> None:
    path, clock, classifier, _ = started
    assert classifier.learner == "tfidf"
    place(path, bytes_of(ngram(), tmp_path), 1)
    clock.now += 6
    loaded = classifier.current()
    assert loaded.classifier.learner == "ngram" and classifier.learner == "ngram"
    assert loaded.artifact_id == classifier.artifact_id
    assert classifier.classify(request()) == LearnedClassifier(ngram()).classify(request())


def truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


def not_finite(good: bytes) -> bytes:
    data = json.loads(good)
    data["weights"]["intercept"] = float("nan")
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (lambda good: b"{this is not json", "not JSON"),
        (truncated, "not JSON"),
        (lambda good: b'{"format": "something.else", "weights": {}}', "not a learned-router"),
        (lambda good: json.dumps({**json.loads(good), "format_version": 9}).encode(), "version"),
        (lambda good: b"[1, 2, 3]", "JSON object"),
        (not_finite, "not finite"),
        (lambda good: b"\xff\xfe\x00garbage", "UTF-8"),
    ],
    ids=["garbage", "truncated", "wrong-format", "wrong-version", "a-list", "nan", "binary"],
)
def test_a_bad_artifact_is_refused_and_the_last_good_one_kept(
    started: tuple[Path, Clock, ReloadingClassifier, bytes],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bad: object,
    why: str,
) -> None:
    path, clock, classifier, good = started
    before = classifier.classify(request())
    identity = classifier.artifact_id
    assert callable(bad)
    place(path, bad(good), 1)
    with caplog.at_level(logging.WARNING, logger="tierline.classifier"):
        for _ in range(3):  # refused once, then not read again: one warning
            clock.now += 6
            assert classifier.classify(request()) == before
    assert classifier.artifact_id == identity and classifier.reloads == 0
    assert classifier.last_error is not None and why in classifier.last_error
    assert str(path) in classifier.last_error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and identity in warnings[0].getMessage()
    # the next good file is taken
    place(path, bytes_of(tfidf(flip_every=3), tmp_path), 2)
    clock.now += 6
    assert classifier.classify(request()) == LearnedClassifier(tfidf(3)).classify(request())
    assert classifier.reloads == 1 and classifier.last_error is None


def test_every_distinct_bad_file_is_logged_once(
    started: tuple[Path, Clock, ReloadingClassifier, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    path, clock, classifier, _ = started
    with caplog.at_level(logging.WARNING, logger="tierline.classifier"):
        for bump in (1, 2):  # the same garbage twice, as two files: two warnings
            place(path, b"garbage", bump)
            clock.now += 6
            classifier.classify(request())
            clock.now += 6
            classifier.classify(request())
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_a_vanished_artifact_keeps_the_last_good_one(
    started: tuple[Path, Clock, ReloadingClassifier, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    path, clock, classifier, _ = started
    before = classifier.classify(request())
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="tierline.classifier"):
        for _ in range(3):
            clock.now += 6
            assert classifier.classify(request()) == before
    assert classifier.last_error is not None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_an_unchanged_artifact_is_not_parsed_again(
    started: tuple[Path, Clock, ReloadingClassifier, bytes],
) -> None:
    _, clock, classifier, _ = started
    loaded = classifier.current()
    for _ in range(5):
        clock.now += 6
        assert classifier.current() is loaded
    assert classifier.reloads == 0


def test_a_bad_artifact_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    place(path, b'{"format": "tierline.learned-router", "format_version": 2', 0)
    with pytest.raises(ArtifactError, match="not JSON"):
        ReloadingClassifier(path)
    place(path, not_finite(bytes_of(tfidf(), tmp_path)), 1)
    with pytest.raises(ArtifactError, match="not finite"):
        ReloadingClassifier(path)
    with pytest.raises(FileNotFoundError):
        ReloadingClassifier(tmp_path / "missing.json")


def test_the_training_id_names_the_artifact(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    place(path, bytes_of(tfidf(training_id="router-2026-12-01"), tmp_path), 0)
    assert ReloadingClassifier(path).artifact_id == "router-2026-12-01"


def test_load_classifier_gives_the_reloading_classifier_for_a_path(tmp_path: Path) -> None:
    from tierline.processors.routing.classifiers.rules import RulesClassifier
    from tierline.streams.runtime import load_classifier

    path = tmp_path / "router.json"
    place(path, bytes_of(tfidf(), tmp_path), 0)
    loaded = load_classifier(str(path), check_every_s=1.5)
    assert isinstance(loaded, ReloadingClassifier) and loaded.check_every_s == 1.5
    assert loaded.name == "learned"
    assert isinstance(load_classifier("rules"), RulesClassifier)
