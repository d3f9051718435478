"""The ClickHouse schema as numbered migrations: `ddl/NNN_name.sql`, applied in order once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The migration's statements: ClickHouse takes one per request. A statement ends
        with a `;` at the end of a line; comment lines are dropped."""
        lines = [line for line in self.sql.splitlines() if not line.lstrip().startswith("--")]
        parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
        return [part.strip() for part in parts if part.strip()]


def migrations() -> list[Migration]:
    """Every bundled migration, oldest first."""
    found = []
    for entry in resources.files("tierline.schemas").joinpath("ddl").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)
