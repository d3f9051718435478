"""A corpus of malformed requests, each with the answer it must get.

`answered` is the id an error response must carry (the id reads plainly), or None when
no id can be read and only the dead letter is written. Every case is rejected; none may
be routed, crash the router, or be answered on a `reply_to` it names.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

HI = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    raw: bytes | None
    answered: str | None


def req(**fields: object) -> bytes:
    body: dict[str, object] = {"id": "m1", "tenant": "acme", "messages": HI}
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not _DROP})


_DROP = object()


def _reply(field: str) -> str | None:
    """A bad id cannot be answered; a bad tenant can, by the id."""
    return None if field == "id" else "m1"


CORPUS: list[Case] = [
    # --- not JSON at all ------------------------------------------------------------------
    Case("empty", "syntax", b"", None),
    Case("whitespace", "syntax", b"   \n", None),
    Case("garbage", "syntax", b"\xff\xfe\x00garbage", None),
    Case("xml", "syntax", b"<request id='m1'/>", None),
    Case("single-quotes", "syntax", b"{'id': 'm1', 'tenant': 'acme'}", None),
    Case("trailing-comma", "syntax", b'{"id": "m1", "tenant": "acme", "messages": [],}', "m1"),
    Case("comment", "syntax", b'{"id": "m1", /* hi */ "tenant": "acme"}', "m1"),
    Case("truncated", "syntax", b'{"id": "m1", "tenant": "acme", "messages": [{"ro', "m1"),
    Case("truncated-in-id", "syntax", b'{"id": "m1', None),
    Case("two-objects", "syntax", req() + req(), None),
    Case("bom", "syntax", b"\xef\xbb\xbf" + req(), "m1"),
    Case("unquoted-key", "syntax", b'{id: "m1", "tenant": "acme"}', None),
    Case("ids-in-broken-text", "syntax", b'{"id": "a", "x": {"id": "b"', None),
    # --- JSON a strict parser rejects -----------------------------------------------------
    Case("nan", "strict", req()[:-1] + b', "x": NaN}', "m1"),
    Case("infinity", "strict", req()[:-1] + b', "x": Infinity}', "m1"),
    Case("minus-infinity", "strict", req()[:-1] + b', "x": -Infinity}', "m1"),
    Case("huge-number", "strict", req()[:-1] + b', "x": 1e400}', "m1"),
    Case("lone-surrogate", "strict", req()[:-1] + b', "x": "\\udc00"}', "m1"),
    Case("bad-utf8", "strict", req()[:-1] + b', "x": "\xc3\x28"}', "m1"),
    Case("overlong-utf8", "strict", req()[:-1] + b', "x": "\xc0\xaf"}', "m1"),
    Case("dup-id", "strict", b'{"id": "m1", "id": "m2", "tenant": "acme", "messages": []}', None),
    Case(
        "dup-tenant", "strict", b'{"id": "m1", "tenant": "a", "tenant": "b", "messages": []}', "m1"
    ),
    Case(
        "dup-nested",
        "strict",
        b'{"id": "m1", "tenant": "acme", "messages": [{"role": "user", "role": "system"}]}',
        "m1",
    ),
    Case(
        "dup-messages",
        "strict",
        b'{"id": "m1", "tenant": "acme", "messages": [], "messages": []}',
        "m1",
    ),
    # --- not an object, or missing what every request needs ----------------------------------
    Case("array", "shape", b"[1, 2]", None),
    Case("string", "shape", b'"m1"', None),
    Case("number", "shape", b"42", None),
    Case("null", "shape", b"null", None),
    Case("true", "shape", b"true", None),
    Case("empty-object", "shape", b"{}", None),
    Case("no-id", "shape", req(id=_DROP), None),
    Case("no-tenant", "shape", req(tenant=_DROP), "m1"),
    Case("no-messages", "shape", req(messages=_DROP), "m1"),
    Case("empty-messages", "shape", req(messages=[]), "m1"),
    Case("array-of-requests", "shape", b"[" + req() + b"]", None),
    # --- identifiers that would garble keys, rows and labels ---------------------------------
    *(
        Case(
            f"{field}-{label}", "identifier", req(**{field: value}), None if field == "id" else "m1"
        )
        for field in ("id", "tenant")
        for label, value in (
            ("tab", "a\tb"),
            ("newline", "a\nb"),
            ("nul", "a\x00b"),
            ("escape", "a\x1b[31mb"),
            ("del", "a\x7fb"),
            ("c1", "a\x85b"),
            ("zero-width", "a\u200bb"),
            ("rtl-override", "a\u202eb"),
            ("bom-char", "\ufeffab"),
            ("nbsp", "a\u00a0b"),
            ("leading-space", " ab"),
            ("trailing-space", "ab "),
            ("empty", ""),
            ("too-long", "x" * 129),
        )
    ),
    Case("feature-control", "identifier", req(metadata={"feature": "f\x1b"}), "m1"),
    Case("feature-trailing-space", "identifier", req(metadata={"feature": "triage "}), "m1"),
    Case("user-newline", "identifier", req(metadata={"user": "u\n1"}), "m1"),
    Case("user-too-long", "identifier", req(metadata={"user": "u" * 200}), "m1"),
    # --- wrong types and values ----------------------------------------------------------
    Case("id-number", "type", req(id=7), None),
    Case("id-object", "type", req(id={"x": 1}), None),
    Case("tenant-list", "type", req(tenant=["acme"]), "m1"),
    Case("messages-string", "type", req(messages="hello"), "m1"),
    Case("messages-object", "type", req(messages={"role": "user"}), "m1"),
    Case("role-unknown", "type", req(messages=[{"role": "bot", "content": "hi"}]), "m1"),
    Case("role-missing", "type", req(messages=[{"content": "hi"}]), "m1"),
    Case("content-number", "type", req(messages=[{"role": "user", "content": 5}]), "m1"),
    Case("max-tokens-negative", "type", req(params={"max_tokens": -1}), "m1"),
    Case("max-tokens-string", "type", req(params={"max_tokens": "many"}), "m1"),
    Case("max-tokens-huge", "type", req(params={"max_tokens": 10**12}), "m1"),
    Case("temperature-high", "type", req(params={"temperature": 5}), "m1"),
    Case("top-p-negative", "type", req(params={"top_p": -0.1}), "m1"),
    Case("params-unknown", "type", req(params={"stream_all_the_things": True}), "m1"),
    Case("params-list", "type", req(params=[1]), "m1"),
    Case("hint-tier-unknown", "type", req(hints={"min_tier": "platinum"}), "m1"),
    Case(
        "hint-tiers-inverted",
        "type",
        req(hints={"min_tier": "premium", "max_tier": "economy"}),
        "m1",
    ),
    Case("hint-latency-unknown", "type", req(hints={"latency": "yesterday"}), "m1"),
    Case("hint-cost-negative", "type", req(hints={"max_cost_usd": "-1"}), "m1"),
    Case("hint-cost-word", "type", req(hints={"max_cost_usd": "cheap"}), "m1"),
    Case("hint-unknown", "type", req(hints={"make_it_good": True}), "m1"),
    Case("tags-nested", "type", req(metadata={"tags": {"env": {"a": 1}}}), "m1"),
    Case("metadata-unknown", "type", req(metadata={"team": "x"}), "m1"),
    Case("created-at-garbage", "type", req(created_at="last tuesday"), "m1"),
    # --- too large ---------------------------------------------------------------------
    Case("too-large", "size", req(messages=[{"role": "user", "content": "x" * 70_000}]), "m1"),
    Case(
        "too-large-broken", "size", b'{"id": "m1", "tenant": "acme", "x": "' + b"y" * 70_000, "m1"
    ),
    # --- reply_to that may not be used (answered on the shared topic) -----------------------
    Case("reply-to-other-tenant", "reply_to", req(reply_to="globex.replies"), "m1"),
    Case("reply-to-internal", "reply_to", req(reply_to="t.requests"), "m1"),
    Case("reply-to-dlq", "reply_to", req(reply_to="t.dlq"), "m1"),
    Case("reply-to-dunder", "reply_to", req(reply_to="__transaction_state"), "m1"),
    Case("reply-to-consumer-offsets", "reply_to", req(reply_to="__consumer_offsets"), "m1"),
    Case("reply-to-missing", "reply_to", req(reply_to="acme.nowhere"), "m1"),
    Case("reply-to-illegal", "reply_to", req(reply_to="acme replies!"), "m1"),
    Case("reply-to-number", "reply_to", req(reply_to=5), "m1"),
    Case(
        "reply-to-on-bad-request",
        "reply_to",
        req(reply_to="globex.replies", params={"temperature": 9}),
        "m1",
    ),
    Case(
        "reply-to-in-broken-json",
        "reply_to",
        req(reply_to="acme.replies")[:-1] + b', "x": NaN}',
        "m1",
    ),
]
