"""Strict JSON: what a strict parser rejects, tierline rejects too, with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierline.processors.routing.strict_json import StrictJSONError, loads_strict


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"id": "a", "id": "b"}', "key 'id' appears twice"),
        (b'{"m": [{"role": "user", "role": "system"}]}', "key 'role' appears twice"),
        (b'{"x": NaN}', "not JSON"),
        (b'{"x": Infinity}', "not JSON"),
        (b'{"x": -Infinity}', "not JSON"),
        (b'{"x": 1e999}', "not JSON"),
        (b'{"x": "\\ud800"}', "not JSON"),
        (b'{"x": "\xff"}', "not JSON"),
        (b"\xef\xbb\xbf{}", "not JSON"),
        (b'{"x": 1,}', "not JSON"),
        (b"{'x': 1}", "not JSON"),
        (b'{"x": 1} {"y": 2}', "not JSON"),
    ],
)
def test_what_strict_parsers_reject_is_refused_with_a_reason(raw: bytes, why: str) -> None:
    with pytest.raises(StrictJSONError) as refused:
        loads_strict(raw)
    assert why in str(refused.value)


def test_ordinary_json_passes_unchanged() -> None:
    raw = b'{"id": "q1", "messages": [{"role": "user", "content": "h\\u00e9 \\ud83d\\ude00"}]}'
    assert loads_strict(raw) == json.loads(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize("literal", [b"-9223372036854775809", b"18446744073709551616", b"[1e3]"])
def test_numbers_read_exactly_as_the_standard_library_reads_them(literal: bytes) -> None:
    value = loads_strict(literal)
    assert value == json.loads(literal)
    assert type(value) is type(json.loads(literal))
    nested = b'{"n": [%s]}' % literal
    assert loads_strict(nested) == json.loads(nested)


@given(json_values)
def test_any_json_a_strict_encoder_writes_is_accepted(value: object) -> None:
    raw = json.dumps(value, allow_nan=False).encode()
    assert loads_strict(raw) == json.loads(raw)
