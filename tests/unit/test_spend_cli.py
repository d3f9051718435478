"""`tierline spend`'s SQL builder and flags, without a database.

The builder's promise: user-typed values (tenants, features, models, tiers, ISO times)
reach ClickHouse only as query parameters, the SQL text holds placeholders for them,
and `--show-sql` prints the same SQL with the values as escaped literals. The real
engine runs these queries in tests/integration/test_clickhouse.py.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import orjson
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client
from rich.console import Console

from tierline.processors.store.spend import (
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
    saved_query,
    spend_query,
    spend_sql,
    sql_literal,
    unconfirmed_query,
)
from tierline.streams.cli import main
from tierline.streams.cli.spend import (
    render_csv,
    render_json,
    saved_line,
    spend_table,
    spend_title,
)

INJECTION = "x' OR 1=1 --"
MARCH = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_single_by_reads_as_it_always_did() -> None:
    assert spend_sql("model", timedelta(hours=24)) == (
        "SELECT model AS model, uniqExact(tenant, request_id) AS requests,\n"
        "       count() AS calls,\n"
        "       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
        "       sum(cost_usd) AS cost_usd\n"
        "FROM costs FINAL\n"
        "WHERE created_at >= now64(3) - INTERVAL 86400 SECOND\n"
        "GROUP BY model\n"
        "ORDER BY cost_usd DESC, model"
    )
    assert "WHERE" not in spend_sql("day")
    assert spend_sql("day").startswith("SELECT toString(toDate(created_at)) AS day,")


def test_several_by_dimensions_select_group_and_order_by_each() -> None:
    sql = spend_query(["tenant", "model", "day"]).sql
    assert sql.startswith(
        "SELECT tenant AS tenant, model AS model, toString(toDate(created_at)) AS day, "
    )
    assert "GROUP BY tenant, model, day\n" in sql
    assert sql.endswith("ORDER BY cost_usd DESC, tenant, model, day")


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("tenant", ("tenant",)),
        ("tenant,model", ("tenant", "model")),
        (["tenant", "model"], ("tenant", "model")),
        (["day, tier", "tier", "day"], ("day", "tier")),  # once each, in first-seen order
    ],
)
def test_by_takes_lists_and_comma_lists(by: str | list[str], expected: tuple[str, ...]) -> None:
    assert dimensions(by) == expected


@pytest.mark.parametrize("by", ["tenants", "tenant,", "tenant;model", ""])
def test_an_unknown_dimension_is_refused(by: str) -> None:
    with pytest.raises(ValueError, match="--by takes one or more of tenant, model"):
        dimensions(by)


def test_value_filters_are_parameters_not_sql() -> None:
    rows = SpendFilter(
        tenants=("acme", "globex"), features=("search",), models=("gpt-4.1",), tiers=("premium",)
    )
    query = spend_query("tenant", rows)
    for column in ("tenant", "feature", "model", "tier"):
        assert f"{column} IN {{{column}:Array(String)}}" in query.sql
    assert dict(query.parameters) == {
        "tenant": ("acme", "globex"),
        "feature": ("search",),
        "model": ("gpt-4.1",),
        "tier": ("premium",),
    }
    for value in ("acme", "globex", "search", "gpt-4.1", "premium"):
        assert value not in query.sql
    assert "tenant IN ['acme', 'globex']" in query.literal()


def test_the_window_is_since_inclusive_until_exclusive() -> None:
    spans = spend_query("tier", SpendFilter(since=timedelta(days=14), until=timedelta(days=7)))
    assert "created_at >= now64(3) - INTERVAL {since_s:UInt64} SECOND" in spans.sql
    assert "created_at < now64(3) - INTERVAL {until_s:UInt64} SECOND" in spans.sql
    assert dict(spans.parameters) == {"since_s": 14 * 86400, "until_s": 7 * 86400}

    moments = spend_query("tier", SpendFilter(since=MARCH, until=datetime(2026, 4, 1, tzinfo=UTC)))
    assert "created_at >= {since:DateTime64(3, 'UTC')}" in moments.sql
    assert "created_at < {until:DateTime64(3, 'UTC')}" in moments.sql
    assert moments.parameters["since"] == MARCH
    assert (
        "created_at >= toDateTime64('2026-03-01 00:00:00.000', 3, 'UTC')\n"
        "  AND created_at < toDateTime64('2026-04-01 00:00:00.000', 3, 'UTC')"
    ) in moments.literal()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", None),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("2026-03-01", MARCH),
        ("2026-03-01T12:30", MARCH + timedelta(hours=12, minutes=30)),  # no offset: UTC
        ("2026-03-01T12:30:00Z", MARCH + timedelta(hours=12, minutes=30)),
        ("2026-03-01T12:30:00+02:00", MARCH + timedelta(hours=10, minutes=30)),
        (" 2026-03-01 00:00:00.250 ", MARCH + timedelta(milliseconds=250)),
    ],
)
def test_bounds_are_spans_iso_times_or_all(text: str, expected: object) -> None:
    bound = parse_bound(text)
    assert bound == expected
    if isinstance(bound, datetime):
        assert bound.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "7days", "2026-13-01", "-1d", ""])
def test_a_bound_of_another_form_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(ValueError, match="^--until takes a span back from now"):
        parse_bound(text, "--until")


def test_an_empty_window_is_refused() -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    check_window(timedelta(days=14), timedelta(days=7), now)
    check_window(MARCH, timedelta(days=1), now)
    check_window(None, MARCH, now)
    empty: list[tuple[Bound, Bound]] = [(timedelta(days=1), timedelta(days=2)), (MARCH, MARCH)]
    for since, until in empty:
        with pytest.raises(ValueError, match="empty"):
            check_window(since, until, now)


def test_literals_escape_what_would_end_a_string() -> None:
    assert sql_literal(INJECTION) == "'x\\' OR 1=1 --'"
    assert sql_literal("a\\'b") == "'a\\\\\\'b'"  # a\'b: the backslash, then the quote
    assert sql_literal(("a", "b'")) == "['a', 'b\\'']"
    assert sql_literal(86400) == "86400"
    eastern = datetime(2026, 3, 1, 7, 0, 0, 1500, tzinfo=timezone(timedelta(hours=7)))
    assert sql_literal(eastern) == "toDateTime64('2026-03-01 00:00:00.001', 3, 'UTC')"


@dataclass
class _Result:
    result_rows: list[tuple[Any, ...]]


@dataclass
class RecordingClient:
    """Stands in for clickhouse-connect's client: records each query and its parameters."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> _Result:
        self.calls.append((sql, parameters))
        return _Result(self.rows)


def test_an_injection_attempt_travels_as_a_value() -> None:
    client = RecordingClient(rows=[(INJECTION, "m1", 1, 2, 30, 4, Decimal("0.5"))])
    rows = SpendFilter(since=timedelta(days=7), tenants=(INJECTION,))
    found = query_spend(cast(Client, client), ["tenant", "model"], rows=rows)
    ((sql, parameters),) = client.calls
    assert INJECTION not in sql and "OR 1=1" not in sql
    assert parameters == {"since_s": 7 * 86400, "tenant": [INJECTION]}  # a list: an Array
    assert found == [SpendRow(INJECTION, 1, 2, 30, 4, Decimal("0.500000000"), ("m1",))]
    assert found[0].keys == (INJECTION, "m1")
    # printed, it is one string literal: the quote escaped, the comment inside it
    assert "tenant IN ['x\\' OR 1=1 --']" in spend_query("tenant", rows).literal()


def test_query_spend_keeps_its_old_call() -> None:
    client = RecordingClient(rows=[("acme", 1, 1, 10, 2, "0.000000001")])
    found = query_spend(cast(Client, client), "tenant", where="request_id LIKE 'e2e-%'")
    assert found == [SpendRow("acme", 1, 1, 10, 2, Decimal("0.000000001"))]
    ((sql, parameters),) = client.calls
    assert "WHERE request_id LIKE 'e2e-%'\n" in sql and parameters == {}


def test_unconfirmed_calls_honour_the_filters_attempts_can() -> None:
    client = RecordingClient(rows=[(2, Decimal("0.3"))])
    rows = SpendFilter(since=MARCH, tenants=("acme",), tiers=("premium",))
    assert query_unconfirmed(cast(Client, client), rows=rows).calls == 2
    ((sql, parameters),) = client.calls
    assert "FROM attempts FINAL" in sql and "tenant IN {tenant:Array(String)}" in sql
    assert parameters == {"since": MARCH, "tenant": ["acme"], "tier": ["premium"]}
    by_feature = SpendFilter(features=("search",))
    assert not counts_unconfirmed(by_feature)
    with pytest.raises(ValueError, match="tenant, model and tier"):
        unconfirmed_query(by_feature)


def test_the_cache_saving_is_summed_apart_under_the_same_filters() -> None:
    rows = SpendFilter(since=MARCH, tenants=("acme",), features=("search",))
    query = saved_query(rows)
    assert query.sql == (
        "SELECT count() AS answers, sum(saved_usd) AS saved\n"
        "FROM costs FINAL\n"
        "WHERE saved_usd > 0\n"
        "  AND created_at >= {since:DateTime64(3, 'UTC')}\n"
        "  AND tenant IN {tenant:Array(String)}\n"
        "  AND feature IN {feature:Array(String)}"
    )
    client = RecordingClient(rows=[(3, Decimal("0.0000207"))])
    assert query_saved(cast(Client, client), rows=rows) == Saved(3, Decimal("0.000020700"))
    ((_, parameters),) = client.calls
    assert parameters == {"since": MARCH, "tenant": ["acme"], "feature": ["search"]}
    nothing = RecordingClient(rows=[(0, None)])
    assert query_saved(cast(Client, nothing), where="request_id LIKE 'x%'") == Saved(0, Decimal(0))
    assert "AND request_id LIKE 'x%'" in nothing.calls[0][0]


def test_the_saving_line_says_it_is_not_in_the_totals() -> None:
    assert saved_line(Saved(3, Decimal("0.000020700"))) == (
        "saved by cache: $0.000020700 (3 answers from the response cache, "
        "at what they cost when first served; not in the totals)"
    )
    assert "(1 answer from" in saved_line(Saved(1, Decimal("0.5")))


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, ["spend", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_show_sql_prints_filters_and_window_as_literals() -> None:
    out = _invoke(
        "--by", "tenant", "--by", "model", "--tenant", "acme", "--tenant", INJECTION,
        "--feature", "search", "--model", "gpt-4.1", "--tier", "premium",
        "--since", "2026-03-01", "--until", "1d", "--show-sql",
    )  # fmt: skip
    assert out.startswith("SELECT tenant AS tenant, model AS model, uniqExact(")
    assert "created_at >= toDateTime64('2026-03-01 00:00:00.000', 3, 'UTC')" in out
    assert "created_at < now64(3) - INTERVAL 86400 SECOND" in out
    assert "tenant IN ['acme', 'x\\' OR 1=1 --']" in out
    assert "feature IN ['search']" in out and "tier IN ['premium']" in out
    assert "GROUP BY tenant, model\n" in out
    assert "{" not in out  # every placeholder filled


def test_bad_flags_are_refused_before_any_query() -> None:
    runner = CliRunner()
    for args, hint in [
        (["--by", "tenant,colour"], "--by"),
        (["--since", "last tuesday"], "--since"),
        (["--until", "2026-02-30"], "--until"),
        (["--since", "1d", "--until", "2d"], "--until"),
        (["--tier", "gold"], "--tier"),
    ]:
        result = runner.invoke(main, ["spend", *args])
        assert result.exit_code == 2, (args, result.output)
        assert hint in result.output, (args, result.output)


def test_help_shows_examples_of_the_new_flags() -> None:
    out = _invoke("--help")
    for example in (
        "tierline spend --by tenant,model",
        "--tenant acme --tenant globex --feature search",
        "--tier premium",
        "--since 2026-03-01 --until 2026-04-01",
        "--since 14d --until 7d",
    ):
        assert example in out


def test_the_title_says_the_window_and_filters_as_typed() -> None:
    def title(since: str, until: str | None, **only: tuple[str, ...]) -> str:
        rows = SpendFilter(parse_bound(since), parse_bound(until) if until else None, **only)
        return spend_title(("tenant", "model"), since, until, rows)

    assert title("7d", None) == "spend by tenant, model, last 7d"
    assert title("all", None) == "spend by tenant, model"
    assert title("14d", "7d") == "spend by tenant, model, from 14d until 7d ago"
    assert title("2026-03-01", "2026-04-01", tenants=("a", "b")) == (
        "spend by tenant, model, from 2026-03-01 until 2026-04-01, tenant a|b"
    )


ROWS = [
    SpendRow("acme", 3, 4, 100, 10, Decimal("1.000000001"), ("gpt-4.1",)),
    SpendRow("globex", 1, 1, 7, 2, Decimal("0E-9"), ("m, with a comma",)),
]


def test_several_keys_in_csv_json_and_the_table() -> None:
    by = ("tenant", "model")
    text = render_csv(ROWS, by)
    assert text.splitlines() == [
        "tenant,model,requests,calls,input_tokens,output_tokens,cost_usd",
        "acme,gpt-4.1,3,4,100,10,1.000000001",
        'globex,"m, with a comma",1,1,7,2,0.000000000',
    ]
    assert [r["model"] for r in csv.DictReader(io.StringIO(text))] == ["gpt-4.1", "m, with a comma"]
    assert orjson.loads(render_json(ROWS, by))[0] == {
        "tenant": "acme",
        "model": "gpt-4.1",
        "requests": 3,
        "calls": 4,
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": "1.000000001",
    }
    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
    console.print(spend_table(ROWS, by, "spend by tenant, model"))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "tenant" in line and "requests" in line)
    assert header.index("tenant") < header.index("model") < header.index("requests")
    assert any("acme" in line and "gpt-4.1" in line and "1.000000001" in line for line in lines)
    total = next(line for line in lines if "total" in line)
    cells = [cell.strip() for cell in total.split("│")[1:-1]]
    assert cells == ["total", "", "", "", "", "", "1.000000001"]  # a blank under each key


# --------------------------------------------------------------------------- token classes


def test_token_classes_are_summed_after_the_cost_when_asked_for() -> None:
    sql = spend_query("model", token_classes=True).sql
    assert sql.startswith(
        "SELECT model AS model, uniqExact(tenant, request_id) AS requests,\n"
        "       count() AS calls,\n"
        "       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,\n"
        "       sum(cost_usd) AS cost_usd,\n"
        "       sum(cached_input_tokens) AS cached_input_tokens,\n"
        "       sum(cache_write_tokens) AS cache_write_tokens,\n"
        "       sum(cache_write_1h_tokens) AS cache_write_1h_tokens\n"
        "FROM costs FINAL\n"
    )
    assert "cache" not in spend_query("model").sql  # not asked: the query is as it was
    client = RecordingClient(rows=[("acme", 1, 2, 4404, 503, "0.016539", 1800, 556, 100)])
    found = query_spend(cast(Client, client), "tenant", token_classes=True)
    assert found == [
        SpendRow(
            "acme",
            1,
            2,
            4404,
            503,
            Decimal("0.016539000"),
            cached_input_tokens=1800,
            cache_write_tokens=556,
            cache_write_1h_tokens=100,
        )
    ]


CLASS_ROWS = [
    SpendRow("acme", 1, 2, 4404, 503, Decimal("0.016539000"), (), 1800, 556, 100),
    SpendRow("globex", 1, 1, 7, 2, Decimal("0E-9"), (), 0, 0, 0),
]


def test_token_classes_in_csv_json_and_the_table() -> None:
    assert render_csv(CLASS_ROWS, "tenant", token_classes=True).splitlines() == [
        "tenant,requests,calls,input_tokens,output_tokens,"
        "cached_input_tokens,cache_write_tokens,cache_write_1h_tokens,cost_usd",
        "acme,1,2,4404,503,1800,556,100,0.016539000",
        "globex,1,1,7,2,0,0,0,0.000000000",
    ]
    assert orjson.loads(render_json(CLASS_ROWS, "tenant", token_classes=True))[0] == {
        "tenant": "acme",
        "requests": 1,
        "calls": 2,
        "input_tokens": 4404,
        "output_tokens": 503,
        "cached_input_tokens": 1800,
        "cache_write_tokens": 556,
        "cache_write_1h_tokens": 100,
        "cost_usd": "0.016539000",
    }
    # not asked for: the columns are as they were
    assert render_csv(CLASS_ROWS, "tenant").splitlines()[0] == (
        "tenant,requests,calls,input_tokens,output_tokens,cost_usd"
    )

    def rendered(width: int) -> str:
        console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        console.print(spend_table(CLASS_ROWS, "tenant", "spend by tenant", token_classes=True))
        return console.export_text()

    narrow = rendered(80)  # cells fold, nothing is cut
    assert "…" not in narrow and max(len(line) for line in narrow.splitlines()) <= 80
    cost_column = "".join(
        line.split("│")[-2].strip() for line in narrow.splitlines() if line.startswith("│")
    )
    assert cost_column.startswith("0.016539000" + "0.000000000")
    text = rendered(120)
    acme = next(line for line in text.splitlines() if "acme" in line)
    cells = [cell.strip() for cell in acme.split("│")[1:-1]]
    assert cells == ["acme", "1", "2", "4,404", "503", "1,800", "556", "100", "0.016539000"]
    total = next(line for line in text.splitlines() if "total" in line)
    assert [c.strip() for c in total.split("│")[1:-1]][-1] == "0.016539000"


def test_the_token_classes_flag_reaches_the_printed_sql() -> None:
    result = CliRunner().invoke(main, ["spend", "--token-classes", "--show-sql"])
    assert result.exit_code == 0, result.output
    assert "sum(cache_write_1h_tokens) AS cache_write_1h_tokens" in result.output
