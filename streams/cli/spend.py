"""`tierline spend`: where the money went, from ClickHouse."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import click

from tierline.processors.store.spend import DIMENSIONS, parse_since, query_spend, spend_sql
from tierline.streams.cli.common import config_option, echo_json, load


@click.command("spend")
@config_option
@click.option("--by", type=click.Choice(list(DIMENSIONS)), default="tenant", show_default=True)
@click.option(
    "--since", default="7d", show_default=True, help="How far back: 30m, 24h, 7d, 2w, or 'all'."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--show-sql", is_flag=True, help="Print the SQL instead of running it.")
def command(config_path: Path | None, by: str, since: str, fmt: str, show_sql: bool) -> None:
    """Spend grouped by tenant, model, tier, feature, provider, task or day.

    \b
    Examples:
      tierline spend --by tenant
      tierline spend --by model --since 24h --format json
      tierline spend --by day --show-sql     # the SQL, to run in clickhouse-client
    """
    settings = load(config_path)
    try:
        window = None if since == "all" else parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    if show_sql:
        click.echo(spend_sql(by, window))
        return
    from tierline.processors.store.clickhouse import connect

    try:
        rows = query_spend(connect(settings.clickhouse_url), by, window)
    except Exception as exc:  # noqa: BLE001 - any driver failure is one clear line
        raise click.ClickException(
            f"could not query spend: {exc}\n(embedded chDB can be read only while no other "
            "tierline process holds it; stop `tierline run`, or use a ClickHouse server)"
        ) from None
    if fmt == "json":
        echo_json(
            [
                {
                    by: r.key,
                    "requests": r.requests,
                    "calls": r.calls,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cost_usd": format(r.cost_usd, "f"),
                }
                for r in rows
            ]
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"spend by {by}" + ("" if window is None else f", last {since}"))
    for col in (by, "requests", "calls", "input tokens", "output tokens", "cost (USD)"):
        table.add_column(col, justify="left" if col == by else "right")
    for r in rows:
        table.add_row(
            r.key or "(none)",
            f"{r.requests:,}",
            f"{r.calls:,}",
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{r.cost_usd:.9f}",
        )
    total = sum((r.cost_usd for r in rows), Decimal(0))
    table.add_section()
    table.add_row("total", "", "", "", "", f"{total:.9f}")
    Console().print(table)
