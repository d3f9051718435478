"""What every subcommand shares: the --config option, logging, running a coroutine."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from tierline.streams.config import Settings, load_settings
from tierline.streams.log_calm import calm_handler, quiet_libraries

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


def setup_logging(level: str, debug_kafka: bool | None = None) -> None:
    """Logs to stderr; repeats folded once per 10 s; libraries at WARNING unless debugging Kafka.

    `debug_kafka` (default: $TIERLINE_DEBUG_KAFKA) lets aiokafka, faust and the HTTP
    stack log at `level`: their DEBUG lines print whole records, prompts included.
    """
    numeric = getattr(logging, level.upper())
    logging.basicConfig(
        level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        calm_handler(handler)
    if debug_kafka is None:
        debug_kafka = os.environ.get("TIERLINE_DEBUG_KAFKA", "") not in ("", "0", "false")
    quiet_libraries(numeric, debug_kafka)


def say(text: str) -> None:
    """A line for the person at the terminal (stderr, so --json output stays clean)."""
    click.echo(text, err=True)


def echo_json(data: Any) -> None:
    import orjson

    click.echo(orjson.dumps(data).decode())


def require_kafka(settings: Settings, whose: str) -> str:
    """The configured bootstrap; a command that reads tierline's topics has nothing to read
    on an embedded broker it would start itself."""
    if not settings.kafka.bootstrap:
        raise click.ClickException(
            "no Kafka configured: set TIERLINE_KAFKA_BOOTSTRAP (or kafka.bootstrap in the config "
            f"file) to the cluster {whose}"
        )
    return settings.kafka.bootstrap


def wide_console() -> Any:
    """A rich console; piped (not a terminal), 200 columns wide, so tables keep whole rows."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)
