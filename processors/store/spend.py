"""Spend queries: what `tierline spend` asks ClickHouse, in SQL anyone can copy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from tierline.processors.pricing.cost import quantize

DIMENSIONS: dict[str, str] = {
    "tenant": "tenant",
    "model": "model",
    "tier": "tier",
    "feature": "feature",
    "provider": "provider",
    "task": "task",
    "day": "toString(toDate(created_at))",
}
_SINCE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """`30m`, `24h`, `7d`, `2w` as a time span."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"--since takes a number and a unit m/h/d/w, like 7d or 24h; got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def spend_sql(by: str, since: timedelta | None = None, where: str = "") -> str:
    """Spend grouped by one dimension. FINAL: a not-yet-merged duplicate never counts twice."""
    if by not in DIMENSIONS:
        raise ValueError(f"--by takes one of {', '.join(DIMENSIONS)}; got {by!r}")
    filters = []
    if since is not None:
        filters.append(f"created_at >= now64(3) - INTERVAL {int(since.total_seconds())} SECOND")
    if where:
        filters.append(where)
    clause = f"WHERE {' AND '.join(filters)}\n" if filters else ""
    return (
        f"SELECT {DIMENSIONS[by]} AS {by}, uniqExact(tenant, request_id) AS requests,\n"
        "       count() AS calls,\n"
        "       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
        "       sum(cost_usd) AS cost_usd\n"
        "FROM costs FINAL\n"
        f"{clause}"
        f"GROUP BY {by}\nORDER BY cost_usd DESC"
    )


@dataclass(frozen=True)
class SpendRow:
    key: str
    requests: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


def query_spend(
    client: Client, by: str, since: timedelta | None = None, where: str = ""
) -> list[SpendRow]:
    rows = client.query(spend_sql(by, since, where)).result_rows
    return [
        SpendRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), quantize(Decimal(r[5])))
        for r in rows
    ]


#: an attempt younger than this may still be in flight, not cut off
UNCONFIRMED_GRACE_S = 300


@dataclass(frozen=True)
class Unconfirmed:
    """Provider calls cut off by a crash: the provider may have billed them; no bill says so."""

    calls: int
    estimated_usd: Decimal


def unconfirmed_sql(
    since: timedelta | None = None, grace_s: int = UNCONFIRMED_GRACE_S, where: str = ""
) -> str:
    """Attempts whose newest row is still `started` well after it was made (FINAL keeps it)."""
    filters = ["state = 'started'", f"created_at < now64(3) - INTERVAL {int(grace_s)} SECOND"]
    if where:
        filters.append(where)
    if since is not None:
        filters.append(f"created_at >= now64(3) - INTERVAL {int(since.total_seconds())} SECOND")
    return (
        "SELECT count() AS calls, sum(estimated_cost_usd) AS estimated_usd\n"
        "FROM attempts FINAL\n"
        f"WHERE {' AND '.join(filters)}"
    )


def query_unconfirmed(
    client: Client,
    since: timedelta | None = None,
    grace_s: int = UNCONFIRMED_GRACE_S,
    where: str = "",
) -> Unconfirmed:
    calls, estimated = client.query(unconfirmed_sql(since, grace_s, where)).result_rows[0]
    return Unconfirmed(int(calls), quantize(Decimal(estimated or 0)))
