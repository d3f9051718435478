"""Strict JSON: what RFC 8259's interoperable subset allows, and nothing a strict parser rejects.

Producers in other languages parse what tierline accepted; if tierline took input they
reject, two systems would disagree about one request. So a request is refused when its
bytes are not valid UTF-8 (or start with a byte-order mark), hold NaN or Infinity, a
number too large for a double, a lone surrogate escape, or an object with the same key
twice (parsers disagree on which value wins). orjson enforces all but the last; the
duplicate check re-reads the text with the standard library (~11 µs for 2 KB), and that
reading is the value returned: orjson reads an integer beyond 64 bits as a float, the
standard library reads it exactly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class StrictJSONError(ValueError):
    """The input is not strict JSON; the message says where and why.

    `value` is what a lenient reading gave (the last of duplicated keys winning), when
    the only fault was a duplicate key; `ambiguous` names the top-level keys that
    appear twice, whose values must not be trusted.
    """

    def __init__(
        self, message: str, value: Any = None, ambiguous: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(message)
        self.value = value
        self.ambiguous = ambiguous


def loads_strict(raw: bytes) -> Any:
    """The value `raw` holds, if it is strict JSON; else `StrictJSONError`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc}") from None
    if isinstance(value, float):  # exact, where the literal is an integer beyond 64 bits
        return json.loads(raw)
    if isinstance(value, (dict, list)):
        found = _Duplicates()
        value = json.loads(raw, object_pairs_hook=found.hook)
        if found.first is not None:
            raise StrictJSONError(
                f"not strict JSON: key {found.first[:64]!r} appears twice",
                value,
                found.outermost if isinstance(value, dict) else frozenset(),
            )
    return value


class _Duplicates:
    """Collects duplicated keys while the standard library decodes the text.

    The decoder calls the hook as each object closes, innermost first, so the last
    call is the outermost object's: its duplicates are the top-level ones.
    """

    def __init__(self) -> None:
        self.first: str | None = None
        self.outermost: frozenset[str] = frozenset()

    def hook(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        twice: set[str] = set()
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    twice.add(key)
                    if self.first is None:
                        self.first = key
                seen.add(key)
        self.outermost = frozenset(twice)
        return result
