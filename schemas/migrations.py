"""The ClickHouse schema as numbered migrations: `ddl/NNN_name.sql`, applied in order once."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every bundled migration, oldest first."""
    found = []
    for entry in resources.files("tierline.schemas").joinpath("ddl").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)
