"""`tierline demo`: the whole pipeline on a bundled workload, with its bill."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tierline.streams.cli.common import (
    config_option,
    echo_json,
    load,
    log_level_option,
    say,
    setup_logging,
)
from tierline.streams.config import Settings

if TYPE_CHECKING:
    from tierline.streams.demo import DemoReport


@click.command("demo")
@config_option
@click.option("--requests", "n", default=240, show_default=True, help="How many requests to send.")
@click.option("--seed", default=1, show_default=True, help="Which sample of the workload.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@click.option(
    "--timeout", default=180.0, show_default=True, help="Seconds to wait for all responses."
)
@log_level_option
def command(
    config_path: Path | None, n: int, seed: int, as_json: bool, timeout: float, log_level: str
) -> None:
    """Run tierline end to end on a mixed workload and show what routing saved.

    \b
    Starts every role (on embedded defaults when nothing is configured: the
    embedded broker, chDB under ./.tierline/, the provider simulator), sends
    the bundled workload of realistic prompts through Kafka, and prints the
    per-tier mix, the cost against sending everything to the premium tier,
    latency percentiles, and the SQL to query the spend yourself.
    \b
    Examples:
      tierline demo
      tierline demo --requests 1000 --json
    """
    setup_logging(log_level)
    if n < 1:
        raise click.BadParameter("must be at least 1", param_hint="--requests")
    report = asyncio.run(_demo(load(config_path), n, seed, timeout, quiet=as_json))
    if as_json:
        echo_json(report.as_json())
    else:
        _print(report)
    if report.responses < report.requests:
        raise SystemExit(1)


async def _demo(settings: Settings, n: int, seed: int, wait_s: float, quiet: bool) -> DemoReport:
    from rich.progress import Progress

    from tierline.streams.demo import run_demo
    from tierline.streams.runtime import start_pipeline
    from tierline.streams.workload import demo_requests

    pipeline = await start_pipeline(settings, say=say)
    try:
        with Progress(transient=True, disable=quiet, console=None) as bar:
            task = bar.add_task("requests answered", total=n)
            return await run_demo(
                pipeline,
                demo_requests(n, seed),
                timeout_s=wait_s,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    finally:
        await pipeline.stop()


def _print(report: DemoReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="where the requests went")
    table.add_column("tier")
    table.add_column("requests", justify="right")
    table.add_column("share", justify="right")
    ok = max(1, report.responses - report.errors)
    for tier, count in sorted(report.by_tier.items()):
        table.add_row(tier, str(count), f"{count / ok:.0%}")
    console.print(table)
    saving = 1 - report.cost_usd / report.baseline_cost_usd if report.baseline_cost_usd else 0
    console.print(
        f"requests {report.requests}, responses {report.responses}, "
        f"errors {report.errors}, dlq {report.dlq}\n"
        f"cost ${report.cost_usd:.6f} vs ${report.baseline_cost_usd:.6f} all-premium "
        f"([bold]{saving:.0%} saved[/bold])\n"
        f"billed in ClickHouse: {report.billed_rows} rows, ${report.billed_usd:.6f}\n"
        f"latency end to end: p50 {report.percentile(0.5)} ms, p95 {report.percentile(0.95)} ms, "
        f"p99 {report.percentile(0.99)} ms\n"
        f"providers: {dict(report.by_provider)}"
    )
    console.print("\nQuery the spend yourself (clickhouse-client, or `tierline spend --by tier`):")
    console.print(report.spend_sql, markup=False)
