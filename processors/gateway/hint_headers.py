"""Routing hints an HTTP caller sets by header, since an OpenAI body has no place for them.

    X-Tierline-Cache: true | false   -> hints.cache: answer from the response cache when an
                                        identical request was answered before, or never
                                        (absent: as the policy's `[cache]` says)
    X-Tierline-Trim: true | false    -> hints.trim: false = never send a model a trimmed
                                        history (absent: true)

OpenAI's SDKs send extra headers on any call (`extra_headers=` in Python,
`headers` in the request options in Node). A value other than true or false is a
400 that names the header, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierline.processors.gateway.statuses import bad_request

#: header -> the `hints` field it sets
HEADERS = {"X-Tierline-Cache": "cache", "X-Tierline-Trim": "trim"}
_VALUES = {"true": True, "false": False}


def header_hints(headers: Mapping[str, str]) -> dict[str, bool]:
    """The hints `headers` set: each given header's field, as a bool."""
    hints: dict[str, bool] = {}
    for header, field in HEADERS.items():
        raw = headers.get(header)
        if raw is None:
            continue
        value = _VALUES.get(raw.strip().lower())
        if value is None:
            raise bad_request(f"the {header} header must be true or false, not {raw[:40]!r}")
        hints[field] = value
    return hints
