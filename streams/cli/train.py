"""`tierline train`: fit the learned router on routing datasets and write its artifact.

With `--from-clickhouse URL` it learns from production instead: the text
classifier itself (a hashed tf-idf artifact, `processors.learning.production`),
from the features the router recorded and the feedback applications sent; or,
with `--learn floors` (or an `--out` ending in .toml), per-task and per-feature
tier floors written as `[[floors]]` for the policy file.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tierline.streams.cli.common import echo_json, say
from tierline.streams.cli.routing_data import load_datasets

if TYPE_CHECKING:
    from tierline.processors.learning.datasets import Dataset
    from tierline.processors.learning.production import ScoredRequest

EXAMPLES = """
\b
Examples:
  # RouterBench-style CSVs; GPT-4 as the strong model, Mistral 7B as the weak one. The
  # tfidf learner (scikit-learn at training time only; the JSON artifact is scored in pure
  # Python); with several datasets its mix with the rules and length is chosen on the
  # dataset each model did not see
  tierline train --dataset arc_train.csv --dataset mbpp_train.csv \\
      --strong gpt-4-1106-preview --weak mistralai/mistral-7b-chat --out router.json
\b
  # the earlier ngram learner (n-gram presence, Adam)
  tierline train --learner ngram --dataset mbpp_train.csv \\
      --strong gpt-4-1106-preview --weak mistralai/mixtral-8x7b-chat --out router.json
\b
  # tierline JSONL, one {"id", "prompt", "outcomes": {model: {"score", "cost_usd"}}} per line
  tierline train --dataset outcomes.jsonl --strong big --weak small --out router.json --json
\b
Then measure it on held-out data (and load it with `LearnedClassifier.load(PATH)`):
  tierline eval --dataset arc_test.csv --strong gpt-4-1106-preview \\
      --weak mistralai/mistral-7b-chat --router router.json
\b
  # from production: the text classifier, from the hashed features the router recorded
  # and the feedback on the economy tier's answers (last 30 days), then compared with
  # the deployed one on the last 7 days before it is promoted
  tierline train --from-clickhouse http://default:@localhost:8123/default --out router.json
  tierline eval --from-clickhouse http://default:@localhost:8123/default --router router.json
\b
  # a hashed tfidf artifact from public data, to start with before production has signal
  tierline train --hashed --dataset mbpp_train.csv \\
      --strong gpt-4-1106-preview --weak mistralai/mixtral-8x7b-chat --out router.json
\b
  # from production: tier floors per task/feature, as [[floors]] for the policy file
  tierline train --from-clickhouse http://default:@localhost:8123/default --out floors.toml
"""


@click.command("train", epilog=EXAMPLES)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A routing dataset (.jsonl, or RouterBench-style .csv); repeat for several.",
)
@click.option("--strong", default=None, help="The strong model, named as in the dataset.")
@click.option("--weak", default=None, help="The weak (cheap) model, named as in the dataset.")
@click.option(
    "--from-clickhouse",
    "clickhouse_url",
    metavar="URL",
    default=None,
    help="Learn from production in this ClickHouse (http(s)://... or chdb:///path) "
    "instead of datasets: the classifier (from recorded features and feedback), or tier "
    "floors (--learn floors).",
)
@click.option(
    "--learn",
    type=click.Choice(["classifier", "floors"]),
    default=None,
    help="--from-clickhouse: what to learn [default: floors when --out ends in .toml, "
    "else classifier].",
)
@click.option(
    "--weak-tier",
    default="economy",
    show_default=True,
    help="--from-clickhouse classifier: the tier whose shortfall the score predicts.",
)
@click.option(
    "--hashed",
    is_flag=True,
    help="tfidf learner: fit on hashed term ids, the features the router records, so "
    "the artifact can be compared and retrained on production data.",
)
@click.option(
    "--since-days", type=int, default=30, show_default=True, help="--from-clickhouse: window."
)
@click.option(
    "--min-signals",
    type=int,
    default=30,
    show_default=True,
    help="--from-clickhouse: scored requests a tier needs in a segment to be judged.",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.05,
    show_default=True,
    help="--from-clickhouse: how far below the best tier's mean score still holds up.",
)
@click.option("--tenant", default=None, help="--from-clickhouse: only this tenant's requests.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the artifact (JSON), or with --from-clickhouse the floors (TOML).",
)
@click.option(
    "--label",
    type=click.Choice(["consensus", "hard", "soft"]),
    default="consensus",
    show_default=True,
    help="hard: weak < strong; soft: the shortfall; consensus: hard averaged with every "
    "other model's shortfall (less noisy where datasets score many models).",
)
@click.option(
    "--l2", type=float, default=3.0, show_default=True, help="ngram learner: L2 on dense weights."
)
@click.option(
    "--l2-ngrams",
    type=float,
    default=30.0,
    show_default=True,
    help="ngram learner: L2 on n-gram weights.",
)
@click.option(
    "--min-df",
    type=int,
    default=None,
    help="Keep n-grams / terms in >= this many prompts [default: 5 for ngram, 1 for tfidf].",
)
@click.option(
    "--blend",
    type=click.Choice(["cv", "none"]),
    default="cv",
    show_default=True,
    help="tfidf learner: mix the text model with the rules' score and prompt length, the "
    "mix chosen on held-out scores (leave one dataset out with several datasets: what "
    "carries over to traffic that is none of them), or keep the text model alone.",
)
@click.option(
    "--per-dataset-intercepts/--shared-intercept",
    default=True,
    show_default=True,
    help="ngram learner: fit one intercept per dataset, so the weights learn what ranks "
    "prompts within a dataset (generalises to new data), or one shared intercept (also "
    "learns which of the training datasets is harder: better on a mix of exactly those).",
)
@click.option(
    "--learner",
    type=click.Choice(["tfidf", "ngram"]),
    default="tfidf",
    show_default=True,
    help="tfidf: scikit-learn TF-IDF (1-2-grams, sublinear tf) + prompt features, logistic "
    "regression with C by cross-validated APGR, blended with rules/length across several "
    "datasets (see --blend); ngram: the earlier learner, n-gram presence + prompt "
    "features by Adam (ranks worse in and out of distribution; kept for old artifacts).",
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
    strong: str | None,
    weak: str | None,
    clickhouse_url: str | None,
    learn: str | None,
    weak_tier: str,
    hashed: bool,
    since_days: int,
    min_signals: int,
    tolerance: float,
    tenant: str | None,
    out: Path,
    label: str,
    l2: float,
    l2_ngrams: float,
    min_df: int | None,
    blend: str,
    per_dataset_intercepts: bool,
    learner: str,
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

    With --from-clickhouse, learns per-task and per-feature tier floors from
    production feedback instead, and writes them as [[floors]] for the
    policy file.
    """
    if clickhouse_url is not None:
        if datasets or strong or weak:
            raise click.UsageError("--from-clickhouse replaces --dataset, --strong and --weak")
        if (learn or ("floors" if out.suffix == ".toml" else "classifier")) == "floors":
            _floors_from_clickhouse(
                clickhouse_url, out, since_days, min_signals, tolerance, tenant, as_json
            )
        else:
            _classifier_from_clickhouse(
                clickhouse_url, out, since_days, min_signals, weak_tier, tenant, seed, as_json
            )
        return
    if not datasets or strong is None or weak is None:
        raise click.UsageError("give --dataset, --strong and --weak (or --from-clickhouse URL)")
    from tierline.processors.learning.training import TrainingOptions, train

    loaded = load_datasets(datasets, strong, weak)
    if learner == "tfidf":
        _train_tfidf(
            loaded, strong, weak, out, label, min_df or 1, blend, seed, cv_folds, hashed, as_json
        )
        return
    if hashed:
        raise click.UsageError("--hashed needs the tfidf learner (--learner tfidf)")
    options = TrainingOptions(
        l2=l2,
        l2_ngrams=l2_ngrams,
        min_df=5 if min_df is None else min_df,
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
    _report(
        out,
        artifact.training,
        f"{len(artifact.ngram_weights)} n-grams, "
        f"positive rate {artifact.training['positive_rate']:.3f}",
        as_json,
    )


def _report(out: Path, training: Mapping[str, Any], sizes: str, as_json: bool) -> None:
    """What training wrote and how it scored on its own data (and in cross-validation)."""
    if as_json:
        echo_json({"artifact": str(out), **training})
        return
    metrics = training["metrics"]
    click.echo(f"wrote {out}")
    click.echo(f"  {training['examples']} prompts, {sizes}")
    for name, value in metrics["train_apgr"].items():
        cv = metrics.get("cv_apgr", {}).get(name)
        cv_text = f"  cv APGR {cv:.3f}" if cv is not None else ""
        train_text = f"{value:.3f}" if value is not None else "n/a"
        label_text = "all datasets pooled" if name == "*" else name
        click.echo(f"  {label_text}: train APGR {train_text}{cv_text}")
    left_out = _left_out_text(training.get("blend", {}))
    if left_out:
        click.echo(left_out)


def _left_out_text(blend: Mapping[str, Any]) -> str | None:
    """The blend's own figure: the APGR lines above are the text model's before the blend;
    this is the chosen mix's, each dataset scored by a model fitted on the others."""
    grid = blend.get("held_out_apgr_by_blend") or {}
    chosen = grid.get(f"rules={blend.get('rules')},length={blend.get('length')}")
    alone = grid.get("rules=0.0,length=0.0")
    if chosen is None or alone is None:
        return None
    return (
        f"  each dataset left out (scored by a model fitted on the others): "
        f"APGR text alone {alone:.3f}, chosen blend {chosen:.3f}"
    )


def _blend_text(blend: Mapping[str, Any]) -> str:
    if blend.get("learned") is None:
        return f"no blend ({blend['chosen_by']})"
    return (
        f"blend text {blend['learned']:g} / rules {blend['rules']:g} / length "
        f"{blend['length']:g} ({blend['chosen_by']})"
    )


def _train_tfidf(
    loaded: list[Dataset],
    strong: str,
    weak: str,
    out: Path,
    label: str,
    min_df: int,
    blend: str,
    seed: int,
    cv_folds: int,
    hashed: bool,
    as_json: bool,
) -> None:
    from tierline.processors.learning.tfidf_training import TfidfOptions, train_tfidf
    from tierline.processors.routing.classifiers.learned import save_artifact

    options = TfidfOptions(
        label=label,  # type: ignore[arg-type]
        min_df=min_df,
        seed=seed,
        cv_folds=cv_folds,
        hashed=hashed,
        blend=blend,  # type: ignore[arg-type]
    )
    say(f"training tfidf {weak} -> {strong} (label={label}, cv_folds={cv_folds}) ...")
    try:
        artifact = train_tfidf(
            loaded, strong, weak, options, created_at=datetime.date.today().isoformat()
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    save_artifact(artifact, out)
    _report(
        out,
        artifact.training,
        f"{len(artifact.weights)} terms, C={artifact.training['C']}, "
        f"{'with' if artifact.training['dense'] else 'without'} the dense features, "
        f"{_blend_text(artifact.training['blend'])}, "
        f"positive rate {artifact.training['positive_rate']:.3f}",
        as_json,
    )


def _floors_from_clickhouse(
    url: str,
    out: Path,
    since_days: int,
    min_signals: int,
    tolerance: float,
    tenant: str | None,
    as_json: bool,
) -> None:
    from tierline.processors.learning.feedback_floors import (
        learn_floors,
        render_toml,
        segment_query,
    )
    from tierline.processors.store.clickhouse import connect

    if since_days <= 0 or min_signals <= 0 or not 0 <= tolerance <= 1:
        raise click.BadParameter("need --since-days > 0, --min-signals > 0, 0 <= --tolerance <= 1")
    sql = segment_query(since_days, tenant)
    try:
        rows = connect(url).query(sql).result_rows
    except Exception as error:  # noqa: BLE001 - any driver failure is one clear line
        raise click.ClickException(
            f"reading feedback from ClickHouse failed: {error} "
            "(has `tierline db migrate` created the decisions view?)"
        ) from None
    floors = learn_floors(rows, min_signals=min_signals, tolerance=tolerance)
    header = (
        f"Tier floors learned by `tierline train --from-clickhouse` on "
        f"{datetime.date.today().isoformat()}\n"
        f"from {sum(int(r[3]) for r in rows)} scored requests of the last {since_days} days"
        f"{f' of tenant {tenant}' if tenant else ''} (min {min_signals} per tier, "
        f"tolerance {tolerance}).\n"
        "Observational: higher tiers got the harder prompts. Paste into the policy file."
    )
    out.write_text(render_toml(floors, header=header))
    summary = {
        "out": str(out),
        "segments": len(rows),
        "floors": [
            {"task": f.task, "feature": f.feature, "min_tier": str(f.min_tier)} for f in floors
        ],
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"wrote {out}: {len(floors)} floors from {len(rows)} task/feature/tier segments")
    for floor in floors:
        where = f"task={floor.task}" + (f" feature={floor.feature}" if floor.feature else "")
        click.echo(f"  {where}: at least {floor.min_tier}")


def _classifier_from_clickhouse(
    url: str,
    out: Path,
    since_days: int,
    min_signals: int,
    weak_tier: str,
    tenant: str | None,
    seed: int,
    as_json: bool,
) -> None:
    from tierline.processors.learning.production import (
        ProductionDataError,
        train_from_production,
    )
    from tierline.processors.learning.tfidf_training import TfidfOptions
    from tierline.processors.routing.classifiers.learned import save_artifact

    if since_days <= 0 or min_signals <= 0:
        raise click.BadParameter("need --since-days > 0 and --min-signals > 0")
    until = datetime.datetime.now(datetime.UTC)
    since = until - datetime.timedelta(days=since_days)
    requests = read_production(url, since, until, tenant)
    say(f"training the classifier on {len(requests)} recorded requests ...")
    try:
        artifact = train_from_production(
            requests,
            weak_tier=weak_tier,
            min_signals=min_signals,
            options=TfidfOptions(seed=seed),
            created_at=until.date().isoformat(),
            window=(since.isoformat(), until.isoformat()),
        )
    except ProductionDataError as error:
        raise click.ClickException(str(error)) from None
    save_artifact(artifact, out)
    training = artifact.training
    if as_json:
        echo_json({"artifact": str(out), **training})
        return
    kinds = ", ".join(f"{n} {k}" for k, n in training["examples_by_kind"].items())
    click.echo(f"wrote {out}")
    click.echo(
        f"  {training['examples']} labelled requests ({kinds}), {training['vocabulary']} "
        f"term ids, C={training['C']}, shortfall rate {training['positive_rate']:.3f}"
    )
    click.echo(f"  compare before promoting: tierline eval --from-clickhouse URL --router {out}")


def read_production(
    url: str, since: datetime.datetime, until: datetime.datetime, tenant: str | None
) -> list[ScoredRequest]:
    """The recorded, decided requests of the window; one clear error if ClickHouse fails."""
    from tierline.processors.learning.production import read_scored
    from tierline.processors.store.clickhouse import connect

    try:
        return read_scored(connect(url), since=since, until=until, tenant=tenant)
    except Exception as error:  # noqa: BLE001 - any driver failure is one clear line
        raise click.ClickException(
            f"reading recorded requests from ClickHouse failed: {error} "
            "(has `tierline db migrate` created request_features and decisions?)"
        ) from None
