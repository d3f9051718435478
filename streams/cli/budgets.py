"""`tierline budgets`: each budget's spend and reservations this period, from the ledger."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
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

    from tierline.processors.spend.budgets import Budgets
    from tierline.processors.spend.ledger import Account, AccountKey
    from tierline.streams.config import Settings


@dataclass(frozen=True)
class BudgetRow:
    tenant: str
    feature: str
    period: str
    start: str
    spent: Decimal
    reserved: Decimal
    limit: Decimal | None
    soft_limit: Decimal | None

    @property
    def state(self) -> str:
        committed = self.spent + self.reserved
        if self.limit is None:
            return "no budget"
        if committed >= self.limit:
            return "exceeded"
        if self.soft_limit is not None and committed > self.soft_limit:
            return "soft limit"
        return "ok"

    def as_dict(self) -> dict[str, str | None]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else format(value, "f")

        return {
            "tenant": self.tenant,
            "feature": self.feature,
            "period": self.period,
            "period_start": self.start,
            "spent_usd": text(self.spent),
            "reserved_usd": text(self.reserved),
            "limit_usd": text(self.limit),
            "soft_limit_usd": text(self.soft_limit),
            "state": self.state,
        }


@click.command("budgets")
@config_option
@click.option("--all-periods", is_flag=True, help="Also past days and months, not only current.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per budget, per line.")
def command(config_path: Path | None, all_periods: bool, as_json: bool) -> None:
    """Each budget's spend, open reservations, limits and state, this period.

    \b
    Read from the routers' ledger (the compacted topic tierline.budget.changelog,
    exactly what the routers enforce: spent = settled requests, reserved = the
    worst case of requests forwarded and not yet answered), with the limits of
    the policy file (router.policy). Periods are UTC calendar days and months.

    \b
    Examples:
      tierline budgets
      tierline budgets --all-periods --json
    """
    settings = load(config_path)
    require_kafka(settings, "whose routers keep the budgets")
    budgets = _budgets(settings)
    accounts = asyncio.run(_accounts(settings))
    rows = budget_rows(accounts, budgets, datetime.now(UTC), all_periods)
    if as_json:
        for row in rows:
            echo_json(row.as_dict())
        return
    if not rows:
        click.echo("no budget has been spent against yet this period")
        return
    wide_console().print(budget_table(rows))


def _budgets(settings: Settings) -> Budgets:
    from tierline.processors.routing.policy_file import PolicyFileError, load_policy
    from tierline.processors.spend.budgets import Budgets

    if not settings.router.policy:
        return Budgets()
    try:
        return load_policy(Path(settings.router.policy)).budgets
    except (OSError, PolicyFileError) as exc:
        raise click.ClickException(f"cannot read the policy file: {exc}") from None


async def _accounts(settings: Settings) -> dict[AccountKey, Account]:
    from tierline.processors.spend.ledger import ACCOUNT, SEP, Ledger
    from tierline.streams.tail import read_topic
    from tierline.streams.topics import Topics

    topic = Topics(settings.kafka.topic_prefix).budget_changelog
    records = await read_topic(settings.kafka.bootstrap, topic, settings.isolation_level)
    ledger = Ledger()
    for record in records:
        if record.key is None or not record.key.startswith((ACCOUNT + SEP).encode()):
            continue
        try:
            ledger.apply(record.key.decode(), record.value)
        except (ValueError, KeyError):
            continue
    return ledger.accounts


def budget_rows(
    accounts: dict[AccountKey, Account], budgets: Budgets, now: datetime, all_periods: bool
) -> list[BudgetRow]:
    """One row per account, with the limit of the budget it is kept for."""
    from tierline.processors.spend.budgets import period_start

    rows = []
    for key, account in accounts.items():
        if key.period not in ("day", "month"):
            continue
        current = period_start(key.period, now).isoformat()  # type: ignore[arg-type]
        if not all_periods and key.start != current:
            continue
        covering = budgets.covering(key.tenant, key.feature or None)
        match = next(
            (b for b in covering if (b.feature or "") == key.feature and b.period == key.period),
            None,
        )
        rows.append(
            BudgetRow(
                key.tenant,
                key.feature,
                key.period,
                key.start,
                account.spent,
                account.reserved,
                match.limit_usd if match else None,
                match.soft_limit_usd if match else None,
            )
        )
    return sorted(rows, key=lambda r: (r.tenant, r.feature, r.period, r.start))


def budget_table(rows: list[BudgetRow]) -> Table:
    from rich.table import Table

    table = Table(title="budgets", title_justify="left")
    for name in ("tenant", "feature", "period", "since"):
        table.add_column(name)
    for name in ("spent (USD)", "reserved", "limit", "soft limit", "state"):
        table.add_column(name, justify="right")
    colour = {"ok": "green", "soft limit": "yellow", "exceeded": "red", "no budget": "dim"}
    for row in rows:
        d = row.as_dict()
        table.add_row(
            row.tenant,
            row.feature or "(all)",
            row.period,
            row.start[:10],
            d["spent_usd"] or "-",
            d["reserved_usd"] or "-",
            d["limit_usd"] or "-",
            d["soft_limit_usd"] or "-",
            f"[{colour[row.state]}]{row.state}[/]",
        )
    return table
