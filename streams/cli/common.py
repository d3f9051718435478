"""What every subcommand shares: the --config option, logging, running a coroutine."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from tierline.streams.config import Settings, load_settings

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="TIERLINE_CONFIG",
    help="TOML config file (default: $TIERLINE_CONFIG, else embedded defaults).",
)
log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)


def load(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiokafka and faust are loud at info; keep them to warnings unless debugging
    if level != "debug":
        for name in ("aiokafka", "faust", "mode", "kafka", "httpx", "aiohttp"):
            logging.getLogger(name).setLevel(max(logging.WARNING, getattr(logging, level.upper())))


def say(text: str) -> None:
    """A line for the person at the terminal (stderr, so --json output stays clean)."""
    click.echo(text, err=True)


def echo_json(data: Any) -> None:
    import orjson

    click.echo(orjson.dumps(data).decode())
