"""The response cache's key, and which requests may use the cache at all.

Two requests share an answer only when a model would be asked exactly the same
thing: the same tenant, the same messages, the same sampling params, the same
model. The key is a SHA-256 of those, written as canonical JSON (keys sorted,
no whitespace), so the order the client wrote its JSON keys in does not matter.
Normalizing merges only spellings that are certainly alike (`stop: "x"` is
`stop: ["x"]`, a param left out is a param set to null); anything else, a text
part instead of a plain string say, is a different key: a miss, never a wrong
answer.

What is left out is what no model sees: the request id, hints, metadata
(feature, user, tags) and `reply_to`. Users of one tenant share its answers;
tenants never do, the tenant being part of the key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tierline.processors.routing.policy import CacheRules
from tierline.schemas import RouteRequest

#: bump when what the key covers changes: old entries then simply miss
KEY_VERSION = 1


def cacheable(request: RouteRequest, rules: CacheRules) -> bool:
    """Whether `request` may be answered from the cache, and its answer kept there.

    `hints.cache` decides when set; unset, a temperature-0 request is cacheable when
    the policy's `temperature_zero` says so. Nothing is while the cache is disabled.
    """
    if not rules.enabled:
        return False
    hint = request.hints.cache
    if hint is not None:
        return hint
    return rules.temperature_zero and request.params.temperature == 0


def cache_key(request: RouteRequest, model: str) -> str:
    """The key of `request`'s answer by `model` (a catalog name): 64 hex digits."""
    params = request.params.model_dump(mode="json", exclude_none=True)
    if isinstance(params.get("stop"), str):
        params["stop"] = [params["stop"]]
    body: dict[str, Any] = {
        "v": KEY_VERSION,
        "tenant": request.tenant,
        "model": model,
        "messages": [m.model_dump(mode="json", exclude_none=True) for m in request.messages],
        "params": params,
    }
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()
