"""ClickHouse through clickhouse-connect: a server over HTTP, or chDB embedded (`chdb://`).

`migrate` applies the numbered DDL in `schemas/ddl` once each, recording what
it applied in `tierline_migrations`, so running it again changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tierline.schemas import Alert, Attempt, CostRecord, FeatureRecord, Feedback
from tierline.schemas.migrations import migrations
from tierline.schemas.rows import columns, row

log = logging.getLogger("tierline.clickhouse")

COST_COLUMNS = columns(CostRecord)
FEEDBACK_COLUMNS = columns(Feedback)
ATTEMPT_COLUMNS = columns(Attempt)
ALERT_COLUMNS = columns(Alert)
FEATURE_COLUMNS = columns(FeatureRecord)

_chdb_clients: dict[str, Client] = {}
_chdb_lock = threading.Lock()


def connect(url: str) -> Client:
    """A client for `url`. chDB allows one engine per path per process, so those are shared."""
    if url.startswith("chdb:"):
        with _chdb_lock:
            if url not in _chdb_clients:
                _chdb_clients[url] = clickhouse_connect.get_client(dsn=url)
            return _chdb_clients[url]
    return clickhouse_connect.get_client(dsn=url)


_migrating = threading.Lock()


def migrate(client: Client) -> list[str]:
    """Apply the migrations not yet applied; return their names.

    One at a time in a process: the cost and feedback sinks both migrate at start, and a
    migration that rebuilds a table must not run twice at once. Separate processes that
    start together against an old schema should run `tierline db migrate` first.
    """
    with _migrating:
        return _migrate(client)


def _migrate(client: Client) -> list[str]:
    client.command(
        "CREATE TABLE IF NOT EXISTS tierline_migrations "
        "(version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query("SELECT version FROM tierline_migrations").result_rows}
    applied = []
    for migration in migrations():
        if migration.version in done:
            continue
        for statement in migration.statements():
            client.command(statement)
        client.insert(
            "tierline_migrations",
            [[migration.version, migration.name, datetime.now(UTC).replace(tzinfo=None)]],
            column_names=["version", "name", "applied_at"],
        )
        applied.append(f"{migration.version:03d}_{migration.name}")
        log.info("applied migration %03d_%s", migration.version, migration.name)
    return applied


def insert_costs(client: Client, records: Sequence[CostRecord]) -> None:
    client.insert("costs", [row(r) for r in records], column_names=COST_COLUMNS)


def insert_feedback(client: Client, signals: Sequence[Feedback]) -> None:
    client.insert("feedback", [row(s) for s in signals], column_names=FEEDBACK_COLUMNS)


def insert_features(client: Client, records: Sequence[FeatureRecord]) -> None:
    client.insert("request_features", [row(r) for r in records], column_names=FEATURE_COLUMNS)


def insert_alerts(client: Client, alerts: Sequence[Alert]) -> None:
    client.insert("alerts", [row(a) for a in alerts], column_names=ALERT_COLUMNS)


def insert_attempts(client: Client, attempts: Sequence[Attempt]) -> None:
    client.insert("attempts", [row(a) for a in attempts], column_names=ATTEMPT_COLUMNS)
