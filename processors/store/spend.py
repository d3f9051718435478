"""Spend queries: what `tierline spend` asks ClickHouse, in SQL anyone can copy.

Every query is built as a `Query`: SQL with `{name:Type}` placeholders, and the values
that fill them. The values travel to ClickHouse as query parameters (clickhouse-connect
sends them beside the SQL, never inside it, and ClickHouse parses each as its declared
type), so a tenant named `x' OR 1=1 --` is a tenant that does not exist, never SQL. What
does become SQL text is chosen by code: dimension names from `DIMENSIONS`, column names
from `FILTERS`, and the `where` clauses tests and the demo write.

`Query.literal()` renders the same SQL with each value inlined as an escaped literal:
what `tierline spend --show-sql` prints, to paste into clickhouse-client or a Grafana
panel. The query that runs is always the parametrized one.

Tokens are summed as input (the whole prompt) and output; asked for, the prompt's
cache classes too (`TOKEN_CLASSES`: cached reads, cache writes, and of those the
1-hour writes), each billed at its own price.

Requests answered from the response cache are rows of cost 0 (they count in
`requests` and `calls`); what they saved, the cost of their answers when first
served, is `saved_query`'s, apart from the spend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
#: the `costs` columns a spend question can keep some values of (`--tenant acme`, ...)
FILTERS = ("tenant", "feature", "model", "tier")
#: the prompt's cache token classes, summed when asked for (`token_classes=True`)
TOKEN_CLASSES = ("cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens")
_CLASS_SUMS = "," + ",".join(f"\n       sum({c}) AS {c}" for c in TOKEN_CLASSES)
#: the filterable columns `attempts` has as well (it has no `feature`)
ATTEMPT_FILTERS = frozenset({"tenant", "model", "tier"})

_SINCE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

#: one end of a time window: a span back from now, or a moment (aware, UTC)
Bound = timedelta | datetime
#: what a query parameter can hold here
Value = str | int | datetime | tuple[str, ...]


def parse_since(text: str) -> timedelta:
    """`30m`, `24h`, `7d`, `2w` as a time span."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"--since takes a number and a unit m/h/d/w, like 7d or 24h; got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_bound(text: str, flag: str = "--since") -> Bound | None:
    """One end of a window: `all` (none), a span back from now, or an ISO-8601 date/time.

    Spans are those of `parse_since` (`30m`, `24h`, `7d`, `2w`): "that long ago". A date
    (`2026-03-01`) is its midnight; a time without an offset (`2026-03-01T12:00`) is UTC,
    as `costs.created_at` is; one with an offset (`...+02:00`, `...Z`) is converted to UTC.
    """
    text = text.strip()
    if text == "all":
        return None
    if _SINCE.match(text):
        return parse_since(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{flag} takes a span back from now (30m, 24h, 7d, 2w), an ISO-8601 date or time "
            f"(2026-03-01, 2026-03-01T12:00:00Z) or 'all'; got {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def moment_of(bound: Bound, now: datetime) -> datetime:
    """Where a bound falls, seen from `now`."""
    return now - bound if isinstance(bound, timedelta) else bound


def check_window(since: Bound | None, until: Bound | None, now: datetime) -> None:
    """Refuse a window [since, until) that holds no time at all (`--since 1d --until 2d`)."""
    if since is not None and until is not None and moment_of(since, now) >= moment_of(until, now):
        raise ValueError("the window is empty: --since must come before --until")


def dimensions(by: str | Iterable[str]) -> tuple[str, ...]:
    """The `--by` dimensions, in order, once each: `tenant,model` and `[tenant, model]` alike."""
    names = [by] if isinstance(by, str) else list(by)
    found: list[str] = []
    for name in (part.strip() for item in names for part in item.split(",")):
        if name not in DIMENSIONS:
            raise ValueError(f"--by takes one or more of {', '.join(DIMENSIONS)}; got {name!r}")
        if name not in found:
            found.append(name)
    if not found:
        raise ValueError(f"--by takes one or more of {', '.join(DIMENSIONS)}")
    return tuple(found)


@dataclass(frozen=True)
class SpendFilter:
    """Which cost rows a spend question reads.

    The window is [since, until): `since` inclusive, `until` exclusive, either open
    (None). Each value filter keeps rows whose column is any of its values; an empty one
    keeps every row. Filters on different columns all apply.
    """

    since: Bound | None = None
    until: Bound | None = None
    tenants: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()

    def only(self) -> dict[str, tuple[str, ...]]:
        """The value filters in use, by column (one of `FILTERS`)."""
        by_column = dict(
            zip(FILTERS, (self.tenants, self.features, self.models, self.tiers), strict=True)
        )
        return {column: values for column, values in by_column.items() if values}


@dataclass(frozen=True)
class Query:
    """SQL with `{name:Type}` placeholders, and the parameters that fill them."""

    sql: str
    parameters: Mapping[str, Value] = field(default_factory=dict)

    def run(self, client: Client) -> Sequence[Sequence[Any]]:
        """The result rows; the values go to ClickHouse as query parameters.

        A tuple goes as a list: clickhouse-connect binds a list as an `Array`.
        """
        parameters = {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self.parameters.items()
        }
        return client.query(self.sql, parameters=parameters).result_rows

    def literal(self) -> str:
        """The same SQL with each placeholder replaced by its value as an escaped literal."""
        return _PLACEHOLDER.sub(lambda m: sql_literal(self.parameters[m.group(1)]), self.sql)


#: one condition a line, so a printed query reads down the page
_AND = "\n  AND "
_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")


def sql_literal(value: Value) -> str:
    """A ClickHouse literal for `value`: inside quotes only `\\` and `'` need escaping."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"toDateTime64('{stamp}', 3, 'UTC')"
    return "[" + ", ".join(sql_literal(item) for item in value) + "]"


def _conditions(rows: SpendFilter) -> tuple[list[str], dict[str, Value]]:
    """WHERE conditions (placeholders only) and their parameters for `rows`."""
    clauses: list[str] = []
    parameters: dict[str, Value] = {}
    for name, op, bound in (("since", ">=", rows.since), ("until", "<", rows.until)):
        if isinstance(bound, timedelta):
            # relative to the server's clock, so a printed query stays "the last 7 days"
            clauses.append(f"created_at {op} now64(3) - INTERVAL {{{name}_s:UInt64}} SECOND")
            parameters[f"{name}_s"] = int(bound.total_seconds())
        elif bound is not None:
            clauses.append(f"created_at {op} {{{name}:DateTime64(3, 'UTC')}}")
            parameters[name] = bound
    for column, values in rows.only().items():
        clauses.append(f"{column} IN {{{column}:Array(String)}}")
        parameters[column] = values
    return clauses, parameters


def spend_query(
    by: str | Iterable[str],
    rows: SpendFilter | None = None,
    where: str = "",
    *,
    token_classes: bool = False,
) -> Query:
    """Spend grouped by one or more dimensions, most expensive first.

    FINAL: a not-yet-merged duplicate never counts twice. Rows of equal cost come in
    the order of their keys, so the output is the same from run to run. `where` is SQL
    written by code (never by a user), and-ed to the filters. `token_classes` adds the
    sums of `TOKEN_CLASSES`, after `cost_usd`.
    """
    keys = dimensions(by)
    clauses, parameters = _conditions(rows or SpendFilter())
    if where:
        clauses.append(where)
    clause = f"WHERE {_AND.join(clauses)}\n" if clauses else ""
    selected = ", ".join(f"{DIMENSIONS[key]} AS {key}" for key in keys)
    sql = (
        f"SELECT {selected}, uniqExact(tenant, request_id) AS requests,\n"
        "       count() AS calls,\n"
        "       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
        "       sum(cost_usd) AS cost_usd"
        f"{_CLASS_SUMS if token_classes else ''}\n"
        "FROM costs FINAL\n"
        f"{clause}"
        f"GROUP BY {', '.join(keys)}\nORDER BY cost_usd DESC, {', '.join(keys)}"
    )
    return Query(sql, parameters)


def spend_sql(by: str | Iterable[str], since: Bound | None = None, where: str = "") -> str:
    """`spend_query` over the last `since` as literal SQL, to print (the demo shows it)."""
    return spend_query(by, SpendFilter(since=since), where).literal()


@dataclass(frozen=True)
class SpendRow:
    """One group's totals. `key` is its value of the first `--by` dimension, `more_keys`
    those of the others (empty for a single `--by`); the cache token classes are None
    unless the query asked for them."""

    key: str
    requests: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    more_keys: tuple[str, ...] = ()
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The group's value of every `--by` dimension, in order."""
        return (self.key, *self.more_keys)


def query_spend(
    client: Client,
    by: str | Iterable[str],
    since: Bound | None = None,
    where: str = "",
    *,
    rows: SpendFilter | None = None,
    token_classes: bool = False,
) -> list[SpendRow]:
    """Run `spend_query`. `since`, when given, overrides the window start of `rows`."""
    rows = rows or SpendFilter()
    if since is not None:
        rows = replace(rows, since=since)
    n = len(dimensions(by))
    found = []
    for r in spend_query(by, rows, where, token_classes=token_classes).run(client):
        classes: list[int | None] = [int(v) for v in r[n + 5 :]] or [None] * len(TOKEN_CLASSES)
        found.append(
            SpendRow(
                str(r[0]),
                int(r[n]),
                int(r[n + 1]),
                int(r[n + 2]),
                int(r[n + 3]),
                quantize(Decimal(r[n + 4])),
                tuple(str(k) for k in r[1:n]),
                cached_input_tokens=classes[0],
                cache_write_tokens=classes[1],
                cache_write_1h_tokens=classes[2],
            )
        )
    return found


@dataclass(frozen=True)
class Saved:
    """What the response cache saved: the answers it gave that would have cost something,
    and what they cost when they were first served."""

    answers: int
    saved_usd: Decimal


def saved_query(rows: SpendFilter | None = None, where: str = "") -> Query:
    """The rows answered from the response cache that saved anything, counted and summed."""
    conditions, parameters = _conditions(rows or SpendFilter())
    filters = ["saved_usd > 0", *conditions, *([where] if where else [])]
    sql = (
        "SELECT count() AS answers, sum(saved_usd) AS saved\n"
        "FROM costs FINAL\n"
        f"WHERE {_AND.join(filters)}"
    )
    return Query(sql, parameters)


def query_saved(client: Client, where: str = "", *, rows: SpendFilter | None = None) -> Saved:
    """Run `saved_query`."""
    answers, saved = saved_query(rows, where).run(client)[0]
    return Saved(int(answers), quantize(Decimal(saved or 0)))


#: an attempt younger than this may still be in flight, not cut off
UNCONFIRMED_GRACE_S = 300
#: a batch-lane attempt (id `<request>#batch:<item>`) waits for its provider batch, which
#: may take up to a day: it counts as cut off only once the lane would have given up
BATCH_GRACE_S = 25 * 3600


@dataclass(frozen=True)
class Unconfirmed:
    """Provider calls cut off by a crash: the provider may have billed them; no bill says so."""

    calls: int
    estimated_usd: Decimal


def counts_unconfirmed(rows: SpendFilter) -> bool:
    """Whether `attempts` can answer for `rows`: it has no `feature` column to filter on."""
    return set(rows.only()) <= ATTEMPT_FILTERS


def unconfirmed_query(
    rows: SpendFilter | None = None, grace_s: int = UNCONFIRMED_GRACE_S, where: str = ""
) -> Query:
    """Attempts whose newest row is still `started` well after it was made (FINAL keeps it);
    a batch-lane attempt only once its batch would have been given up (`BATCH_GRACE_S`)."""
    rows = rows or SpendFilter()
    if not counts_unconfirmed(rows):
        raise ValueError("attempts can be filtered by tenant, model and tier only")
    conditions, parameters = _conditions(rows)
    filters = [
        "state = 'started'",
        f"created_at < now64(3) - INTERVAL {int(grace_s)} SECOND",
        f"NOT (position(attempt_id, '#batch:') > 0 "
        f"AND created_at >= now64(3) - INTERVAL {max(int(grace_s), BATCH_GRACE_S)} SECOND)",
    ]
    if where:
        filters.append(where)
    sql = (
        "SELECT count() AS calls, sum(estimated_cost_usd) AS estimated_usd\n"
        "FROM attempts FINAL\n"
        f"WHERE {' AND '.join(filters + conditions)}"
    )
    return Query(sql, parameters)


def unconfirmed_sql(
    since: timedelta | None = None, grace_s: int = UNCONFIRMED_GRACE_S, where: str = ""
) -> str:
    """`unconfirmed_query` over the last `since`, as literal SQL."""
    return unconfirmed_query(SpendFilter(since=since), grace_s, where).literal()


def query_unconfirmed(
    client: Client,
    since: Bound | None = None,
    grace_s: int = UNCONFIRMED_GRACE_S,
    where: str = "",
    *,
    rows: SpendFilter | None = None,
) -> Unconfirmed:
    """Run `unconfirmed_query`. `since`, when given, overrides the window start of `rows`."""
    rows = rows or SpendFilter()
    if since is not None:
        rows = replace(rows, since=since)
    calls, estimated = unconfirmed_query(rows, grace_s, where).run(client)[0]
    return Unconfirmed(int(calls), quantize(Decimal(estimated or 0)))
