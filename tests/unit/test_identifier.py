"""One identifier rule for id, tenant, feature and user, the same in pydantic and JSON Schema."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tierline.schemas import Feedback, RouteRequest
from tierline.schemas.identifier import PATTERN, check_identifier

HI = [{"role": "user", "content": "hi"}]


def valid(value: str) -> bool:
    try:
        check_identifier(value)
    except ValueError:
        return False
    return 0 < len(value) <= 128


@pytest.mark.parametrize(
    "bad",
    ["ac\tme", "ac\nme", "ac\x1bme", "ac\x00me", " acme", "acme ", "ac\u200bme", "ac\u202eme", ""],
)
@pytest.mark.parametrize("field", ["id", "tenant", "feature", "user"])
def test_control_and_invisible_characters_and_edge_whitespace_are_refused(
    field: str, bad: str
) -> None:
    fields: dict[str, object] = {"id": "r1", "tenant": "acme", "messages": HI}
    if field in ("feature", "user"):
        fields["metadata"] = {field: bad}
    else:
        fields[field] = bad
    with pytest.raises(ValidationError):
        RouteRequest.model_validate(fields)


@pytest.mark.parametrize("good", ["acme", "team a", "日本-支社", "ticket-8812#triage", "x" * 128])
def test_ordinary_names_pass(good: str) -> None:
    request = RouteRequest.model_validate(
        {"id": good, "tenant": good, "messages": HI, "metadata": {"feature": good}}
    )
    assert request.tenant == good


def test_too_long_is_refused() -> None:
    with pytest.raises(ValidationError):
        RouteRequest.model_validate({"id": "x" * 129, "tenant": "acme", "messages": HI})


def test_feedback_ids_follow_the_same_rule() -> None:
    with pytest.raises(ValidationError):
        Feedback(request_id="r\t1", tenant="acme", source="thumbs", score=1.0)


@given(st.text(max_size=40))
def test_the_json_schema_pattern_agrees_with_the_validator(value: str) -> None:
    """Producers in other languages validate with the pattern; it must draw the same line.

    The pattern speaks of ASCII and C1 controls and whitespace; the validator also refuses
    other unprintable characters (format, private-use, unassigned), so the pattern may
    admit what the validator refuses, never the other way round.
    """
    matches = re.fullmatch(PATTERN, value) is not None
    if valid(value):
        assert matches
    if value.isascii() and value:
        assert matches == valid(value)
