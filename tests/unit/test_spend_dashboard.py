"""deploy/grafana/spend.json: loads, reads only tables that exist, and every query runs.

The strong check runs each panel's and each variable's SQL on chDB after the
migrations, with Grafana's macros and variables replaced by plain values, over a few
cost rows whose saving against all-premium is known to the nano-dollar. chDB opens one
engine per process, and the integration tests already hold one in a shared pytest
run, so the queries run in a child process: this file, run as a script.

What the ClickHouse data source plugin puts in place of each macro and variable, and
what the test puts (the time range: the last 7 days; the interval: an hour):

    in a panel's SQL          Grafana sends               the test runs
    $__timeFilter(col)        col >= toDateTime(FROM)     col >= toDateTime(now() - INTERVAL 7 DAY)
                              AND col <= toDateTime(TO)   AND col <= toDateTime(now())
    $__dateFilter(col)        col >= toDate(FROM)         col >= toDate(now() - INTERVAL 7 DAY)
                              AND col <= toDate(TO)       AND col <= toDate(now())
    $__timeInterval(col)      toStartOfInterval(          toStartOfInterval(toDateTime(col),
                              toDateTime(col), INTERVAL)  INTERVAL 3600 second)
    $__conditionalAll(c, $v)  c; 1=1 when All is picked   both: c with one value, and 1=1
    ${tenant:singlequote}     'acme','globex' (picked)    'acme'
    ${feature:singlequote}    likewise                    'search'
    ${premium_..._mtok:...}   the textbox, quoted         the dashboard's defaults: '2', '8'
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tierline.processors.pricing.prices import bundled_price_book

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "spend.json"
DDL = ROOT / "schemas" / "ddl"
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
PICKED = {"tenant": "acme", "feature": "search"}
FROM_TIME = "toDateTime(now() - INTERVAL 7 DAY)"


@cache
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def queries() -> dict[str, str]:
    """Every SQL the dashboard sends: panel targets (by title and refId) and variables."""
    found = {
        f"{panel['title']} [{target['refId']}]": target["rawSql"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", ())
    }
    for name, variable in variables().items():
        if variable["type"] == "query":
            found[f"variable {name}"] = variable["query"]["rawSql"]
    return found


def test_it_is_a_clickhouse_dashboard_grafana_can_load() -> None:
    board = dashboard()
    assert board["uid"] == "tierline-spend" and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    source = variables()["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "grafana-clickhouse-datasource")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == CLICKHOUSE, panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == CLICKHOUSE, panel["title"]
            assert target["editorType"] == "sql" and target["rawSql"].strip(), panel["title"]
            # the plugin's formats: 0 time series, 1 table
            expected = (0, "timeseries") if panel["type"] == "timeseries" else (1, "table")
            assert (target["format"], target["queryType"]) == expected, panel["title"]


def test_it_has_the_panels_it_promises() -> None:
    titles = {p["title"] for p in dashboard()["panels"]}
    for title in (
        "Spend by tenant",
        "Spend by model",
        "Spend by tier",
        "Spend by feature",
        "Spend by day",
        "Spend by day, per tenant",
        "Saving against all-premium",
        "Saving against all-premium, by day",
        "Saving against all-premium, by tenant",
    ):
        assert title in titles
    kinds = {p["type"] for p in dashboard()["panels"]}
    assert {"timeseries", "table", "stat"} <= kinds
    saving = next(p for p in dashboard()["panels"] if p["title"] == "Saving against all-premium")
    assert "premium_input_usd_per_mtok" in saving["description"]


def test_tenant_and_feature_are_multi_select_and_premium_prices_are_gpt_4_1s() -> None:
    for name in ("tenant", "feature"):
        variable = variables()[name]
        assert variable["datasource"] == CLICKHOUSE
        assert variable["multi"] and variable["includeAll"]
        assert variable["query"]["rawSql"] == f"SELECT DISTINCT {name} FROM costs ORDER BY {name}"
    entry = bundled_price_book().get("gpt-4.1")
    assert entry is not None
    for name, per_token in [
        ("premium_input_usd_per_mtok", entry.price.input),
        ("premium_output_usd_per_mtok", entry.price.output),
    ]:
        variable = variables()[name]
        assert variable["type"] == "textbox"
        assert (
            Decimal(variable["query"])
            == per_token * 1_000_000
            == Decimal(variable["current"]["value"])
        )
    assert variables()["premium_input_usd_per_mtok"]["query"] == "2"  # $2 / $8 per 1M tokens
    assert variables()["premium_output_usd_per_mtok"]["query"] == "8"


def _ddl_names() -> set[str]:
    text = "\n".join(path.read_text() for path in sorted(DDL.glob("*.sql")))
    created = re.findall(r"CREATE\s+(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.I)
    renamed = re.findall(r"\bTO\s+(\w+)", text)  # RENAME TABLE a TO b
    return set(created) | set(renamed)


def test_every_query_reads_only_tables_and_views_the_ddl_creates() -> None:
    names = _ddl_names()
    assert {"costs", "costs_daily", "decisions", "attempts"} <= names
    for key, sql in queries().items():
        read = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", sql, re.I))
        assert read, f"{key} reads no table"
        assert read <= names, f"{key} reads {read - names}, which schemas/ddl never creates"


def _macro_args(sql: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the macro call whose `(` is at `start`, and its end."""
    depth, args, current = 0, [], start + 1
    for i in range(start, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[current:i])
                return [a.strip() for a in args], i + 1
        elif sql[i] == "," and depth == 1:
            args.append(sql[current:i])
            current = i + 1
    raise AssertionError(f"unbalanced macro call in {sql!r}")


def substitute(sql: str, all_picked: bool) -> str:
    """The SQL with the module docstring's table applied: what ClickHouse would be sent."""
    while (at := sql.find("$__conditionalAll(")) != -1:
        (condition, _variable), end = _macro_args(sql, at + len("$__conditionalAll"))
        sql = sql[:at] + ("1=1" if all_picked else condition) + sql[end:]
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= {FROM_TIME} AND \1 <= toDateTime(now())", sql)
    sql = re.sub(
        r"\$__dateFilter\((\w+)\)",
        r"\1 >= toDate(now() - INTERVAL 7 DAY) AND \1 <= toDate(now())",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)",
        r"toStartOfInterval(toDateTime(\1), INTERVAL 3600 second)",
        sql,
    )
    values = {**PICKED, **{n: v["query"] for n, v in variables().items() if v["type"] == "textbox"}}
    sql = re.sub(r"\$\{(\w+):singlequote\}", lambda m: f"'{values[m.group(1)]}'", sql)
    assert "$" not in sql, f"a macro or variable the test does not know: {sql}"
    return sql


def _run_in_child(tmp_path: Path, sqls: dict[str, str]) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path / "chdb")],
        input=json.dumps(sqls),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return results


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every query, with one tenant and feature picked and with All, run on chDB."""
    sqls = {
        f"{key} / {'all' if all_picked else 'picked'}": substitute(sql, all_picked)
        for key, sql in queries().items()
        for all_picked in (False, True)
    }
    return _run_in_child(tmp_path_factory.mktemp("dashboard"), sqls)


def test_every_query_runs_on_chdb_after_the_migrations(ran: dict[str, dict[str, Any]]) -> None:
    assert len(ran) == 2 * len(queries())
    failed = {key: result["error"] for key, result in ran.items() if result["error"]}
    assert not failed, failed
    assert all(ran[key]["rows"] for key in ran if "Spend by" in key)  # the seeded rows show


def _rows(ran: dict[str, dict[str, Any]], title: str, picked: str) -> list[list[str]]:
    rows: list[list[str]] = ran[f"{title} [A] / {picked}"]["rows"]
    return rows


def test_the_figures_are_exact(ran: dict[str, dict[str, Any]]) -> None:
    # see _seed: acme's three search requests, and globex's chat request
    assert _rows(ran, "Saving against all-premium", "picked") == [["2.868"]]
    assert _rows(ran, "Saving against all-premium", "all") == [["6.668"]]
    by_tenant = _rows(ran, "Saving against all-premium, by tenant", "all")
    assert [row[:5] for row in by_tenant] == [
        ["globex", "1", "0.2", "4", "3.8"],
        ["acme", "3", "1.612", "4.48", "2.868"],
    ]
    assert [(r[0], Decimal(r[-1])) for r in _rows(ran, "Spend by tenant", "all")] == [
        ("acme", Decimal("1.612")),  # the 30-day-old row is outside the range
        ("globex", Decimal("0.2")),
    ]
    assert [r[0] for r in _rows(ran, "Spend by feature", "picked")] == ["search"]
    assert [Decimal(v) for v in _rows(ran, "Spend", "picked")[0]] == [Decimal("1.612")]
    assert _rows(ran, "Requests and calls", "all") == [["4", "6"]]
    assert _rows(ran, "Unconfirmed calls (cut off by a crash)", "picked") == [["1", "0.01"]]
    assert ran["variable tenant / all"]["rows"] == [["acme"], ["globex"]]
    assert ran["variable feature / all"]["rows"] == [["chat"], ["search"]]


# --- the child process ------------------------------------------------------------------


#: request, tenant, feature, tier, status, input and output tokens, cost, days ago
SEED = [
    ("a1", "acme", "search", "economy", "ok", 1_000_000, 100_000, "0.14", 1),
    ("a2", "acme", "search", "economy", "ok", 500_000, 20_000, "0.058", 1),  # a cascade:
    ("a2", "acme", "search", "premium", "ok", 500_000, 50_000, "1.4", 1),  # its answer
    ("a3", "acme", "search", "economy", "error", 0, 0, "0", 1),
    ("a3", "acme", "search", "economy", "ok", 100_000, 10_000, "0.014", 1),  # the retry
    ("g1", "globex", "chat", "economy", "ok", 2_000_000, 0, "0.2", 2),
    ("old", "acme", "search", "economy", "ok", 1, 1, "100", 30),  # outside the range
]


def _seed(client: Any) -> None:
    """`SEED`, whose saving at $2/$8 per 1M tokens is known exactly, and one cut-off call.

    Each request at premium prices, with its answer's tokens: a1 $2.80 (cost $0.14), a2
    $1.40 (cost $0.058 + $1.40), a3 $0.28 (cost $0.014), g1 $4 (cost $0.20). So acme's
    search requests save $2.868, and with globex's chat request $6.668. An attempt of
    acme's, started an hour ago, never settled.
    """
    from tierline.processors.store.clickhouse import insert_attempts, insert_costs
    from tierline.schemas import Attempt, CostRecord

    now = datetime.now(UTC)
    attempts: dict[str, int] = {}
    records = []
    for rid, tenant, feature, tier, status, prompt, output, usd, days in SEED:
        attempts[rid] = attempts.get(rid, 0) + 1
        model = "gpt-4.1" if tier == "premium" else "gpt-4.1-nano"
        records.append(
            CostRecord.model_validate(
                {
                    "record_id": CostRecord.make_id(rid, attempts[rid]),
                    "request_id": rid,
                    "attempt": attempts[rid],
                    "tenant": tenant,
                    "feature": feature,
                    "tier": tier,
                    "model": model,
                    "provider": "openai",
                    "status": status,
                    "input_tokens": prompt,
                    "output_tokens": output,
                    "cost_usd": usd,
                    "created_at": now - timedelta(days=days),
                }
            )
        )
    insert_costs(client, records)
    cut_off = {"attempt_id": "a4#1", "request_id": "a4", "tenant": "acme", "tier": "economy"}
    started = {"model": "gpt-4.1-nano", "provider": "openai", "state": "started"}
    insert_attempts(
        client,
        [
            Attempt.model_validate(
                {
                    **cut_off,
                    **started,
                    "estimated_cost_usd": "0.01",
                    "created_at": now - timedelta(hours=1),
                }
            )
        ],
    )


def _run_on_chdb(path: str) -> None:
    """Migrate a fresh chDB at `path`, seed it, run the SQL read from stdin, print results."""
    from tierline.processors.store.clickhouse import connect, migrate

    client = connect(f"chdb://{path}")
    migrate(client)
    _seed(client)
    results: dict[str, dict[str, Any]] = {}
    for key, sql in json.load(sys.stdin).items():
        try:
            rows = client.query(sql).result_rows
        except Exception as exc:  # noqa: BLE001 - each failure is reported, by query
            results[key] = {"error": f"{exc}\n--- sql ---\n{sql}", "rows": []}
        else:
            results[key] = {"error": None, "rows": [[_text(v) for v in row] for row in rows]}
    json.dump(results, sys.stdout)


def _text(value: object) -> str:
    """A cell as text; a Decimal in plain digits without trailing zeros (`2.868`, `4`)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


if __name__ == "__main__":
    _run_on_chdb(sys.argv[1])
