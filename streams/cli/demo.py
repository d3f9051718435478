"""`tierline demo`: the whole pipeline on a bundled workload, with its bill."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

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
    from rich.console import Console

    from tierline.streams.demo import DemoProgress, DemoReport


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
    show = wants_progress(as_json, sys.stdout.isatty())
    report = asyncio.run(_demo(load(config_path), n, seed, timeout, show_progress=show))
    if report.billing_incomplete:
        say(
            f"warning: ClickHouse holds {report.billed_rows} billed rows "
            f"(${report.billed_usd:.6f}) of this run, not yet all of its "
            f"${report.cost_usd:.6f}; see the sink's warnings above"
        )
    if as_json:
        echo_json(report.as_json())
    else:
        _print(report)
    if report.responses < report.requests:
        raise SystemExit(1)


async def _demo(
    settings: Settings, n: int, seed: int, wait_s: float, show_progress: bool
) -> DemoReport:
    from rich.console import Console

    from tierline.streams.demo import run_demo
    from tierline.streams.runtime import start_pipeline
    from tierline.streams.workload import demo_requests

    if "metrics_port" not in settings.model_fields_set:
        settings.metrics_port = 0  # a demo next to a running tierline must not clash on 9464
    if "batch" not in settings.model_fields_set:
        # the simulator ends a batch in seconds: cut and poll batches as often, not per minute
        settings.batch = settings.batch.model_copy(update={"max_wait_s": 1.0, "poll_s": 0.5})
    # the bar starts before the pipeline does: starting it is the longest quiet part
    bar = DemoProgressBar(Console(stderr=True)) if show_progress else None
    with bar if bar is not None else nullcontext():
        pipeline = await start_pipeline(settings, say=bar.say if bar is not None else say)
        try:
            return await run_demo(
                pipeline,
                demo_requests(n, seed),
                timeout_s=wait_s,
                progress=bar if bar is not None else _ignore,
            )
        finally:
            await pipeline.stop()


def _ignore(snapshot: DemoProgress) -> None:
    pass


def wants_progress(as_json: bool, stdout_is_tty: bool) -> bool:
    """A progress bar only for a person watching: never with --json, never into a pipe or file."""
    return stdout_is_tty and not as_json


class DemoProgressBar:
    """The demo's progress as a rich bar: answered of total, with sent, errors and spend so far.

    Call it with each `DemoProgress`. Use it as a context manager: while it
    is live, log records go through its console, above the bar, instead of
    tearing it; lines meant for the user go through `say` (click's stderr
    may bypass rich's redirection, so they must not take `common.say`).
    """

    def __init__(self, console: Console, *, auto_refresh: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        from tierline.streams.demo import describe_progress

        self._describe = describe_progress
        self.progress = Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("[bold]{task.fields[phase]:<9}[/bold]"),
            BarColumn(bar_width=30),
            TextColumn("{task.description}", markup=False),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=auto_refresh,
            redirect_stdout=False,
        )
        self._task = self.progress.add_task(
            "the router, tier workers and cost sink", total=None, phase="starting"
        )
        self._moved: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __call__(self, snapshot: DemoProgress) -> None:
        self.progress.update(
            self._task,
            total=snapshot.total,
            completed=snapshot.answered,
            description=self._describe(snapshot),
            phase=snapshot.phase,
        )
        if snapshot.phase == "done":
            self.progress.stop_task(self._task)

    def say(self, text: str) -> None:
        """A line for the person at the terminal, printed above the bar (stderr, as `say`)."""
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> DemoProgressBar:
        before = sys.stderr
        self.progress.start()
        if sys.stderr is not before:  # rich took stderr over: logs follow it
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is before:
                    handler.setStream(sys.stderr)
                    self._moved.append((handler, before))
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._moved:
            handler.setStream(stream)
        self._moved.clear()
        self.progress.stop()


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
