"""`tierline spend`: where the money went, from ClickHouse."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tierline.processors.store.spend import (
    DIMENSIONS,
    SpendRow,
    parse_since,
    query_spend,
    query_unconfirmed,
    spend_sql,
)
from tierline.streams.cli.common import config_option, load

if TYPE_CHECKING:
    from rich.table import Table

FORMATS = ("table", "json", "csv")


@click.command("spend")
@config_option
@click.option("--by", type=click.Choice(list(DIMENSIONS)), default="tenant", show_default=True)
@click.option(
    "--since", default="7d", show_default=True, help="How far back: 30m, 24h, 7d, 2w, or 'all'."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for people; json (one array) or csv (header row) for programs.",
)
@click.option("--show-sql", is_flag=True, help="Print the SQL instead of running it.")
def command(config_path: Path | None, by: str, since: str, fmt: str, show_sql: bool) -> None:
    """Spend grouped by tenant, model, tier, feature, provider, task or day.

    Amounts are exact decimals (USD, to the nano-dollar), never rounded floats.

    \b
    Examples:
      tierline spend --by tenant
      tierline spend --by model --since 24h --format json
      tierline spend --by day --since all --format csv > spend.csv
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
        click.echo(render_json(rows, by))
    elif fmt == "csv":
        click.echo(render_csv(rows, by), nl=False)
    else:
        from rich.console import Console

        title = f"spend by {by}" + ("" if window is None else f", last {since}")
        console = Console()
        console.print(spend_table(rows, by, title))
        cut_off = query_unconfirmed(connect(settings.clickhouse_url), window)
        if cut_off.calls:
            console.print(
                f"possibly billed by providers, unconfirmed: {cut_off.calls} calls cut off by "
                f"a crash, estimated up to ${_usd(cut_off.estimated_usd)} (not in the totals)"
            )


def _usd(amount: Decimal) -> str:
    """An exact decimal string, never in exponent form: `0.000000001`, `0.250000000`."""
    return format(amount, "f")


def spend_records(rows: Sequence[SpendRow], by: str) -> list[dict[str, Any]]:
    """The rows as plain records (what json and csv print); `cost_usd` an exact decimal string."""
    return [
        {
            by: r.key,
            "requests": r.requests,
            "calls": r.calls,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": _usd(r.cost_usd),
        }
        for r in rows
    ]


def render_json(rows: Sequence[SpendRow], by: str) -> str:
    """One JSON array, one object per row."""
    import orjson

    return orjson.dumps(spend_records(rows, by)).decode()


def render_csv(rows: Sequence[SpendRow], by: str) -> str:
    """CSV with a header row: `<by>,requests,calls,input_tokens,output_tokens,cost_usd`.

    Quoted as the stdlib csv module does (a key with a comma or quote is quoted);
    lines end in `\\n`, so the last column reads clean in shell tools.
    """
    out = io.StringIO()
    columns = [by, "requests", "calls", "input_tokens", "output_tokens", "cost_usd"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(spend_records(rows, by))
    return out.getvalue()


def spend_table(rows: Sequence[SpendRow], by: str, title: str) -> Table:
    """The rich table; no cell is ever cut short with an ellipsis.

    On a narrow terminal cells fold onto more lines (a long model name first), so
    no name and no digit of an amount is lost.
    """
    from rich.table import Table

    table = Table(title=title)
    table.add_column(by, justify="left", overflow="fold")
    # two-line headers leave the key column room: at 80 columns a model name of up to
    # ~25 characters stays on one line next to six-digit token counts
    for col in ("requests", "calls", "input\ntokens", "output\ntokens", "cost\n(USD)"):
        table.add_column(col, justify="right", overflow="fold")
    total = sum((r.cost_usd for r in rows), Decimal(0))
    for r in rows:
        table.add_row(
            r.key or "(none)",
            f"{r.requests:,}",
            f"{r.calls:,}",
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            _usd(r.cost_usd),
        )
    table.add_section()
    table.add_row("total", "", "", "", "", _usd(total))
    return table
