"""Calibration: Brier, the reliability table, ECE, AUROC and the confidence check, by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierline.processors.learning.datasets import Dataset, ModelOutcome, RoutingExample
from tierline.processors.learning.harness import check_confidence, evaluate, falls_short
from tierline.processors.learning.metrics import (
    ReliabilityBin,
    auroc,
    brier_score,
    calibration_error,
    expected_calibration_error,
    reliability,
)
from tierline.processors.learning.tfidf_training import TfidfOptions, train_tfidf
from tierline.processors.routing.classifiers.learned import LearnedClassifier, confidence_of
from tierline.schemas import ChatMessage
from tierline.streams.cli import evaluate as eval_cli

PROBS = [0.1, 0.2, 0.3, 0.8, 0.9, 1.0]
LABELS = [0, 0, 1, 1, 0, 1]


def test_brier_hand_worked() -> None:
    # (0.1-0)^2 + (0.2-0)^2 + (0.3-1)^2 + (0.8-1)^2 + (0.9-0)^2 + (1-1)^2
    # = 0.01 + 0.04 + 0.49 + 0.04 + 0.81 + 0 = 1.39, over 6 prompts
    assert brier_score(PROBS, LABELS) == pytest.approx(1.39 / 6)
    # always predicting the base rate r scores r(1 - r): 0.25 * 0.75
    assert brier_score([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.1875)


def test_reliability_table_and_ece_with_two_bins() -> None:
    table = reliability(PROBS, LABELS, bins=2)
    # [0, 0.5): 0.1, 0.2, 0.3 -> mean 0.2, one of three happened
    # [0.5, 1]: 0.8, 0.9, 1.0 -> mean 0.9, two of three happened (1.0 lands in the last bin)
    assert [(b.low, b.high, b.count) for b in table] == [(0.0, 0.5, 3), (0.5, 1.0, 3)]
    assert table[0].mean_predicted == pytest.approx(0.2)
    assert table[0].observed_rate == pytest.approx(1 / 3)
    assert table[1].mean_predicted == pytest.approx(0.9)
    assert table[1].observed_rate == pytest.approx(2 / 3)
    # ECE = (3 * |0.2 - 1/3| + 3 * |0.9 - 2/3|) / 6 = (0.4 + 0.7) / 6
    assert expected_calibration_error(PROBS, LABELS, bins=2) == pytest.approx(1.1 / 6)
    assert calibration_error(table) == pytest.approx(1.1 / 6)


def test_ten_bins_leave_empty_bins_empty() -> None:
    table = reliability(PROBS, LABELS)
    assert len(table) == 10 and sum(b.count for b in table) == 6
    assert table[0] == ReliabilityBin(0.0, 0.1, 0, None, None)
    assert table[9].count == 2  # 0.9 and 1.0
    assert table[9].mean_predicted == pytest.approx(0.95)
    assert table[9].observed_rate == pytest.approx(0.5)
    # singletons 0.1, 0.2, 0.3, 0.8 miss by 0.1, 0.2, 0.7, 0.2; the last bin by 0.45, twice
    assert expected_calibration_error(PROBS, LABELS) == pytest.approx((1.2 + 0.9) / 6)


def test_a_calibrated_constant_has_no_calibration_error() -> None:
    assert expected_calibration_error([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)


def test_auroc_hand_worked_with_ties() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # positives 0.5, 0.9; negatives 0.5, 0.2: pairs tie (1/2), win, win, win -> 3.5 / 4
    assert auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert auroc([0.3, 0.6], [1, 1]) is None


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        ([], [], "no predictions"),
        ([0.5], [1, 0], "one entry"),
        ([1.2], [1], "probabilities"),
        ([0.5], [2], "labels"),
    ],
)
def test_bad_inputs_are_refused(probs: list[float], labels: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        brier_score(probs, labels)
    with pytest.raises(ValueError, match=message):
        reliability(probs, labels)


def test_the_confidence_check_hand_worked() -> None:
    scores, outcomes = [0.9, 0.8, 0.3, 0.2], [1, 0, 0, 1]
    # decisions (score >= 0.5): falls short, falls short, fine, fine -> right, wrong, right, wrong
    confidences = [confidence_of(s) for s in scores]
    assert confidences == [0.9, 0.8, 0.7, 0.8]
    check = check_confidence(scores, confidences, outcomes)
    assert check.accuracy == pytest.approx(0.5)
    # (0.9-1)^2 + (0.8-0)^2 + (0.7-1)^2 + (0.8-0)^2 = 0.01 + 0.64 + 0.09 + 0.64
    assert check.brier == pytest.approx(1.38 / 4)
    # right ones at 0.9 and 0.7, wrong ones at 0.8 and 0.8: 2 wins of 4 pairs
    assert check.auroc == pytest.approx(0.5)
    # with max(p, 1-p) as the confidence, its Brier as P(right) is the score's own Brier
    assert check.brier == pytest.approx(brier_score(scores, outcomes))


def example(i: int, strong: float, weak: float, text: str = "hello") -> RoutingExample:
    outcomes = {"big": ModelOutcome(strong), "small": ModelOutcome(weak)}
    return RoutingExample(f"p{i}", (ChatMessage(role="user", content=text),), outcomes)


def test_evaluate_reports_calibration_against_weak_falling_short() -> None:
    # weak below strong on 0 and 3 (a tie is not falling short)
    examples = [example(0, 1, 0), example(1, 1, 1), example(2, 0, 0), example(3, 1, 0.5)]
    assert falls_short(examples, "big", "small") == [1, 0, 0, 1]
    scores = [0.9, 0.8, 0.3, 0.2]
    result = evaluate(examples, scores, "big", "small", confidences=[0.6, 0.6, 0.9, 0.9])
    assert result.calibration is not None
    assert result.calibration.positive_rate == pytest.approx(0.5)
    assert result.calibration.brier == pytest.approx(1.38 / 4)
    assert result.calibration.brier_base_rate == pytest.approx(0.25)
    assert result.confidence is not None and result.confidence_max_p is not None
    assert result.confidence.accuracy == pytest.approx(0.5)
    # right decisions (0 and 2) at 0.6 and 0.9, wrong ones (1 and 3) at 0.6 and 0.9
    assert result.confidence.auroc == pytest.approx(0.5)
    assert result.confidence_max_p.brier == pytest.approx(1.38 / 4)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["calibration"]["reliability"][9]["count"] == 1


def test_scores_that_are_not_probabilities_have_no_calibration() -> None:
    examples = [example(0, 1, 0), example(1, 1, 1)]
    result = evaluate(examples, [3.0, -1.0], "big", "small", confidences=[0.5, 0.5])
    assert result.calibration is None and result.confidence is None


HARD = "Prove that the recurrence has an asymptotic bound and derive the integral {i}"
EASY = "Say hello to my friend and have a nice day {i}"


def noisy(n: int = 120) -> Dataset:
    """Hard prompts the weak model fails four times in five, easy ones one time in five."""
    examples = []
    for i in range(n):
        hard = i % 2 == 0
        fails = hard == (i % 5 != 0)
        text = (HARD if hard else EASY).format(i=i)
        outcomes = {"big": ModelOutcome(1.0), "small": ModelOutcome(0.0 if fails else 1.0)}
        examples.append(
            RoutingExample(f"n{i}", (ChatMessage(role="user", content=text),), outcomes)
        )
    return Dataset("noisy", tuple(examples))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_tfidf_training_platt_scales_on_held_out_logits() -> None:
    data = noisy()
    plain = train_tfidf([data], "big", "small", TfidfOptions(C=1000.0, calibrate=False))
    scaled = train_tfidf([data], "big", "small", TfidfOptions(C=1000.0))
    record = scaled.training["calibration"]
    assert record["method"] == "platt" and record["slope"] > 0
    assert record["cv_brier_after"] <= record["cv_brier_before"]
    assert plain.training["calibration"]["method"] == "none"
    before, after = LearnedClassifier(plain), LearnedClassifier(scaled)
    texts = [e.text() for e in data.examples]
    # folded into the artifact: the new logit is a * old logit + b (a > 0: the same ranking)
    for text in texts[:10]:
        z_before, z_after = logit(before.score_text(text)), logit(after.score_text(text))
        assert z_after == pytest.approx(record["slope"] * z_before + record["intercept"], abs=1e-4)
    # an overfitted C: overconfident before, near the 4-in-5 / 1-in-5 truth after
    hard, easy = HARD.format(i=1000), EASY.format(i=1001)
    assert before.score_text(hard) > 0.95 and before.score_text(easy) < 0.05
    assert after.score_text(hard) == pytest.approx(0.8, abs=0.05)
    assert after.score_text(easy) == pytest.approx(0.2, abs=0.05)
    verdict = after.classify_text(hard)  # the confidence is max(p, 1 - p)
    assert verdict.confidence == pytest.approx(max(verdict.score, 1 - verdict.score))
    without_folds = train_tfidf([data], "big", "small", TfidfOptions(C=1.0, cv_folds=0))
    assert without_folds.training["calibration"]["method"] == "none"


def test_eval_cli_reports_calibration_and_confidence(tmp_path: Path) -> None:
    data = tmp_path / "noisy.jsonl"
    with data.open("w") as out:
        for e in noisy().examples:
            outcomes = {m: {"score": o.score} for m, o in e.outcomes.items()}
            out.write(json.dumps({"id": e.id, "prompt": e.text(), "outcomes": outcomes}) + "\n")
    common = ["--dataset", str(data), "--strong", "big", "--weak", "small"]
    table = CliRunner().invoke(eval_cli.command, [*common, "--router", "rules"])
    assert table.exit_code == 0, table.output
    assert "Brier" in table.stdout and "ECE" in table.stdout
    assert "confidence vs the decision" in table.stdout and "max(p,1-p)" in table.stdout
    report = json.loads(
        CliRunner().invoke(eval_cli.command, [*common, "--router", "length", "--json"]).stdout
    )
    assert report["calibration"]["brier"] >= 0 and len(report["calibration"]["reliability"]) == 10
    assert report["confidence"] is None  # a scorer, not a classifier: no confidence
    assert report["confidence_max_p"]["accuracy"] == pytest.approx(0.5)
