"""Strict JSON: what RFC 8259's interoperable subset allows, and nothing a strict parser rejects.

Producers in other languages parse what tierline accepted; if tierline took input they
reject, two systems would disagree about one request. So a request is refused when its
bytes are not valid UTF-8 (or start with a byte-order mark), hold NaN or Infinity, a
number too large for a double, a lone surrogate escape, or an object with the same key
twice (parsers disagree on which value wins). orjson enforces all but the last; the
duplicate check re-reads the text with the standard library (~11 µs for 2 KB).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class StrictJSONError(ValueError):
    """The input is not strict JSON; the message says where and why."""


def loads_strict(raw: bytes) -> Any:
    """The value `raw` holds, if it is strict JSON; else `StrictJSONError`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc}") from None
    if isinstance(value, (dict, list)):
        try:
            json.loads(raw, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            raise StrictJSONError(f"not strict JSON: key {exc.key!r} appears twice") from None
    return value


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:64]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result
