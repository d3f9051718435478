"""`tierline dlq`: list the dead letters, and send again those a retry can answer.

The logic is in `streams/dlq_replay.py`; here are the options, the rendering,
and errors as one clear line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tierline.schemas import ErrorType
from tierline.streams.cli.common import config_option, echo_json, load, say

if TYPE_CHECKING:
    from rich.table import Table

    from tierline.streams.dlq_replay import DeadRecord, ReplayReport

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
#: how much of a reason the table shows (`--json` has all of it)
REASON_WIDTH = 60
#: a narrower terminal gets two plain lines a dead letter instead of the table
TABLE_WIDTH = 140

since_option = click.option(
    "--since",
    "since_text",
    default=None,
    metavar="WHEN",
    help="Only dead letters from WHEN on: an ISO-8601 time (2025-03-01T12:00Z; no offset = "
    "UTC) or a span back from now: 30m, 2h, 1d, 2w.",
)
error_type_option = click.option(
    "--error-type",
    "error_types",
    multiple=True,
    type=click.Choice([str(t) for t in ErrorType], case_sensitive=False),
    metavar="TYPE",
    help="Only dead letters of this error type (timeout, connection, bad_request, ...); "
    "repeat for several.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


def selection(command: F) -> F:
    """The options every dlq command selects dead letters by (and --config)."""
    for option in (json_option, error_type_option, since_option, config_option):
        command = option(command)
    return command


@click.group("dlq")
def command() -> None:
    """Dead letters: list what tierline could not answer, replay what a retry can answer.

    A dead letter on `tierline.dlq` is the message as it came, with headers saying why
    it died. Those that died of a passing failure (timeout, connection, server_error,
    overloaded, rate_limited, unavailable, internal) and hold a request are answerable:
    `replay` sends them to `tierline.requests` again. The others (malformed input,
    bad_request, budget_exceeded, ...) would die the same way; they are only listed.

    Needs real Kafka (TIERLINE_KAFKA_BOOTSTRAP, or kafka.bootstrap in the config file).

    \b
    Examples:
      tierline dlq list --since 2h
      tierline dlq replay --since 2h --dry-run
      tierline dlq replay --since 2h
    """


@command.command("list", short_help="List dead letters and whether a replay can help.")
@selection
@click.option(
    "--limit", type=click.IntRange(min=0), default=None, metavar="N", help="Only the newest N."
)
def list_command(
    config_path: Path | None,
    since_text: str | None,
    error_types: tuple[str, ...],
    as_json: bool,
    limit: int | None,
) -> None:
    """List dead letters, oldest first: when, who, why, and whether a replay can help.

    Reads the whole DLQ (up to its end when the command starts) and
    `tierline.dlq.replays`. Columns: time (UTC), tenant, request id, error type,
    gen (how often `replay` had sent the request before it died), replay? (yes:
    answerable and not replayed yet; done: replayed; no: a retry cannot help),
    source topic, and the reason, cut short (--json has it whole).

    \b
    Examples:
      tierline dlq list
      tierline dlq list --since 30m --error-type timeout --error-type connection
      tierline dlq list --since 2025-03-01T08:00:00Z --limit 20
      tierline dlq list --json | jq -c 'select(.answerable and (.replayed | not))'
    """
    from tierline.streams.dlq_replay import list_dead_letters

    settings = load(config_path)
    since = _since(since_text)
    listing = _run(list_dead_letters(settings, since, error_types, limit, say))
    rows = listing.rows()
    if as_json:
        for item in rows:
            echo_json(item)
        return
    from rich.console import Console

    console, prefix = Console(), settings.kafka.topic_prefix
    if console.width >= TABLE_WIDTH:
        console.print(dlq_table(rows, prefix))
    else:
        for line in dlq_lines(rows, prefix):
            click.echo(line)
    answerable = sum(1 for r in rows if r["answerable"] and not r["replayed"])
    say(f"{len(rows)} dead letters; {answerable} answerable and not replayed yet")


@command.command("replay", short_help="Send the answerable dead letters again, once each.")
@selection
@click.option("--dry-run", is_flag=True, help="Send nothing; say what would be sent.")
def replay_command(
    config_path: Path | None,
    since_text: str | None,
    error_types: tuple[str, ...],
    as_json: bool,
    dry_run: bool,
) -> None:
    """Send the answerable dead letters again, each once.

    Each request goes to `tierline.requests` again (keyed by tenant, as apps send it)
    with `replay` one higher, so workers serve it even though they saw its id. Each
    replayed dead letter is recorded in `tierline.dlq.replays`: a dead letter recorded
    there is skipped, so running this twice sends nothing the second time, and a
    request dead-lettered twice (router and worker) is sent once. With Kafka
    transactions the requests and their records commit together.

    Prints what it sent, then a summary: selected, answerable, already replayed,
    replayed now, and the not answerable ones by error type. With --json: one object
    per dead letter sent, then one {"summary": ...}.

    \b
    Examples:
      tierline dlq replay --since 1h --dry-run
      tierline dlq replay --since 1h --error-type timeout
      tierline dlq replay --json
    """
    from tierline.streams.dlq_replay import replay_dead_letters

    settings = load(config_path)
    since = _since(since_text)
    report = _run(replay_dead_letters(settings, since, error_types, dry_run, say))
    if as_json:
        for record in report.sent:
            echo_json(_sent_json(record))
        echo_json({"summary": report.summary()})
        return
    for line in replay_lines(report):
        click.echo(line)


def _since(text: str | None) -> datetime | None:
    from tierline.streams.dlq_replay import parse_when

    if text is None:
        return None
    try:
        return parse_when(text, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _run(work: Awaitable[T]) -> T:
    """Run `work`; a reason the operator can fix, or Kafka failing, as one line."""
    from aiokafka.errors import KafkaError

    from tierline.streams.dlq_replay import ReplayError

    async def main() -> T:
        return await work

    try:
        return asyncio.run(main())
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(f"Kafka failed: {exc!r}") from None


def _sent_json(record: DeadRecord) -> dict[str, Any]:
    from tierline.streams.dlq_replay import row

    generation = record.generation or 0
    item = row(record, ())
    del item["replayed"]
    return item | {"new_replay": generation + 1}


def replay_lines(report: ReplayReport) -> list[str]:
    """What `replay` prints for people: each request sent (or to send), then the summary."""
    verb = "would send" if report.dry_run else "sent"
    lines = [
        f"{verb}: tenant {r.tenant} request {r.request_id} as replay {(r.generation or 0) + 1} "
        f"(died {r.died_at:%Y-%m-%d %H:%M:%S} UTC of {r.letter.error_type})"
        for r in report.sent
    ]
    summary = report.summary()
    done = "would replay" if report.dry_run else "replayed now"
    count = summary["would_replay"] if report.dry_run else summary["replayed_now"]
    lines += [
        f"selected: {summary['selected']}",
        f"answerable: {summary['answerable']}",
        f"already replayed: {summary['already_replayed']}",
        f"same request and generation twice (sent once): {summary['duplicates']}",
        f"{done}: {count}",
        f"not answerable: {sum(summary['not_answerable'].values())}"
        + _by_type(summary["not_answerable"]),
    ]
    if report.dry_run:
        lines.append("dry run: nothing was sent")
    return lines


def _by_type(counts: dict[str, int]) -> str:
    return "" if not counts else " (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


def dlq_table(rows: Sequence[dict[str, Any]], prefix: str = "") -> Table:
    """The rich table of `list`, for a terminal `TABLE_WIDTH` wide or more (narrower, its
    cells fold into columns of a few letters: `dlq_lines` is printed instead).

    Time to the minute (UTC), source topics without `prefix`, the reason cut to
    `REASON_WIDTH` characters (--json has the seconds, the names and the reasons whole).
    `replay?` says `yes` (answerable, not replayed yet), `done` (replayed) or `no`.
    """
    from rich import box
    from rich.table import Table

    table = Table(title="dead letters", box=box.SIMPLE_HEAD)
    table.add_column("time (UTC)", no_wrap=True)
    for name in ("tenant", "request id"):
        table.add_column(name, overflow="fold")
    table.add_column("error", no_wrap=True)
    table.add_column("gen", justify="right", no_wrap=True)
    table.add_column("replay?", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("reason", overflow="fold")
    for r in rows:
        cells = _cells(r, prefix)
        table.add_row(*cells[:7], _cut(cells[7]))
    return table


def _cells(r: dict[str, Any], prefix: str) -> list[str]:
    """A `row` as the eight cells people see: time, tenant, id, error, gen, replay?, source,
    reason."""
    return [
        r["time"][:16].replace("T", " "),
        r["tenant"] or "-",
        r["request_id"] or "-",
        r["error_type"] or "-",
        "-" if r["replay"] is None else str(r["replay"]),
        "done" if r["replayed"] else "yes" if r["answerable"] else "no",
        (r["source_topic"] or "-").removeprefix(prefix),
        r["reason"],
    ]


def dlq_lines(rows: Sequence[dict[str, Any]], prefix: str = "") -> list[str]:
    """Two plain lines a dead letter, for a narrow terminal: what `dlq_table` shows.

    `2025-03-01 11:55  acme  r-17  timeout  gen 0  replay? yes  from tier.economy`,
    then the reason, indented (whole: a narrow terminal wraps it).
    """
    lines = []
    for r in rows:
        time, tenant, rid, error, gen, state, source, reason = _cells(r, prefix)
        lines.append(f"{time}  {tenant}  {rid}  {error}  gen {gen}  replay? {state}  from {source}")
        lines.append(f"    {reason}")
    return lines


def _cut(text: str, width: int = REASON_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
