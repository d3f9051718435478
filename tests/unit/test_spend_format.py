"""`tierline spend` rendering: csv, json and the rich table, as pure functions over rows."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import orjson
from click.testing import CliRunner
from rich.console import Console

from tierline.processors.store.spend import SpendRow
from tierline.streams.cli import main
from tierline.streams.cli.spend import render_csv, render_json, spend_table

LONG = "openrouter/meta-llama/llama-3.3-70b-instruct:free-with-a-rather-long-routing-suffix"
ROWS = [
    SpendRow(LONG, 12_345, 12_400, 9_876_543, 123_456, Decimal("1234.567890123")),
    SpendRow("gpt-4.1-nano, eu", 3, 4, 100, 10, Decimal("0.000000001")),
    SpendRow("", 1, 1, 7, 2, Decimal("0E-9")),
]


def test_csv_has_a_header_and_exact_decimal_strings() -> None:
    text = render_csv(ROWS, "model")
    lines = text.splitlines()
    assert lines[0] == "model,requests,calls,input_tokens,output_tokens,cost_usd"
    assert lines[1] == f"{LONG},12345,12400,9876543,123456,1234.567890123"
    assert lines[2] == '"gpt-4.1-nano, eu",3,4,100,10,0.000000001'  # a comma gets quoted
    assert lines[3] == ",1,1,7,2,0.000000000"  # zero in plain digits, not 0E-9
    assert text.endswith("\n") and "\r" not in text


def test_csv_reads_back_to_the_same_rows() -> None:
    parsed = list(csv.DictReader(io.StringIO(render_csv(ROWS, "tenant"))))
    assert [r["tenant"] for r in parsed] == [LONG, "gpt-4.1-nano, eu", ""]
    assert [Decimal(r["cost_usd"]) for r in parsed] == [r.cost_usd for r in ROWS]
    assert sum(int(r["calls"]) for r in parsed) == 12_405


def test_csv_of_no_rows_is_just_the_header() -> None:
    assert render_csv([], "day") == "day,requests,calls,input_tokens,output_tokens,cost_usd\n"


def test_json_keeps_decimals_as_exact_strings() -> None:
    records = orjson.loads(render_json(ROWS, "model"))
    assert records[0] == {
        "model": LONG,
        "requests": 12_345,
        "calls": 12_400,
        "input_tokens": 9_876_543,
        "output_tokens": 123_456,
        "cost_usd": "1234.567890123",
    }
    assert [r["cost_usd"] for r in records[1:]] == ["0.000000001", "0.000000000"]
    assert render_json([], "model") == "[]"


def _rendered(width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(spend_table(ROWS, "model", "spend by model, last 7d"))
    return console.export_text()


def test_table_folds_long_names_instead_of_cutting_them_at_80_columns() -> None:
    text = _rendered(80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    # the name's pieces, read down the first column, spell the whole name
    first_column = "".join(
        line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")
    )
    assert first_column.startswith(LONG + "gpt-4.1-nano, eu(none)")
    assert LONG not in text  # it did need folding: no line holds it whole


def test_table_shows_every_exact_amount_and_the_exact_total() -> None:
    text = _rendered(160)
    assert "…" not in text
    for needle in ("1234.567890123", "0.000000001", "0.000000000", "(none)", "12,345", LONG):
        assert needle in text
    total_line = next(line for line in text.splitlines() if "total" in line)
    assert "1234.567890124" in total_line


def test_narrow_terminals_fold_amounts_rather_than_drop_digits() -> None:
    text = _rendered(50)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 50
    # the cost column, read top to bottom, still holds every digit of every amount
    cost_column = "".join(
        line.split("│")[-2].strip() for line in text.splitlines() if line.startswith("│")
    )
    assert "1234.567890123" + "0.000000001" + "0.000000000" in cost_column


def test_format_choice_is_checked_before_any_query() -> None:
    result = CliRunner().invoke(main, ["spend", "--format", "xml"])
    assert result.exit_code == 2
    assert "'table', 'json', 'csv'" in result.output


def test_show_sql_still_prints_the_query() -> None:
    result = CliRunner().invoke(main, ["spend", "--by", "model", "--since", "24h", "--show-sql"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("SELECT model AS model, uniqExact(tenant, request_id)")
    assert "INTERVAL 86400 SECOND" in result.output
