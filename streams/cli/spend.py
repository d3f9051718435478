"""`tierline spend`: where the money went, from ClickHouse.

The command turns its flags into a `SpendFilter` (window and value filters) and a list
of `--by` dimensions, and leaves the SQL to `tierline.processors.store.spend`: every
value a user types reaches ClickHouse as a query parameter, never as SQL text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tierline.processors.store.spend import (
    DIMENSIONS,
    TOKEN_CLASSES,
    Bound,
    Saved,
    SpendFilter,
    SpendRow,
    check_window,
    counts_unconfirmed,
    dimensions,
    parse_bound,
    query_saved,
    query_spend,
    query_unconfirmed,
    spend_query,
)
from tierline.schemas import Tier
from tierline.streams.cli.common import config_option, load

if TYPE_CHECKING:
    from rich.table import Table

FORMATS = ("table", "json", "csv")
METRICS = ("requests", "calls", "input_tokens", "output_tokens", "cost_usd")


def _by(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return dimensions(value or ("tenant",))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _bound(text: str | None, flag: str) -> Bound | None:
    if text is None:
        return None
    try:
        return parse_bound(text, flag)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


@click.command("spend")
@config_option
@click.option(
    "--by",
    multiple=True,
    callback=_by,
    metavar="DIM[,DIM...]",
    help=f"Group by one or more of {', '.join(DIMENSIONS)}; repeat or comma-separate "
    "(default: tenant).",
)
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="Window start (inclusive): a span back from now (30m, 24h, 7d, 2w), an ISO-8601 "
    "date or time (2026-03-01, 2026-03-01T12:00:00Z; no offset means UTC), or 'all'.",
)
@click.option(
    "--until",
    default=None,
    help="Window end (exclusive), the same forms as --since (a span means that long ago); "
    "default: now.",
)
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant; repeat for any of.")
@click.option("--feature", "features", multiple=True, help="Only this feature; repeat for any of.")
@click.option("--model", "models", multiple=True, help="Only this model; repeat for any of.")
@click.option(
    "--tier",
    "tiers",
    multiple=True,
    type=click.Choice([t.value for t in Tier]),
    help="Only this tier; repeat for any of.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for people; json (one array) or csv (header row) for programs.",
)
@click.option(
    "--token-classes",
    is_flag=True,
    help="Also show the prompt's cache token classes: tokens read from the prompt cache, "
    "written to it, and of those the writes to a 1-hour cache (each billed at its own price).",
)
@click.option(
    "--show-sql",
    is_flag=True,
    help="Print the SQL instead of running it, values inlined as escaped literals "
    "(the query that runs sends them to ClickHouse as parameters).",
)
def command(
    config_path: Path | None,
    by: tuple[str, ...],
    since: str,
    until: str | None,
    tenants: tuple[str, ...],
    features: tuple[str, ...],
    models: tuple[str, ...],
    tiers: tuple[str, ...],
    fmt: str,
    token_classes: bool,
    show_sql: bool,
) -> None:
    """Spend grouped by tenant, model, tier, feature, provider, task or day.

    Amounts are exact decimals (USD, to the nano-dollar), never rounded floats. Rows
    are grouped by every --by dimension at once, most expensive first. The window is
    [--since, --until); the filters --tenant, --feature, --model and --tier each keep
    rows with any of their values, and all of them apply.

    \b
    Examples:
      tierline spend --by tenant
      tierline spend --by model --since 24h --format json
      tierline spend --by tenant,model                  # or: --by tenant --by model
      tierline spend --by day --tenant acme --tenant globex --feature search
      tierline spend --by model --tier premium --since all
      tierline spend --since 2026-03-01 --until 2026-04-01 --by tier   # March, UTC
      tierline spend --since 14d --until 7d             # the week before last
      tierline spend --by day --since all --format csv > spend.csv
      tierline spend --by model --token-classes   # cache reads and writes too
      tierline spend --by day --show-sql     # the SQL, to run in clickhouse-client
    """
    settings = load(config_path)
    start, end = _bound(since, "--since"), _bound(until, "--until")
    try:
        check_window(start, end, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    rows = SpendFilter(start, end, tenants, features, models, tiers)
    if show_sql:
        click.echo(spend_query(by, rows, token_classes=token_classes).literal())
        return
    from tierline.processors.store.clickhouse import connect

    try:
        found = query_spend(
            connect(settings.clickhouse_url), by, rows=rows, token_classes=token_classes
        )
    except Exception as exc:  # noqa: BLE001 - any driver failure is one clear line
        raise click.ClickException(
            f"could not query spend: {exc}\n(embedded chDB can be read only while no other "
            "tierline process holds it; stop `tierline run`, or use a ClickHouse server)"
        ) from None
    if fmt == "json":
        click.echo(render_json(found, by, token_classes=token_classes))
    elif fmt == "csv":
        click.echo(render_csv(found, by, token_classes=token_classes), nl=False)
    else:
        from rich.console import Console

        console = Console()
        title = spend_title(by, since, until, rows)
        console.print(spend_table(found, by, title, token_classes=token_classes))
        try:
            saved = query_saved(connect(settings.clickhouse_url), rows=rows)
        except Exception as exc:  # noqa: BLE001 - the spend is shown; the saving is extra
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            console.print(f"saved by cache: unknown ({why}; `tierline db migrate` adds saved_usd)")
        else:
            if saved.answers:
                console.print(saved_line(saved))
        if not counts_unconfirmed(rows):
            return  # attempts have no feature: a figure for all features would mislead
        cut_off = query_unconfirmed(connect(settings.clickhouse_url), rows=rows)
        if cut_off.calls:
            console.print(
                f"possibly billed by providers, unconfirmed: {cut_off.calls} calls cut off by "
                f"a crash, estimated up to ${_usd(cut_off.estimated_usd)} (not in the totals)"
            )


def saved_line(saved: Saved) -> str:
    """The response cache's saving, under the table: not spent, so not in the totals."""
    answers = f"{saved.answers} answer{'s' if saved.answers != 1 else ''}"
    return (
        f"saved by cache: ${_usd(saved.saved_usd)} ({answers} from the response cache, "
        "at what they cost when first served; not in the totals)"
    )


def spend_title(by: Sequence[str], since: str, until: str | None, rows: SpendFilter) -> str:
    """`spend by tenant, model, last 7d`, then the window end and filters, as typed."""
    title = f"spend by {', '.join(by)}"
    if rows.since is not None:
        title += f", last {since}" if until is None and _is_span(since) else f", from {since}"
    if until is not None and rows.until is not None:
        title += f" until {until}" + (" ago" if _is_span(until) else "")
    for column, values in rows.only().items():
        title += f", {column} {'|'.join(values)}"
    return title


def _is_span(text: str) -> bool:
    return not isinstance(parse_bound(text), datetime)


def _usd(amount: Decimal) -> str:
    """An exact decimal string, never in exponent form: `0.000000001`, `0.250000000`."""
    return format(amount, "f")


def _keys(by: str | Sequence[str]) -> tuple[str, ...]:
    """The key columns: one dimension's name, or several."""
    return (by,) if isinstance(by, str) else tuple(by)


def metrics(token_classes: bool = False) -> tuple[str, ...]:
    """The total columns, in order: the cache token classes after the output tokens."""
    if not token_classes:
        return METRICS
    return (*METRICS[:-1], *TOKEN_CLASSES, METRICS[-1])


def spend_records(
    rows: Sequence[SpendRow], by: str | Sequence[str], *, token_classes: bool = False
) -> list[dict[str, Any]]:
    """The rows as plain records (what json and csv print): a field per `--by` dimension,
    then the totals (the cache token classes too when asked); `cost_usd` an exact
    decimal string."""
    keys = _keys(by)
    records = []
    for r in rows:
        totals: dict[str, Any] = {
            "requests": r.requests,
            "calls": r.calls,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached_input_tokens": r.cached_input_tokens or 0,
            "cache_write_tokens": r.cache_write_tokens or 0,
            "cache_write_1h_tokens": r.cache_write_1h_tokens or 0,
            "cost_usd": _usd(r.cost_usd),
        }
        record = dict(zip(keys, r.keys, strict=True))
        record.update((name, totals[name]) for name in metrics(token_classes))
        records.append(record)
    return records


def render_json(
    rows: Sequence[SpendRow], by: str | Sequence[str], *, token_classes: bool = False
) -> str:
    """One JSON array, one object per row."""
    import orjson

    return orjson.dumps(spend_records(rows, by, token_classes=token_classes)).decode()


def render_csv(
    rows: Sequence[SpendRow], by: str | Sequence[str], *, token_classes: bool = False
) -> str:
    """CSV with a header row: `<by>[,<by>...],requests,calls,input_tokens,output_tokens,cost_usd`
    (`cached_input_tokens,cache_write_tokens,cache_write_1h_tokens` before `cost_usd` with
    `token_classes`).

    Quoted as the stdlib csv module does (a key with a comma or quote is quoted);
    lines end in `\\n`, so the last column reads clean in shell tools.
    """
    out = io.StringIO()
    names = [*_keys(by), *metrics(token_classes)]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(spend_records(rows, by, token_classes=token_classes))
    return out.getvalue()


def spend_table(
    rows: Sequence[SpendRow], by: str | Sequence[str], title: str, *, token_classes: bool = False
) -> Table:
    """The rich table, a column per `--by` dimension; no cell is ever cut with an ellipsis.

    On a narrow terminal cells fold onto more lines (a long model name first), so
    no name and no digit of an amount is lost.
    """
    from rich.table import Table

    keys = _keys(by)
    table = Table(title=title)
    for key in keys:
        table.add_column(key, justify="left", overflow="fold")
    # two-line headers leave the key column room: at 80 columns a model name of up to
    # ~25 characters stays on one line next to six-digit token counts
    classes = ("cache\nreads", "cache\nwrites", "of which\n1h") if token_classes else ()
    columns = ("requests", "calls", "input\ntokens", "output\ntokens", *classes, "cost\n(USD)")
    for col in columns:
        table.add_column(col, justify="right", overflow="fold")
    total = sum((r.cost_usd for r in rows), Decimal(0))
    for r in rows:
        counts: list[int | None] = [r.requests, r.calls, r.input_tokens, r.output_tokens]
        if token_classes:
            counts += [r.cached_input_tokens, r.cache_write_tokens, r.cache_write_1h_tokens]
        table.add_row(
            *(key or "(none)" for key in r.keys),
            *(f"{count or 0:,}" for count in counts),
            _usd(r.cost_usd),
        )
    table.add_section()
    table.add_row("total", *[""] * (len(keys) - 1), *[""] * (len(columns) - 1), _usd(total))
    return table
