"""The ClickHouse DDL agrees with the models: a column per field, of a type that holds it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from tierline.schemas import Attempt, CostRecord, FeatureRecord, Feedback, Tier
from tierline.schemas.migrations import migrations
from tierline.schemas.rows import columns, row

_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*?)\n\)", re.S)
_ALTER = re.compile(r"ALTER TABLE (\w+)\s+(.*)", re.S)
#: one column of an ALTER TABLE: `ADD COLUMN [IF NOT EXISTS] name Type [DEFAULT ...]`
_ADD = re.compile(
    r"ADD COLUMN (?:IF NOT EXISTS )?(\w+)\s+(.+?)"
    r"(?:\s+(?:DEFAULT|MATERIALIZED|ALIAS|CODEC|COMMENT|TTL|AFTER|FIRST)\b.*)?$",
    re.S,
)
_DROP = re.compile(r"DROP COLUMN (?:IF EXISTS )?(\w+)$")


def columns_of(table: str, statements: Iterable[str]) -> dict[str, str]:
    """Column name -> ClickHouse type after `statements`, in order: the CREATE TABLE of
    `table`, then the columns later ALTER TABLE statements add or drop."""
    found: dict[str, str] | None = None
    for statement in statements:
        for name, body in _CREATE.findall(statement):
            if name == table and found is None:
                pairs = (line.strip().rstrip(",").split(None, 1) for line in body.splitlines())
                found = {p[0]: p[1] for p in pairs if len(p) == 2 and not p[0].startswith("--")}
        altered = _ALTER.match(statement.strip())
        if altered is None or altered.group(1) != table or found is None:
            continue
        for clause in re.split(r",\s*(?=ADD |DROP |MODIFY |RENAME )", altered.group(2)):
            clause = " ".join(clause.split())
            if added := _ADD.match(clause):
                found[added.group(1)] = added.group(2)
            elif dropped := _DROP.match(clause):
                found.pop(dropped.group(1), None)
    if found is None:
        raise AssertionError(f"no migration creates {table}")
    return found


def ddl_columns(table: str) -> dict[str, str]:
    """Column name -> ClickHouse type of `table` once every bundled migration has run."""
    return columns_of(table, (s for m in migrations() for s in m.statements()))


def python_types(annotation: Any) -> tuple[set[Any], bool]:
    """The plain types a field's annotation admits, and whether it admits None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return python_types(get_args(annotation)[0])
    if origin is Literal:
        return {type(v) for v in get_args(annotation)}, False
    if origin in (Union, UnionType):
        found: set[Any] = set()
        nullable = False
        for option in get_args(annotation):
            if option is type(None):
                nullable = True
                continue
            kinds, _ = python_types(option)
            found |= kinds
        return found, nullable
    return {annotation}, False


_STORES: dict[Any, Any] = {
    str: lambda t: t == "String",
    int: lambda t: t.startswith(("UInt", "Int")),
    float: lambda t: t.startswith("Float"),
    datetime: lambda t: t.startswith("DateTime64"),
    Decimal: lambda t: t == "Decimal(18, 9)",
    list[str]: lambda t: t == "Array(String)",
    list[int]: lambda t: t.startswith(("Array(UInt", "Array(Int")),
    list[float]: lambda t: t.startswith("Array(Float"),
}


def holds(ch_type: str, annotation: Any) -> bool:
    """Whether a ClickHouse column type can store values of a model field's type."""
    inner = re.sub(r"^(LowCardinality|Nullable)\((.*)\)$", r"\2", ch_type)
    kinds, nullable = python_types(annotation)
    if nullable and not ch_type.startswith("Nullable") and kinds != {str}:
        return False  # only text stores None, as ''
    for kind in kinds:
        plain = str if isinstance(kind, type) and issubclass(kind, str) else kind
        if plain not in _STORES or not _STORES[plain](inner):
            return False
    return bool(kinds)


@pytest.mark.parametrize(
    ("table", "model"),
    [
        ("costs", CostRecord),
        ("feedback", Feedback),
        ("attempts", Attempt),
        ("request_features", FeatureRecord),
    ],
)
def test_every_model_field_is_a_column_of_its_table(table: str, model: type[BaseModel]) -> None:
    ddl = ddl_columns(table)
    assert set(columns(model)) == set(ddl)
    for name in columns(model):
        annotation = model.model_fields[name].annotation
        assert holds(ddl[name], annotation), f"{table}.{name}: {ddl[name]} cannot hold {annotation}"


def test_a_column_added_by_a_later_migration_is_a_column() -> None:
    assert ddl_columns("costs")["cache_write_1h_tokens"] == "UInt32"
    statements = [
        "CREATE TABLE IF NOT EXISTS t\n(\n    a String,\n    b UInt32\n)\nENGINE = MergeTree",
        "CREATE TABLE IF NOT EXISTS other\n(\n    z String\n)\nENGINE = MergeTree",
        "ALTER TABLE t\n"
        "    ADD COLUMN IF NOT EXISTS c DateTime64(3, 'UTC') DEFAULT now() AFTER b,\n"
        "    ADD COLUMN d LowCardinality(String), DROP COLUMN IF EXISTS b",
        "ALTER TABLE other ADD COLUMN y UInt8",
    ]
    assert columns_of("t", statements) == {
        "a": "String",
        "c": "DateTime64(3, 'UTC')",
        "d": "LowCardinality(String)",
    }


def test_a_column_the_model_lacks_is_caught() -> None:
    ddl = ddl_columns("costs")
    ddl["region"] = "LowCardinality(String)"
    assert set(columns(CostRecord)) != set(ddl)


def test_a_float_column_for_money_is_caught() -> None:
    assert not holds("Float64", CostRecord.model_fields["cost_usd"].annotation)
    assert holds("Decimal(18, 9)", CostRecord.model_fields["cost_usd"].annotation)


def test_a_row_carries_enum_values_and_empty_text_for_unset_options() -> None:
    signal = Feedback(request_id="r1", tenant="acme", source="thumbs", score=0.5)
    values = dict(zip(columns(Feedback), row(signal), strict=True))
    assert values["label"] == "" and values["score"] == 0.5
    record = CostRecord(
        record_id="r1#1",
        request_id="r1",
        attempt=1,
        tenant="acme",
        tier=Tier.ECONOMY,
        model="m",
        provider="p",
        status="ok",
        cost_usd=Decimal("0.000000123"),
        created_at=datetime(2026, 1, 1),
    )
    cells = dict(zip(columns(CostRecord), row(record), strict=True))
    assert cells["tier"] == "economy" and type(cells["tier"]) is str
    assert cells["cost_usd"] == Decimal("0.000000123")
    assert "schema_version" not in cells
