"""`tierline eval`: measure a router on routing datasets (APGR, CPT, cost saving, AIQ)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tierline.streams.cli.common import echo_json, say
from tierline.streams.cli.routing_data import (
    dataset_option,
    load_datasets,
    strong_option,
    weak_option,
)

if TYPE_CHECKING:
    from tierline.processors.learning.harness import RouterEvaluation
    from tierline.processors.learning.scorers import Scorer

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
"""


@click.command("eval", epilog=EXAMPLES)
@dataset_option
@strong_option
@weak_option
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
    strong: str,
    weak: str,
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
    """
    import orjson

    from tierline.processors.learning.harness import evaluate

    loaded = load_datasets(datasets, strong, weak)
    router = _router(router_name, seed)
    say(f"scoring with {router.name} ...")
    scored = [(d, [(e, router.score(e)) for e in d.examples]) for d in loaded]
    if scores_out is not None:
        with scores_out.open("wb") as out:
            for _, pairs in scored:
                for example, score in pairs:
                    out.write(orjson.dumps({"id": example.id, "score": score}) + b"\n")
        say(f"wrote {sum(len(p) for _, p in scored)} scores to {scores_out}")
    usable = [(d, [(e, s) for e, s in pairs if strong in e.outcomes and weak in e.outcomes])
              for d, pairs in scored]  # fmt: skip
    per_dataset: list[RouterEvaluation] = []
    for dataset, pairs in usable:
        if not pairs:
            say(f"{dataset.name}: no prompt has outcomes for both models; skipped")
            continue
        examples, scores = [e for e, _ in pairs], [s for _, s in pairs]
        per_dataset.append(
            evaluate(examples, scores, strong, weak, router=router.name,
                     dataset=dataset.name, curve_points=points)
        )  # fmt: skip
    everything = [pair for _, pairs in usable for pair in pairs]
    if not everything:
        raise click.ClickException(f"no prompt has outcomes for both {strong!r} and {weak!r}")
    pooled = evaluate(
        [e for e, _ in everything], [s for _, s in everything], strong, weak,
        router=router.name, dataset="+".join(d.name for d in loaded), curve_points=points,
    )  # fmt: skip
    if as_json:
        result: dict[str, Any] = pooled.to_dict()
        if len(per_dataset) > 1:
            result["per_dataset"] = [_brief(e) for e in per_dataset]
        echo_json(result)
        return
    _print_table(pooled, per_dataset)


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
    click.echo(header + f"{'save@95':>9}{'AIQ':>8}{'AIQ(r)':>8}")
    rows = per_dataset + [pooled] if len(per_dataset) > 1 else [pooled]
    for e in rows:
        click.echo(
            f"{e.dataset[:27]:<28}{e.prompts:>8}{_number(e.apgr):>8}{_number(e.cpt50, 2):>8}"
            f"{_number(e.cpt80, 2):>8}{_number(e.saving_at_95, 2):>9}{_number(e.aiq):>8}"
            f"{_number(e.aiq_router_only):>8}"
        )
    click.echo(
        f"quality: weak {pooled.weak_quality:.3f}, strong {pooled.strong_quality:.3f}; "
        "curve (strong share: PGR):"
    )
    click.echo(
        "  " + "  ".join(f"{p.strong_share:.0%}:{_number(p.pgr, 2)}" for p in pooled.curve[::2])
    )
