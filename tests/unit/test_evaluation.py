"""Scorer evaluation: hand-worked metrics, both dataset formats, baselines, and `tierline eval`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierline.processors.learning.datasets import (
    DatasetError,
    ModelOutcome,
    RoutingExample,
    load_dataset,
    parse_jsonl,
)
from tierline.processors.learning.harness import evaluate, evaluate_router
from tierline.processors.learning.metrics import (
    aiq,
    apgr,
    cpt,
    nondecreasing_hull,
    routing_curve,
    saving_at_quality,
)
from tierline.processors.learning.scorers import LengthScorer, RandomScorer
from tierline.processors.learning.training import TrainingOptions, train
from tierline.schemas import ChatMessage
from tierline.streams.cli import evaluate as eval_cli

# Four prompts. The strong model gets all right, the weak one fails prompts 0 and 3.
STRONG = [1.0, 1.0, 1.0, 1.0]
WEAK = [0.0, 1.0, 1.0, 0.0]
STRONG_COST = [1.0, 1.0, 1.0, 1.0]
WEAK_COST = [0.1, 0.1, 0.1, 0.1]
GOOD = [0.9, 0.1, 0.2, 0.8]  # ranks the two failures first
BAD = [0.1, 0.9, 0.8, 0.2]  # ranks them last


def test_a_perfect_ranking_hand_worked() -> None:
    curve = routing_curve(GOOD, STRONG, WEAK, STRONG_COST, WEAK_COST)
    # quality at k = 0..4 routed strong: 0.5, 0.75, 1, 1, 1 -> PGR 0, .5, 1, 1, 1
    assert curve.quality == pytest.approx((0.5, 0.75, 1.0, 1.0, 1.0))
    assert curve.pgr() == pytest.approx((0.0, 0.5, 1.0, 1.0, 1.0))
    # trapezoids of width 1/4: (0 + .5)/2 + (.5 + 1)/2 + 1 + 1 = 3 -> 3/4
    assert apgr(curve) == pytest.approx(0.75)
    assert cpt(curve, 0.5) == pytest.approx(0.25)
    # PGR 0.8 lies 0.3/0.5 of the way from k=1 to k=2: k = 1.6 -> share 0.4
    assert cpt(curve, 0.8) == pytest.approx(0.4)


def test_a_reversed_ranking_hand_worked() -> None:
    curve = routing_curve(BAD, STRONG, WEAK)
    assert curve.pgr() == pytest.approx((0.0, 0.0, 0.0, 0.5, 1.0))
    assert apgr(curve) == pytest.approx(0.25)
    assert cpt(curve, 0.5) == pytest.approx(0.75)


def test_tied_scores_route_as_a_block_so_a_constant_router_is_random() -> None:
    curve = routing_curve([0.3] * 4, STRONG, WEAK)
    assert curve.pgr() == pytest.approx((0.0, 0.25, 0.5, 0.75, 1.0))
    assert apgr(curve) == pytest.approx(0.5)
    # and the result does not depend on the order the prompts come in
    assert routing_curve([0.3] * 4, STRONG[::-1], WEAK[::-1]).quality == curve.quality


def test_cost_saving_at_95_percent_of_strong_quality_hand_worked() -> None:
    curve = routing_curve(GOOD, STRONG, WEAK, STRONG_COST, WEAK_COST)
    # 0.95 quality is reached at k = 1 + (0.95 - 0.75) / 0.25 = 1.8 prompts routed strong;
    # mean cost there (0.4 + 1.8 * 0.9) / 4 = 0.505 against 1.0 for all-strong
    assert saving_at_quality(curve, 0.95) == pytest.approx(0.495)
    assert saving_at_quality(routing_curve(GOOD, STRONG, WEAK), 0.95) is None


def test_no_gap_to_recover_means_no_pgr() -> None:
    curve = routing_curve([0.1, 0.2], [1.0, 0.0], [1.0, 0.0])
    assert apgr(curve) is None and cpt(curve, 0.5) is None
    assert curve.at(0.5).pgr is None


def test_the_sampled_curve_interpolates_between_prompts() -> None:
    points = routing_curve(GOOD, STRONG, WEAK, STRONG_COST, WEAK_COST).sampled(5)
    assert [p.strong_share for p in points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [p.pgr for p in points] == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0])
    assert points[-1].cost_usd == pytest.approx(1.0)
    assert points[0].cost_usd == pytest.approx(0.1)
    assert routing_curve(GOOD, STRONG, WEAK).at(0.125).quality == pytest.approx(0.625)


def test_aiq_hand_worked() -> None:
    # a straight line from (0, 0) to (1, 1): area 0.5 over a cost range of 1
    assert aiq([(0.0, 0.0), (1.0, 1.0)]) == pytest.approx(0.5)
    # the hull (0,.5)-(.5,.9)-(1,1): .5*(.5+.9)/2 + .5*(.9+1)/2 = .35 + .475
    assert aiq([(0.0, 0.5), (1.0, 1.0), (0.5, 0.9)]) == pytest.approx(0.825)
    # a point under the hull changes nothing
    assert aiq([(0.0, 0.5), (1.0, 1.0), (0.5, 0.9), (0.4, 0.6)]) == pytest.approx(0.825)
    # non-decreasing: past the best quality the hull stays flat
    assert nondecreasing_hull([(0.0, 0.5), (0.5, 1.0), (1.0, 0.8)]) == [
        (0.0, 0.5),
        (0.5, 1.0),
        (1.0, 1.0),
    ]
    assert aiq([(0.0, 0.5), (0.5, 1.0), (1.0, 0.8)]) == pytest.approx(0.875)
    # the cost range is measured between the hull's ends, here 2 -> 4
    assert aiq([(2.0, 0.0), (4.0, 1.0)]) == pytest.approx(0.5)
    assert aiq([(1.0, 0.3)]) is None


def examples_with_costs() -> list[RoutingExample]:
    examples = []
    for i, (s, w) in enumerate(zip(STRONG, WEAK, strict=True)):
        outcomes = {
            "big": ModelOutcome(s, STRONG_COST[i]),
            "small": ModelOutcome(w, WEAK_COST[i]),
            "mid": ModelOutcome(1.0 if i != 3 else 0.0, 0.3),
        }
        text = "x" * int(10 + 100 * GOOD[i])
        examples.append(
            RoutingExample(f"p{i}", (ChatMessage(role="user", content=text),), outcomes)
        )
    return examples


def test_evaluate_reports_every_metric() -> None:
    result = evaluate(examples_with_costs(), GOOD, "big", "small", router="good", dataset="toy")
    assert (result.router, result.dataset, result.prompts) == ("good", "toy", 4)
    assert result.apgr == pytest.approx(0.75)
    assert result.cpt50 == pytest.approx(0.25)
    assert result.cpt80 == pytest.approx(0.4)
    assert result.saving_at_95 == pytest.approx(0.495)
    assert result.aiq_models == ("big", "mid", "small")
    assert result.aiq is not None and result.aiq_models_only is not None
    assert result.aiq >= result.aiq_models_only
    assert len(result.curve) == 21
    assert json.loads(json.dumps(result.to_dict()))["apgr"] == pytest.approx(0.75)


def test_evaluate_accepts_scores_by_id_and_skips_unpaired_examples() -> None:
    examples = examples_with_costs()
    lonely = RoutingExample(
        "p9", (ChatMessage(role="user", content="hi"),), {"big": ModelOutcome(1.0)}
    )
    by_id = {e.id: s for e, s in zip(examples, GOOD, strict=True)} | {"p9": 1.0}
    result = evaluate([*examples, lonely], by_id, "big", "small")
    assert result.prompts == 4
    assert result.apgr == pytest.approx(0.75)


def test_without_costs_there_is_no_aiq_and_no_saving() -> None:
    examples = [
        RoutingExample(e.id, e.messages, {m: ModelOutcome(o.score) for m, o in e.outcomes.items()})
        for e in examples_with_costs()
    ]
    result = evaluate(examples, GOOD, "big", "small")
    assert result.aiq is None and result.saving_at_95 is None
    assert result.apgr == pytest.approx(0.75)


def test_baselines_are_deterministic() -> None:
    examples = examples_with_costs()
    length = evaluate_router(LengthScorer(), examples, "big", "small")
    assert length.apgr == pytest.approx(0.75)  # the texts are longest where GOOD is highest
    first = [RandomScorer(7).score(e) for e in examples]
    assert [RandomScorer(7).score(e) for e in reversed(examples)] == first[::-1]
    assert first != [RandomScorer(8).score(e) for e in examples]
    assert all(0.0 <= s < 1.0 for s in first)
    again = evaluate_router(RandomScorer(7), examples, "big", "small")
    assert evaluate_router(RandomScorer(7), examples, "big", "small") == again


def test_parse_jsonl_with_text_and_chat_prompts() -> None:
    lines = [
        '{"id": "a", "prompt": "hello", "outcomes": {"big": {"score": 1, "cost_usd": 0.01},'
        ' "small": {"score": 0.5}}}',
        "",
        '{"id": "b", "prompt": [{"role": "system", "content": "be brief"},'
        ' {"role": "user", "content": "hi"}], "outcomes": {"big": 0.75}}',
    ]
    a, b = parse_jsonl(lines, source="t")
    assert a.id == "a" and a.text() == "hello" and a.source == "t"
    assert a.outcomes == {"big": ModelOutcome(1.0, 0.01), "small": ModelOutcome(0.5, None)}
    assert [m.role for m in b.messages] == ["system", "user"]
    assert b.text() == "be brief\nhi"
    assert b.outcomes == {"big": ModelOutcome(0.75)}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "t:1: not JSON"),
        ('{"id": "a", "prompt": "p", "outcomes": {"m": {"score": 1.5}}}', "outside \\[0, 1\\]"),
        ('{"id": "a", "prompt": "p", "outcomes": {"m": {"score": 1, "cost_usd": -1}}}', ">= 0"),
        ('{"id": "", "prompt": "p", "outcomes": {}}', "`id`"),
        ('{"id": "a", "prompt": "", "outcomes": {}}', "empty prompt"),
        ('{"id": "a", "prompt": "p", "outcomes": []}', "`outcomes`"),
    ],
)
def test_parse_jsonl_says_what_is_wrong_and_where(line: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        list(parse_jsonl([line], source="t"))


def write_routerbench_csv(path: Path) -> None:
    header = [
        "", "sample_id", "prompt", "eval_name", "big", "small",
        "big|model_response", "small|model_response", "big|total_cost", "small|total_cost",
        "oracle_model_to_route_to",
    ]  # fmt: skip
    rows = [
        ["0", "s.1", "['Which is largest?\\nA) 1\\nB) 2']", "arc", "1.0", "0.0", "B", "A",
         "0.005", "0.0001", "big"],
        ["1", "s.2", "['first turn', 'second turn']", "arc", "1.0", "1.0", "x", "x",
         "0.004", "0.0001", "small"],
        ["2", "s.1", "['a duplicate id']", "arc", "0.0", "0.0", "", "", "0.004", "0.0001", "big"],
        ["3", "s.3", "[__import__('os').getcwd()]", "arc", "1.0", "", "x", "", "0.004", "",
         "big"],
    ]  # fmt: skip
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def test_load_routerbench_csv(tmp_path: Path) -> None:
    path = tmp_path / "bench.csv"
    write_routerbench_csv(path)
    dataset = load_dataset(path)
    assert dataset.name == "bench"
    assert dataset.models == ("big", "small")
    assert [e.id for e in dataset.examples] == ["s.1", "s.2", "s.3"]
    assert dataset.duplicates == 1
    first, second, third = dataset.examples
    assert first.text() == "Which is largest?\nA) 1\nB) 2"
    assert first.outcomes == {"big": ModelOutcome(1.0, 0.005), "small": ModelOutcome(0.0, 0.0001)}
    assert first.source == "arc"
    assert [m.text() for m in second.messages] == ["first turn", "second turn"]
    # not a literal: kept as text, never evaluated; a missing score is a missing outcome
    assert third.text() == "[__import__('os').getcwd()]"
    assert set(third.outcomes) == {"big"}


def test_unknown_file_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(path)


def write_jsonl(path: Path, n: int = 40) -> None:
    with path.open("w") as out:
        for i in range(n):
            hard = i % 2 == 1
            text = ("Prove the theorem about primes " if hard else "Say hello ") + str(i)
            outcomes = {
                "big": {"score": 1.0, "cost_usd": 0.01},
                "small": {"score": 0.0 if hard else 1.0, "cost_usd": 0.001},
            }
            out.write(json.dumps({"id": f"q{i}", "prompt": text, "outcomes": outcomes}) + "\n")


def test_eval_cli_json_and_scores_out(tmp_path: Path) -> None:
    data, scores = tmp_path / "toy.jsonl", tmp_path / "scores.jsonl"
    write_jsonl(data)
    result = CliRunner().invoke(
        eval_cli.command,
        ["--dataset", str(data), "--strong", "big", "--weak", "small", "--router", "length",
         "--scores-out", str(scores), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"apgr", "cpt50", "cpt80", "saving_at_95", "aiq", "curve"} <= set(report)
    assert report["router"] == "length" and report["prompts"] == 40
    assert len(report["curve"]) == 21
    lines = [json.loads(line) for line in scores.read_text().splitlines()]
    assert len(lines) == 40 and set(lines[0]) == {"id", "score"}


def test_eval_cli_with_a_trained_artifact_and_several_datasets(tmp_path: Path) -> None:
    first, second, artifact = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "r.json"
    write_jsonl(first)
    write_jsonl(second, 20)
    options = TrainingOptions(min_df=2, cv_folds=0, steps=150, l2=1.0, l2_ngrams=1.0)
    train([load_dataset(first)], "big", "small", options).save(artifact)
    result = CliRunner().invoke(
        eval_cli.command,
        ["--dataset", str(first), "--dataset", str(second), "--strong", "big", "--weak", "small",
         "--router", str(artifact), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["router"] == "learned"
    assert report["apgr"] == pytest.approx(0.75)  # the best possible with half the prompts hard
    assert [d["dataset"] for d in report["per_dataset"]] == ["a", "b"]
    assert report["per_dataset"][1]["prompts"] == 20


def test_eval_cli_table_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "toy.jsonl"
    write_jsonl(data)
    runner = CliRunner()
    table = runner.invoke(
        eval_cli.command,
        ["--dataset", str(data), "--strong", "big", "--weak", "small", "--router", "random"],
    )
    assert table.exit_code == 0, table.output
    assert "router random" in table.stdout and "APGR" in table.stdout
    unknown = runner.invoke(
        eval_cli.command, ["--dataset", str(data), "--strong", "big", "--weak", "tiny"]
    )
    assert unknown.exit_code == 2
    assert "'tiny' is in no dataset; models: big, small" in unknown.output
    bad_router = runner.invoke(
        eval_cli.command,
        ["--dataset", str(data), "--strong", "big", "--weak", "small", "--router", "magic"],
    )
    assert bad_router.exit_code == 2
    assert "neither rules, length, random nor an artifact file" in bad_router.output


def test_eval_cli_help_teaches_by_example() -> None:
    result = CliRunner().invoke(eval_cli.command, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--router router.json" in result.output
    assert "APGR" in result.output
