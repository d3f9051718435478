"""`tierline db migrate`: create or upgrade the ClickHouse schema."""

from __future__ import annotations

from pathlib import Path

import click

from tierline.streams.cli.common import config_option, load, say


@click.group("db")
def command() -> None:
    """The ClickHouse schema: cost table and daily rollup."""


@command.command("migrate")
@config_option
def migrate_command(config_path: Path | None) -> None:
    """Apply the schema migrations not yet applied. Safe to run again: it changes nothing then.

    \b
    Examples:
      tierline db migrate                                   # embedded chDB in ./.tierline/
      TIERLINE_CLICKHOUSE_URL=http://default:@localhost:8123/default tierline db migrate
    """
    from tierline.processors.store.clickhouse import connect, migrate

    settings = load(config_path)
    url = settings.clickhouse_url
    try:
        applied = migrate(connect(url))
    except Exception as exc:  # noqa: BLE001 - any driver failure is one clear line
        raise click.ClickException(f"migration against {_safe(url)} failed: {exc}") from None
    if applied:
        for name in applied:
            say(f"applied {name}")
    else:
        say("schema is up to date")


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
