"""Migrations split into the single statements ClickHouse takes."""

from __future__ import annotations

from tierline.schemas.migrations import Migration, migrations


def test_statements_split_at_line_ending_semicolons_and_drop_comments() -> None:
    m = Migration(
        9, "x", "-- a comment; not a split\nCREATE TABLE a (s String);\n\nDROP TABLE b;\n"
    )
    assert m.statements() == ["CREATE TABLE a (s String)", "DROP TABLE b"]


def test_a_semicolon_inside_a_line_does_not_split() -> None:
    m = Migration(9, "x", "SELECT 'a;b' AS s")
    assert m.statements() == ["SELECT 'a;b' AS s"]


def test_the_bundled_migrations_are_numbered_in_order_and_each_has_statements() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(m.statements() for m in found)
    assert len(found[4].statements()) == 6  # the tenant-key rebuild
