"""Intake: every malformed input becomes a rejection that says why, never an exception."""

from __future__ import annotations

import orjson
import pytest

from tierline.processors.routing.intake import Rejection, admit
from tierline.schemas import ErrorType, RouteRequest

GOOD = {"id": "r1", "tenant": "acme", "messages": [{"role": "user", "content": "hi"}]}


def test_valid_request_is_admitted() -> None:
    assert isinstance(admit(orjson.dumps(GOOD), 10_000), RouteRequest)


def test_not_json_is_rejected_without_an_id() -> None:
    result = admit(b"\x00\xffnot json", 10_000)
    assert isinstance(result, Rejection)
    assert result.error.type == ErrorType.INVALID_REQUEST
    assert "not JSON" in result.error.message
    assert result.request_id is None


def test_json_that_is_not_an_object_is_rejected() -> None:
    result = admit(b"[1, 2]", 10_000)
    assert isinstance(result, Rejection)
    assert "list" in result.error.message


def test_wrong_types_are_rejected_with_the_id_and_field() -> None:
    bad = {**GOOD, "params": {"max_tokens": "lots"}, "reply_to": "acme.replies"}
    result = admit(orjson.dumps(bad), 10_000)
    assert isinstance(result, Rejection)
    assert result.request_id == "r1"
    assert result.tenant == "acme"
    assert result.reply_to == "acme.replies"
    assert "params.max_tokens" in result.error.message


def test_missing_id_is_rejected_and_says_so() -> None:
    result = admit(orjson.dumps({"tenant": "acme", "messages": GOOD["messages"]}), 10_000)
    assert isinstance(result, Rejection)
    assert result.request_id is None
    assert "id" in result.error.message


def test_unknown_tier_hint_is_rejected() -> None:
    result = admit(orjson.dumps({**GOOD, "hints": {"min_tier": "gold"}}), 10_000)
    assert isinstance(result, Rejection)
    assert "hints.min_tier" in result.error.message


def test_oversized_body_is_rejected_as_too_large_with_its_id() -> None:
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 50_000}]}
    result = admit(orjson.dumps(big), 10_000)
    assert isinstance(result, Rejection)
    assert result.error.type == ErrorType.PAYLOAD_TOO_LARGE
    assert result.request_id == "r1"


def test_empty_value_is_rejected() -> None:
    assert isinstance(admit(None, 10_000), Rejection)
    assert isinstance(admit(b"", 10_000), Rejection)


def test_an_unsafe_reply_to_is_not_used() -> None:
    result = admit(orjson.dumps({**GOOD, "id": 5, "reply_to": "../etc"}), 10_000)
    assert isinstance(result, Rejection)
    assert result.reply_to is None
    assert result.request_id is None


def test_a_rejection_with_an_id_answers_with_a_typed_error_response() -> None:
    bad = {**GOOD, "params": {"max_tokens": "lots"}}
    result = admit(orjson.dumps(bad), 10_000)
    assert isinstance(result, Rejection)
    response = result.response()
    assert response is not None
    assert (response.id, response.tenant, response.status) == ("r1", "acme", "error")
    assert response.finish_reason == "error" and response.content is None
    assert response.error == result.error


def test_a_rejection_without_an_id_has_no_response() -> None:
    result = admit(b"[1, 2]", 10_000)
    assert isinstance(result, Rejection) and result.response() is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "q1", "tenant": "acme", "messages": [{"role": "us',  # truncated
        b'{"id": "q1", "tenant": "acme", "messages": [], "x": NaN}',
        b'{"id": "q1", "tenant": "acme", "messages": [{"role": "user", "content": "\xff"}]}',
        b'{"id": "q1", "tenant": "acme", "messages": [], "messages": []}',
        b'{"id": "q1", "tenant": "acme", "params": {"top_p": 1e999}}',
    ],
)
def test_broken_json_whose_id_reads_plainly_still_gets_an_answer(raw: bytes) -> None:
    rejected = admit(raw, 1_000_000)
    assert isinstance(rejected, Rejection)
    assert (rejected.request_id, rejected.tenant) == ("q1", "acme")
    assert rejected.reply_to is None  # broken input is answered on the shared topic only
    assert rejected.response() is not None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "id": "b", "tenant": "acme", "messages": []}',  # which id?
        b'{"id": "q\\t1", "tenant": "acme", "messages": []}',  # not an identifier
        b'{"id": " q1", "tenant": "acme", "messages": []}',
        b'{"messages": [{"id": "x"}, {"id": "y"}], "broken',  # two ids: none is the id
    ],
)
def test_an_ambiguous_or_invalid_id_is_not_answered(raw: bytes) -> None:
    rejected = admit(raw, 1_000_000)
    assert isinstance(rejected, Rejection)
    assert rejected.request_id is None and rejected.response() is None


def test_a_reply_to_in_broken_json_is_not_trusted() -> None:
    raw = b'{"id": "q1", "tenant": "acme", "reply_to": "globex.replies", "x": NaN}'
    rejected = admit(raw, 1_000_000)
    assert isinstance(rejected, Rejection) and rejected.reply_to is None
