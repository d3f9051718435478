"""API keys to tenants (plain or sha256), request ids from headers; keys never shown."""

from __future__ import annotations

import hashlib

import pytest

from tierline.processors.gateway.api_keys import KeyTable, KeyTableError, bearer_key
from tierline.processors.gateway.request_ids import NEW_ID_PREFIX, request_id
from tierline.processors.gateway.statuses import GatewayError
from tierline.streams.config import load_settings

ACME_KEY = "sk-acme-0123456789abcdef"
GLOBEX_KEY = "sk-globex-fedcba9876543210"


def sha(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_plain_and_hashed_keys_find_their_tenants() -> None:
    table = KeyTable.from_config({ACME_KEY: "acme", sha(GLOBEX_KEY): "globex"})
    assert table.tenant_of(ACME_KEY) == "acme"
    assert table.tenant_of(GLOBEX_KEY) == "globex"
    assert table.tenant_of("sk-unknown") is None
    assert table.tenant_of(sha(GLOBEX_KEY)) is None  # the digest is not a key
    upper = KeyTable.from_config({sha(GLOBEX_KEY).upper().replace("SHA256", "sha256"): "g"})
    assert upper.tenant_of(GLOBEX_KEY) == "g"


def test_the_table_holds_no_plain_key_and_shows_none() -> None:
    table = KeyTable.from_config({ACME_KEY: "acme"})
    assert ACME_KEY not in repr(table) and ACME_KEY not in str(table.tenants)
    assert repr(table) == "KeyTable(1 keys)"


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ({"sha256:abc": "acme"}, "64 hex digits"),
        ({"": "acme"}, "non-empty"),
        ({"sk key": "acme"}, "without spaces"),
        ({ACME_KEY: " acme"}, "whitespace"),
        ({ACME_KEY: ""}, "1-128"),
        ({ACME_KEY: "acme", sha(ACME_KEY): "globex"}, "two tenants"),
    ],
)
def test_a_wrong_entry_is_named_by_position_never_by_key(
    entries: dict[str, object], says: str
) -> None:
    with pytest.raises(KeyTableError) as wrong:
        KeyTable.from_config(entries)
    assert says in str(wrong.value) and "entry" in str(wrong.value)
    assert ACME_KEY not in str(wrong.value)


def test_keys_in_settings_stay_out_of_reprs_and_errors() -> None:
    env = {"TIERLINE_GATEWAY_KEYS": f'{{"{ACME_KEY}": "acme"}}'}
    settings = load_settings(env=env)
    assert settings.gateway.keys == {ACME_KEY: "acme"} and settings.gateway.configured
    assert ACME_KEY not in repr(settings) and ACME_KEY not in str(settings)
    for bad in (f'{{"{ACME_KEY}": 1}}', f'{{"{ACME_KEY}": " x"}}', f"[{ACME_KEY!r}]", ACME_KEY):
        with pytest.raises(ValueError) as refused:
            load_settings(env={"TIERLINE_GATEWAY_KEYS": bad})
        assert "gateway.keys" in str(refused.value) and ACME_KEY not in str(refused.value)


def test_without_keys_or_an_anonymous_tenant_the_gateway_is_not_configured() -> None:
    assert not load_settings(env={}).gateway.configured
    anonymous = load_settings(env={"TIERLINE_GATEWAY_ALLOW_ANONYMOUS_TENANT": "demo"})
    assert anonymous.gateway.configured


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (f"Bearer {ACME_KEY}", ACME_KEY),
        (f"bearer  {ACME_KEY} ", ACME_KEY),
        (f"Basic {ACME_KEY}", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_the_key_comes_from_a_bearer_authorization(header: str | None, key: str | None) -> None:
    assert bearer_key(header) == key


def test_the_request_id_is_the_idempotency_key_or_x_request_id_or_new() -> None:
    assert request_id({"Idempotency-Key": "ticket-8812"}) == "ticket-8812"
    assert request_id({"X-Request-Id": "ticket-8813"}) == "ticket-8813"
    both = {"Idempotency-Key": "same", "X-Request-Id": "same"}
    assert request_id(both) == "same"
    fresh = {request_id({}) for _ in range(3)}
    assert len(fresh) == 3 and all(i.startswith(NEW_ID_PREFIX) for i in fresh)


@pytest.mark.parametrize(
    "headers",
    [
        {"Idempotency-Key": ""},
        {"Idempotency-Key": " padded"},
        {"X-Request-Id": "bell\x07"},
        {"X-Request-Id": "x" * 129},
        {"Idempotency-Key": "zero\u200bwidth"},
        {"Idempotency-Key": "a", "X-Request-Id": "b"},
    ],
)
def test_an_invalid_request_id_header_is_a_400(headers: dict[str, str]) -> None:
    with pytest.raises(GatewayError) as refused:
        request_id(headers)
    assert (refused.value.status, refused.value.code) == (400, "invalid_request_id")
