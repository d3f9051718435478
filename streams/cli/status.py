"""`tierline status`: each model's health as the workers report it on `tierline.health`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tierline.streams.cli.common import (
    config_option,
    echo_json,
    load,
    require_kafka,
    wide_console,
)

if TYPE_CHECKING:
    from rich.table import Table

    from tierline.schemas import HealthSnapshot
    from tierline.streams.config import Settings

#: a replica's held count is trusted this long after it reported it
FRESH_S = 30.0


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model, per line.")
@click.option(
    "--watch",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Redraw every SECONDS until Ctrl-C.",
)
def command(config_path: Path | None, as_json: bool, watch: float | None) -> None:
    """Each model's circuit, latency, error rates, rate limits and held requests.

    Read from the compacted topic `tierline.health`, where every worker publishes
    what it sees of each (provider, model): the newest snapshot of each model,
    whichever replica sent it. `held` sums the requests that replicas reported
    holding for the model in the last 30 s (an outage holds requests in Kafka
    instead of failing them).

    \b
    Examples:
      tierline status
      tierline status --watch 2
      tierline status --json | jq 'select(.circuit != "closed")'
    """
    settings = load(config_path)
    require_kafka(settings, "whose workers to show")
    if watch is None:
        _show(asyncio.run(_latest(settings)), as_json)
        return
    from rich.console import Console
    from rich.live import Live

    console = Console()
    try:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                live.update(health_table(asyncio.run(_latest(settings))), refresh=True)
                asyncio.run(asyncio.sleep(watch))
    except KeyboardInterrupt:
        pass


def _show(snapshots: list[tuple[HealthSnapshot, int]], as_json: bool) -> None:
    if as_json:
        for snapshot, held in snapshots:
            echo_json(snapshot.model_dump(mode="json") | {"held": held})
        return
    if not snapshots:
        click.echo("no health reported yet: no worker has called a provider")
        return
    wide_console().print(health_table(snapshots))


async def _latest(settings: Settings) -> list[tuple[HealthSnapshot, int]]:
    from tierline.streams.tail import read_topic
    from tierline.streams.topics import Topics

    topic = Topics(settings.kafka.topic_prefix).health
    records = await read_topic(settings.kafka.bootstrap, topic, "read_uncommitted")
    return newest(_parsed(r.value for r in records), datetime.now(UTC))


def _parsed(values: Iterable[bytes | None]) -> list[HealthSnapshot]:
    from pydantic import ValidationError

    from tierline.schemas import HealthSnapshot

    out = []
    for value in values:
        if value is None:
            continue
        try:
            out.append(HealthSnapshot.model_validate_json(value))
        except (ValidationError, ValueError):
            continue  # the workers log malformed records; a view just skips them
    return out


def newest(snapshots: list[HealthSnapshot], now: datetime) -> list[tuple[HealthSnapshot, int]]:
    """Per model: the newest snapshot, and the requests held for it by fresh replicas."""
    latest: dict[str, HealthSnapshot] = {}
    by_replica: dict[tuple[str, str], HealthSnapshot] = {}
    for snapshot in snapshots:
        if snapshot.key not in latest or snapshot.updated_at >= latest[snapshot.key].updated_at:
            latest[snapshot.key] = snapshot
        by_replica[(snapshot.key, snapshot.replica)] = snapshot
    held: dict[str, int] = {}
    for (key, _), snapshot in by_replica.items():
        if (now - snapshot.updated_at).total_seconds() <= FRESH_S:
            held[key] = held.get(key, 0) + snapshot.held
    return [(latest[key], held.get(key, 0)) for key in sorted(latest)]


def health_table(rows: list[tuple[HealthSnapshot, int]]) -> Table:
    from rich.table import Table

    table = Table(title="tierline.health", title_justify="left")
    for name in ("model", "circuit", "since", "p50 ms", "p95 ms", "calls", "errors"):
        table.add_column(name, justify="right" if name not in ("model", "circuit") else "left")
    for name in ("timeouts", "429s", "rpm", "tpm", "held", "reported"):
        table.add_column(name, justify="right")
    now = datetime.now(UTC)
    colour = {"closed": "green", "half_open": "yellow", "open": "red"}
    for snapshot, held in rows:
        table.add_row(
            snapshot.key,
            f"[{colour[snapshot.circuit]}]{snapshot.circuit}[/]",
            snapshot.changed_at.strftime("%H:%M:%S") if snapshot.changed_at.year > 1970 else "-",
            _num(snapshot.p50_ms),
            _num(snapshot.p95_ms),
            str(snapshot.calls),
            f"{snapshot.error_rate:.0%}",
            f"{snapshot.timeout_rate:.0%}",
            f"{snapshot.rate_limited_rate:.0%}",
            _limit(snapshot.rpm_remaining, snapshot.rpm_limit),
            _limit(snapshot.tpm_remaining, snapshot.tpm_limit),
            str(held),
            f"{(now - snapshot.updated_at).total_seconds():.0f}s ago",
        )
    return table


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _limit(remaining: int | None, limit: int | None) -> str:
    if limit is None:
        return "-"
    return f"{remaining}/{limit}" if remaining is not None else str(limit)
