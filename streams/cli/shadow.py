"""`tierline eval --from-clickhouse`: a new artifact against the deployed router, on the
team's own recent traffic, before it is promoted.

Both are scored on the same requests: the labelled ones of the window
(`processors.learning.production.labelled`). The deployed router's scores are
the ones it gave at route time (recorded with the features); the candidate
scores the recorded features. So the comparison needs no prompt text, and it
compares what was deployed, whatever artifact (or rules) that was.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import click

from tierline.streams.cli.common import echo_json, say
from tierline.streams.cli.train import read_production


def shadow_report(
    url: str,
    router_path: Path,
    *,
    since_days: int,
    weak_tier: str,
    tenant: str | None,
    min_signals: int,
    as_json: bool,
) -> None:
    from tierline.processors.learning.production import ProductionDataError, shadow_compare
    from tierline.processors.routing.classifiers.learned import ArtifactError, LearnedClassifier

    if since_days <= 0 or min_signals <= 0:
        raise click.BadParameter("need --since-days > 0 and --min-signals > 0")
    try:
        candidate = LearnedClassifier.load(router_path)
    except (OSError, ArtifactError) as error:
        raise click.ClickException(f"{router_path}: {error}") from None
    if not candidate.hashed:
        raise click.ClickException(
            f"{router_path} reads prompt text; the recorded features are hashed term ids. "
            "Compare an artifact trained with --hashed or --from-clickhouse."
        )
    until = datetime.datetime.now(datetime.UTC)
    since = until - datetime.timedelta(days=since_days)
    requests = read_production(url, since, until, tenant)
    say(f"comparing on {len(requests)} recorded requests of the last {since_days} days ...")
    try:
        report = shadow_compare(requests, candidate, weak_tier=weak_tier, min_signals=min_signals)
    except ProductionDataError as error:
        raise click.ClickException(str(error)) from None
    report |= {
        "candidate": str(router_path),
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    if as_json:
        echo_json(report)
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    click.echo(
        f"{report['labelled']} labelled requests (tier {report['weak_tier']}'s scored answers "
        f"and cascade escalations); strong-tier quality {_fmt(report['strong_quality_imputed'])} "
        f"from {report['strong_scored']} scored answers"
    )
    columns = ("apgr", "cpt50", "cpt80", "saving_at_95", "brier", "auc")
    click.echo(f"{'router':<10}" + "".join(f"{c:>14}" for c in columns))
    for name, entry in report["routers"].items():
        click.echo(f"{name:<10}" + "".join(f"{_fmt(entry.get(c)):>14}" for c in columns))
    if "note" in report:
        click.echo(report["note"])
    better = report["routers"]["candidate"].get("apgr"), report["routers"]["deployed"].get("apgr")
    if None not in better:
        verdict = "better" if better[0] > better[1] else "not better"
        click.echo(f"candidate is {verdict} than the deployed router on APGR")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
