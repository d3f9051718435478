"""Feedback: the contract, and the tier floors learned from it."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from tierline.processors.learning.feedback_floors import learn_floors, render_toml, segment_query
from tierline.processors.routing.policy_file import parse_policy
from tierline.schemas import Feedback, Tier, decode, encode
from tierline.schemas.export import TOPIC_MODELS


def test_a_signal_needs_a_score_or_a_label() -> None:
    scored = Feedback.model_validate(
        {"request_id": "r1", "tenant": "acme", "score": 0.8, "source": "thumbs"}
    )
    assert scored.label is None and isinstance(scored.created_at, datetime)
    labelled = Feedback.model_validate(
        {"request_id": "r1", "tenant": "acme", "label": "edited", "source": "ui"}
    )
    assert labelled.score is None
    with pytest.raises(ValidationError, match="score, a label"):
        Feedback.model_validate({"request_id": "r1", "tenant": "acme", "source": "thumbs"})


@pytest.mark.parametrize(
    "bad",
    [
        {"request_id": "", "score": 1, "source": "s"},
        {"request_id": "r", "score": 1.5, "source": "s"},
        {"request_id": "r", "score": -0.1, "source": "s"},
        {"request_id": "r", "score": "nan", "source": "s"},
        {"request_id": "r", "score": 1},
        {"request_id": "r", "label": "", "source": "s"},
    ],
)
def test_bad_signals_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Feedback.model_validate(bad)


def test_a_signal_round_trips_and_has_a_topic_schema() -> None:
    signal = Feedback(request_id="r", tenant="acme", score=0.25, label="ok", source="grader")
    assert decode(Feedback, encode(signal)) == signal
    assert TOPIC_MODELS["tierline.feedback"] is Feedback


def rows(*segments: tuple[str, str, str, int, float]) -> list[tuple[object, ...]]:
    return [(*segment, 0) for segment in segments]


def test_a_cheap_tier_that_falls_short_gets_a_floor() -> None:
    floors = learn_floors(
        rows(
            ("code", "pr", "economy", 100, 0.55),
            ("code", "pr", "standard", 80, 0.80),
            ("code", "pr", "premium", 60, 0.82),
            ("qa", "faq", "economy", 200, 0.90),
            ("qa", "faq", "premium", 50, 0.92),
        ),
        min_signals=30,
    )
    assert [(f.task, f.feature, f.min_tier) for f in floors] == [("code", None, Tier.STANDARD)]
    assert floors[0].evidence[Tier.ECONOMY].scored == 100


def test_thin_evidence_is_not_judged() -> None:
    assert (
        learn_floors(
            rows(("code", "pr", "economy", 10, 0.1), ("code", "pr", "premium", 500, 0.9)),
            min_signals=30,
        )
        == []
    )


def test_a_feature_floor_is_kept_only_above_its_tasks() -> None:
    floors = learn_floors(
        rows(
            ("extraction", "invoices", "economy", 100, 0.90),
            ("extraction", "invoices", "premium", 100, 0.91),
            ("extraction", "contracts", "economy", 100, 0.40),
            ("extraction", "contracts", "premium", 100, 0.85),
        ),
        min_signals=30,
    )
    # pooled, economy scores 0.65 against premium's 0.88: a task floor at premium already;
    # the contracts floor is no higher, so it is not repeated
    assert [(f.task, f.feature, f.min_tier) for f in floors] == [("extraction", None, Tier.PREMIUM)]
    floors = learn_floors(
        rows(
            ("extraction", "invoices", "economy", 1000, 0.90),
            ("extraction", "invoices", "premium", 100, 0.91),
            ("extraction", "contracts", "economy", 100, 0.40),
            ("extraction", "contracts", "premium", 100, 0.85),
        ),
        min_signals=30,
    )
    assert [(f.task, f.feature, f.min_tier) for f in floors] == [
        ("extraction", "contracts", Tier.PREMIUM)
    ]


def test_the_batch_lane_counts_as_economy() -> None:
    floors = learn_floors(
        rows(("qa", "", "batch", 100, 0.5), ("qa", "", "standard", 100, 0.9)), min_signals=30
    )
    assert [(f.feature, f.min_tier) for f in floors] == [(None, Tier.STANDARD)]


def test_learned_floors_paste_into_a_policy_file() -> None:
    floors = learn_floors(
        rows(("code", 'say "hi"', "economy", 100, 0.2), ("code", 'say "hi"', "premium", 100, 0.9)),
        min_signals=30,
    )
    text = render_toml(floors, header="learned\nfrom feedback")
    assert text.startswith("# learned\n# from feedback\n")
    policy = parse_policy(text)
    assert [(f.task, f.min_tier) for f in policy.routing.floors] == [("code", Tier.PREMIUM)]


def test_the_segment_query_is_filled_safely() -> None:
    sql = segment_query(7, tenant="o'brien")
    assert "INTERVAL 7 DAY" in sql
    assert "tenant = 'o\\'brien'" in sql
    assert "tenant" not in segment_query(7).split("WHERE")[1]
    with pytest.raises(ValueError):
        segment_query(0)


def test_the_feedback_sink_keeps_the_newest_signal_whatever_the_arrival_order() -> None:
    from datetime import UTC, datetime, timedelta

    from tierline.streams.feedback_sink import FeedbackSink

    now = datetime.now(UTC)
    newer = Feedback(request_id="r", tenant="t", source="s", score=1.0, created_at=now)
    older = Feedback(
        request_id="r", tenant="t", source="s", score=0.0, created_at=now - timedelta(minutes=5)
    )
    keep = FeedbackSink.keep
    assert keep(None, held=older, arriving=newer)  # type: ignore[arg-type]
    assert not keep(None, held=newer, arriving=older)  # type: ignore[arg-type]
