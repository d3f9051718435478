"""The `tierline` command line: one click group, one module per subcommand.

Subcommand modules import their heavy dependencies inside the command body, so
`tierline --help` stays fast.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tierline")
def main() -> None:
    """tierline: route each LLM request to the cheapest model that can serve it.

    Apps produce chat requests to the Kafka topic `tierline.requests`; tierline
    classifies each one, calls the cheapest healthy model of the tier it needs,
    answers on `tierline.responses`, and bills every call into ClickHouse.

    Start here: `tierline demo` runs everything on embedded defaults.
    """


def _register() -> None:
    from tierline.streams.cli import (
        bench,
        budgets,
        db,
        demo,
        dlq,
        evaluate,
        run,
        simulate,
        spend,
        status,
        train,
    )

    for module in (run, demo, status, budgets, spend, dlq, db, simulate, bench, train, evaluate):
        main.add_command(module.command)


_register()
