"""A message as a ClickHouse row: its fields in model order, so columns are defined once.

The pydantic model is the one definition of a table's columns: `columns(CostRecord)`
names them, `row(record)` gives the values in the same order. The wire-only
`schema_version` is not stored. The DDL in `ddl/` must agree, and a test checks that
it does (tests/unit/test_table_columns.py).
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel

_WIRE_ONLY = frozenset({"schema_version"})


def columns(model: type[BaseModel]) -> tuple[str, ...]:
    """The table columns a model's rows fill, in field order."""
    return tuple(name for name in model.model_fields if name not in _WIRE_ONLY)


def row(message: BaseModel) -> list[Any]:
    """The values of `message` for `columns(type(message))`, as ClickHouse takes them.

    Enums travel as their value; an optional text field that is unset is stored as
    the empty string, since those columns are `LowCardinality(String)`, not Nullable.
    """
    fields = type(message).model_fields
    values: list[Any] = []
    for name in columns(type(message)):
        value = getattr(message, name)
        if isinstance(value, Enum):
            value = value.value
        elif value is None and _optional_text(fields[name].annotation):
            value = ""
        values.append(value)
    return values


def _optional_text(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_text(option) for option in typing.get_args(annotation))
    return False


def _text(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:  # Identifier and the like
        return _text(typing.get_args(annotation)[0])
    return annotation is str
