"""The request id of an HTTP call: the caller's `Idempotency-Key` or `X-Request-Id`, else new.

The id is what tierline deduplicates by, with the tenant (`RouteRequest.key`), and
what the answer, the bill and the feedback name. A caller that sends the same key
again gets the same request: while the first is in flight the second call joins its
wait (`waiters.Waiters`). A key must be a valid identifier (`schemas.identifier`);
otherwise the call is refused with 400, never given an id of the gateway's choosing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from tierline.processors.gateway.statuses import bad_request
from tierline.schemas.identifier import MAX_LENGTH, check_identifier

#: the headers read, in order of preference
HEADERS = ("Idempotency-Key", "X-Request-Id")
#: new ids look like OpenAI's completion ids, so they read naturally in an SDK's logs
NEW_ID_PREFIX = "chatcmpl-"


def request_id(headers: Mapping[str, str]) -> str:
    """The id `headers` give, validated; a new one when they give none."""
    given = {name: headers[name] for name in HEADERS if headers.get(name) is not None}
    if len(set(given.values())) > 1:
        raise bad_request(
            f"{' and '.join(given)} differ; send one of them", code="invalid_request_id"
        )
    for name, value in given.items():
        return checked(name, value)
    return NEW_ID_PREFIX + uuid.uuid4().hex


def checked(header: str, value: str) -> str:
    """`value` as a request id, or a 400 that says what is wrong with it."""
    if not 0 < len(value) <= MAX_LENGTH:
        raise bad_request(
            f"the {header} header must be 1-{MAX_LENGTH} characters", code="invalid_request_id"
        )
    try:
        return check_identifier(value)
    except ValueError as exc:
        raise bad_request(f"the {header} header {exc}", code="invalid_request_id") from None
