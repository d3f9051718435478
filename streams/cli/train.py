"""`tierline train`: fit the learned router on routing datasets and write its artifact."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from streams.cli.common import echo_json, say
from streams.cli.routing_data import dataset_option, load_datasets, strong_option, weak_option

EXAMPLES = """
\b
Examples:
  # RouterBench-style CSVs; GPT-4 as the strong model, Mistral 7B as the weak one
  tierline train --dataset arc_train.csv --dataset mbpp_train.csv \\
      --strong gpt-4-1106-preview --weak mistralai/mistral-7b-chat --out router.json
\b
  # tierline JSONL, one {"id", "prompt", "outcomes": {model: {"score", "cost_usd"}}} per line
  tierline train --dataset outcomes.jsonl --strong big --weak small --out router.json --json
\b
Then measure it on held-out data (and load it with `LearnedClassifier.load(PATH)`):
  tierline eval --dataset arc_test.csv --strong gpt-4-1106-preview \\
      --weak mistralai/mistral-7b-chat --router router.json
"""


@click.command("train", epilog=EXAMPLES)
@dataset_option
@strong_option
@weak_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the artifact (JSON).",
)
@click.option(
    "--label",
    type=click.Choice(["consensus", "hard", "soft"]),
    default="consensus",
    show_default=True,
    help="hard: weak < strong; soft: the shortfall; consensus: hard averaged with every "
    "other model's shortfall (less noisy where datasets score many models).",
)
@click.option("--l2", type=float, default=3.0, show_default=True, help="L2 on dense weights.")
@click.option(
    "--l2-ngrams", type=float, default=30.0, show_default=True, help="L2 on n-gram weights."
)
@click.option(
    "--min-df", type=int, default=5, show_default=True, help="Keep n-grams in >= this many prompts."
)
@click.option(
    "--per-dataset-intercepts/--shared-intercept",
    default=True,
    show_default=True,
    help="Fit one intercept per dataset, so the weights learn what ranks prompts within a "
    "dataset (generalises to new data), or one shared intercept (also learns which of the "
    "training datasets is harder: better on a mix of exactly those).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the CV folds.")
@click.option(
    "--cv-folds",
    type=int,
    default=5,
    show_default=True,
    help="Cross-validated APGR in the artifact's metrics (0 = skip, faster).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def command(
    datasets: tuple[Path, ...],
    strong: str,
    weak: str,
    out: Path,
    label: str,
    l2: float,
    l2_ngrams: float,
    min_df: int,
    per_dataset_intercepts: bool,
    seed: int,
    cv_folds: int,
    as_json: bool,
) -> None:
    """Train the learned router: which prompts does the weak model fall short on?

    Reads prompts with each model's measured outcome, labels each prompt by
    whether WEAK falls short of STRONG on it, fits a logistic regression over
    the prompt's words and structure, and writes a versioned JSON artifact
    (weights, feature configuration, training metadata and metrics). Same
    data and options, same artifact. Progress goes to stderr, the summary to
    stdout.
    """
    from processors.classifier.training import TrainingOptions, train

    loaded = load_datasets(datasets, strong, weak)
    options = TrainingOptions(
        l2=l2,
        l2_ngrams=l2_ngrams,
        min_df=min_df,
        per_dataset_intercepts=per_dataset_intercepts,
        label=label,  # type: ignore[arg-type]
        seed=seed,
        cv_folds=cv_folds,
    )
    say(f"training {weak} -> {strong} (label={label}, cv_folds={cv_folds}) ...")
    try:
        artifact = train(
            loaded, strong, weak, options, created_at=datetime.date.today().isoformat()
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    artifact.save(out)
    summary = {"artifact": str(out), **artifact.training}
    if as_json:
        echo_json(summary)
        return
    metrics = artifact.training["metrics"]
    click.echo(f"wrote {out}")
    click.echo(
        f"  {artifact.training['examples']} prompts, {len(artifact.ngram_weights)} n-grams, "
        f"positive rate {artifact.training['positive_rate']:.3f}"
    )
    for name, value in metrics["train_apgr"].items():
        cv = metrics.get("cv_apgr", {}).get(name)
        cv_text = f"  cv APGR {cv:.3f}" if cv is not None else ""
        train_text = f"{value:.3f}" if value is not None else "n/a"
        label_text = "all datasets pooled" if name == "*" else name
        click.echo(f"  {label_text}: train APGR {train_text}{cv_text}")
