"""`Identifier`: the one rule for ids and names that become keys, rows and labels.

Request ids, tenants, features and users end up as Kafka keys, ClickHouse rows and
the labels of `tierline spend`. So they are 1–128 printable characters with no
whitespace at either end: no control characters (a tab or an escape garbles a
billing row), no zero-width or direction-changing characters (two tenants that look
alike), no trailing space (two tenants that print alike).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

MAX_LENGTH = 128
#: the same rule for producers in other languages (JSON Schema `pattern`): no control
#: characters anywhere, no whitespace at the ends
PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"


def check_identifier(value: str) -> str:
    """`value` if it is a valid identifier; else a ValueError that says what is wrong."""
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise ValueError(f"must be printable text; holds {bad!r} (U+{ord(bad):04X})")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_LENGTH),
    AfterValidator(check_identifier),
    # validation is check_identifier's, whose errors say which character is wrong
    Field(json_schema_extra={"pattern": PATTERN}),
]
