"""`tierline eval`: measure a router on routing datasets (APGR, CPT, cost saving, AIQ).

For a router whose scores are probabilities it also reports their calibration
(Brier, ECE, the reliability table) and, for a classifier, whether its
confidence predicts which of its decisions are right (see `harness`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tierline.streams.cli.common import echo_json, say
from tierline.streams.cli.routing_data import (
    dataset_option,
    load_datasets,
    strong_option,
    weak_option,
)

F = TypeVar("F", bound=Callable[..., Any])


def optional(option: Callable[[F], F]) -> Callable[[F], F]:
    """A shared required option, made optional here (--from-clickhouse needs none of them)."""

    def apply(function: F) -> F:
        decorated = option(function)
        params = getattr(decorated, "__click_params__", [])
        if params:
            params[-1].required = False
        return decorated

    return apply


if TYPE_CHECKING:
    from tierline.processors.learning.datasets import RoutingExample
    from tierline.processors.learning.harness import ConfidenceCheck, RouterEvaluation
    from tierline.processors.learning.metrics import ReliabilityBin
    from tierline.processors.learning.scorers import Scorer

    #: an example, its score and the classifier's confidence (None: not a classifier)
    Scored = tuple[RoutingExample, float, float | None]

EXAMPLES = """
\b
Examples:
  # the rules classifier on a RouterBench-style CSV
  tierline eval --dataset arc_test.csv --strong gpt-4-1106-preview \\
      --weak mistralai/mistral-7b-chat
\b
  # a trained artifact, with the baselines it must beat, as JSON
  tierline eval --dataset arc_test.csv --strong gpt-4-1106-preview \\
      --weak mistralai/mistral-7b-chat --router router.json --json
  tierline eval ... --router length
  tierline eval ... --router random --seed 7
\b
  # keep every prompt's score, one {"id", "score"} JSON line each
  tierline eval --dataset outcomes.jsonl --strong big --weak small --scores-out scores.jsonl
\b
Reading the numbers: route the top-scored share of prompts to STRONG. PGR =
(quality - weak) / (strong - weak). APGR is the area under PGR over the share
(random = 0.5, higher is better). CPT50/CPT80: the share of strong calls
needed to recover 50%/80% of the gap (lower is better). saving@95: cost saved
against all-strong at 95% of STRONG's quality. AIQ: RouterBench's area under
the cost-quality hull, divided by the cost range (needs per-prompt costs).
\b
Calibration (scores in [0, 1]): a score is meant to be P(WEAK scores below
STRONG on this prompt). Brier: mean (score - outcome)^2 (lower is better; the
base-rate guess scores r(1-r)). ECE: the prompt-weighted mean gap between mean
score and observed rate over 10 score bins, the reliability table. Confidence
(classifiers): accuracy of the decision "score >= 0.5" per confidence bin, with
AUROC (does confidence rank right decisions above wrong ones; 0.5 = no) and
the same for max(p, 1-p).
"""


@click.command("eval", epilog=EXAMPLES)
@optional(dataset_option)
@optional(strong_option)
@optional(weak_option)
@click.option(
    "--from-clickhouse",
    "clickhouse_url",
    metavar="URL",
    default=None,
    help="Shadow comparison on production: the --router artifact against the deployed "
    "router, on the recorded, scored requests of the last --since-days in this ClickHouse.",
)
@click.option(
    "--since-days", type=int, default=7, show_default=True, help="--from-clickhouse: window."
)
@click.option(
    "--weak-tier", default="economy", show_default=True,
    help="--from-clickhouse: the tier whose shortfall the scores predict.",
)  # fmt: skip
@click.option("--tenant", default=None, help="--from-clickhouse: only this tenant's requests.")
@click.option(
    "--min-signals", type=int, default=30, show_default=True,
    help="--from-clickhouse: labelled requests needed to compare.",
)  # fmt: skip
@click.option(
    "--router",
    "router_name",
    default="rules",
    show_default=True,
    help="rules | length | random | PATH of a learned artifact (from `tierline train`).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --router random.")
@click.option(
    "--scores-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help='Write one {"id", "score"} JSON line per prompt here.',
)
@click.option(
    "--points", type=click.IntRange(2, 1001), default=21, show_default=True,
    help="Points of the reported curve (21 = every 5%).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(
    datasets: tuple[Path, ...],
    strong: str | None,
    weak: str | None,
    clickhouse_url: str | None,
    since_days: int,
    weak_tier: str,
    tenant: str | None,
    min_signals: int,
    router_name: str,
    seed: int,
    scores_out: Path | None,
    points: int,
    as_json: bool,
) -> None:
    """Measure how well a router spends strong-model calls.

    Scores every prompt with the router, then routes the top-scored 0..100% of
    prompts to STRONG and the rest to WEAK, using each model's recorded
    outcome. Reports the metrics over all datasets together and per dataset.
    Deterministic: the same files and options give the same numbers.

    With --from-clickhouse URL --router NEW.json, compares NEW with the
    deployed router on the team's own recent traffic instead (APGR, CPT50/80,
    saving at 95% quality, Brier, AUC), before NEW is promoted.
    """
    if clickhouse_url is not None:
        if datasets or strong or weak:
            raise click.UsageError("--from-clickhouse replaces --dataset, --strong and --weak")
        if router_name in ("rules", "length", "random"):
            raise click.UsageError("--from-clickhouse needs --router PATH of the new artifact")
        from tierline.streams.cli.shadow import shadow_report

        shadow_report(
            clickhouse_url,
            Path(router_name),
            since_days=since_days,
            weak_tier=weak_tier,
            tenant=tenant,
            min_signals=min_signals,
            as_json=as_json,
        )
        return
    if not datasets or strong is None or weak is None:
        raise click.UsageError("give --dataset, --strong and --weak (or --from-clickhouse URL)")
    import orjson

    from tierline.processors.learning.harness import evaluate

    loaded = load_datasets(datasets, strong, weak)
    router = _router(router_name, seed)
    say(f"scoring with {router.name} ...")
    scored = [(d, [(e, *_score(router, e)) for e in d.examples]) for d in loaded]
    if scores_out is not None:
        with scores_out.open("wb") as out:
            for _, rows in scored:
                for example, score, _ in rows:
                    out.write(orjson.dumps({"id": example.id, "score": score}) + b"\n")
        say(f"wrote {sum(len(r) for _, r in scored)} scores to {scores_out}")
    usable = [(d, [r for r in rows if strong in r[0].outcomes and weak in r[0].outcomes])
              for d, rows in scored]  # fmt: skip
    per_dataset: list[RouterEvaluation] = []
    for dataset, rows in usable:
        if not rows:
            say(f"{dataset.name}: no prompt has outcomes for both models; skipped")
            continue
        per_dataset.append(
            evaluate(*_columns(rows), strong, weak, router=router.name,
                     dataset=dataset.name, curve_points=points, confidences=_confidences(rows))
        )  # fmt: skip
    everything = [row for _, rows in usable for row in rows]
    if not everything:
        raise click.ClickException(f"no prompt has outcomes for both {strong!r} and {weak!r}")
    pooled = evaluate(
        *_columns(everything), strong, weak, router=router.name,
        dataset="+".join(d.name for d in loaded), curve_points=points,
        confidences=_confidences(everything),
    )  # fmt: skip
    if as_json:
        result: dict[str, Any] = pooled.to_dict()
        if len(per_dataset) > 1:
            result["per_dataset"] = [_brief(e) for e in per_dataset]
        echo_json(result)
        return
    _print_table(pooled, per_dataset)


def _score(router: Scorer, example: RoutingExample) -> tuple[float, float | None]:
    """The score and, from a classifier, its confidence: one `classify` gives both."""
    from tierline.processors.learning.scorers import ClassifierScorer

    if isinstance(router, ClassifierScorer):
        verdict = router.classifier.classify(example.to_request())
        return verdict.score, verdict.confidence
    return router.score(example), None


def _columns(rows: list[Scored]) -> tuple[list[RoutingExample], list[float]]:
    return [e for e, _, _ in rows], [s for _, s, _ in rows]


def _confidences(rows: list[Scored]) -> list[float] | None:
    found = [c for _, _, c in rows if c is not None]
    return found if len(found) == len(rows) else None


def _router(name: str, seed: int) -> Scorer:
    from tierline.processors.learning.scorers import ClassifierScorer, LengthScorer, RandomScorer
    from tierline.processors.routing.classifiers.learned import ArtifactError, LearnedClassifier
    from tierline.processors.routing.classifiers.rules import RulesClassifier

    if name == "rules":
        return ClassifierScorer(RulesClassifier())
    if name == "length":
        return LengthScorer()
    if name == "random":
        return RandomScorer(seed)
    path = Path(name)
    if not path.is_file():
        raise click.BadParameter(
            f"{name!r} is neither rules, length, random nor an artifact file",
            param_hint="--router",
        )
    try:
        return ClassifierScorer(LearnedClassifier.load(path))
    except (ArtifactError, OSError) as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--router") from None


def _brief(evaluation: RouterEvaluation) -> dict[str, Any]:
    data = evaluation.to_dict()
    data.pop("curve")
    return data


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_table(pooled: RouterEvaluation, per_dataset: list[RouterEvaluation]) -> None:
    click.echo(f"router {pooled.router}: {pooled.weak} -> {pooled.strong}")
    header = f"{'dataset':<28}{'prompts':>8}{'APGR':>8}{'CPT50':>8}{'CPT80':>8}"
    click.echo(header + f"{'save@95':>9}{'AIQ':>8}{'AIQ(r)':>8}{'Brier':>8}{'ECE':>7}")
    rows = per_dataset + [pooled] if len(per_dataset) > 1 else [pooled]
    for e in rows:
        calibration = e.calibration
        click.echo(
            f"{e.dataset[:27]:<28}{e.prompts:>8}{_number(e.apgr):>8}{_number(e.cpt50, 2):>8}"
            f"{_number(e.cpt80, 2):>8}{_number(e.saving_at_95, 2):>9}{_number(e.aiq):>8}"
            f"{_number(e.aiq_router_only):>8}"
            f"{_number(calibration.brier if calibration else None):>8}"
            f"{_number(calibration.ece if calibration else None):>7}"
        )
    click.echo(
        f"quality: weak {pooled.weak_quality:.3f}, strong {pooled.strong_quality:.3f}; "
        "curve (strong share: PGR):"
    )
    click.echo(
        "  " + "  ".join(f"{p.strong_share:.0%}:{_number(p.pgr, 2)}" for p in pooled.curve[::2])
    )
    _print_calibration(pooled)


def _print_calibration(pooled: RouterEvaluation) -> None:
    calibration = pooled.calibration
    if calibration is None:
        click.echo("calibration: n/a (scores outside [0, 1])")
        return
    click.echo(
        f"calibration (score as P(weak below strong), observed {calibration.positive_rate:.3f}): "
        f"Brier {calibration.brier:.4f} (base rate {calibration.brier_base_rate:.4f}), "
        f"ECE {calibration.ece:.4f}"
    )
    _print_bins("score", "mean p", "observed", calibration.reliability)
    checks = [("confidence", pooled.confidence), ("max(p,1-p)", pooled.confidence_max_p)]
    for name, check in checks:
        if check is not None:
            click.echo(_confidence_line(name, check))
    if pooled.confidence is not None:
        _print_bins("confidence", "mean", "accuracy", pooled.confidence.by_bin)


def _confidence_line(name: str, check: ConfidenceCheck) -> str:
    return (
        f"{name} vs the decision score>=0.5 (right on {check.accuracy:.3f}): "
        f"AUROC {_number(check.auroc)}, Brier {check.brier:.4f}, ECE {check.ece:.4f}"
    )


def _print_bins(what: str, mean: str, rate: str, table: tuple[ReliabilityBin, ...]) -> None:
    """A reliability table, one compact line per non-empty bin."""
    click.echo(f"  {what:<10}{'n':>6}{mean:>9}{rate:>9}")
    for b in table:
        if b.count and b.mean_predicted is not None and b.observed_rate is not None:
            click.echo(
                f"  {b.low:.1f}-{b.high:.1f}   {b.count:>6}{b.mean_predicted:>9.3f}"
                f"{b.observed_rate:>9.3f}"
            )
