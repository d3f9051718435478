"""What every batch API client offers, what an item's result is, and the HTTP both share.

An item ends one of three ways: a `ProviderReply` (answered), a `ProviderError`
(answered with an error, typed by the synchronous adapter's own rules, so a 400
is final and a 500 may go to another model), or `ItemLost`: the provider never
answered it (the batch expired before reaching it, was cancelled, or failed as a
whole). What to do with a lost item (call the model synchronously once, or answer
an error) is the lane's policy, not the client's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import Adapter, HttpCall, ProviderReply
from tierline.processors.providers.registry import adapter_for
from tierline.processors.providers.transport_errors import transport_failure
from tierline.schemas import ErrorType, RouteRequest


@dataclass(frozen=True, slots=True)
class ItemLost:
    """The provider never answered the item: why (`expired`, `canceled`, `batch failed: ...`)."""

    reason: str


ItemResult = ProviderReply | ProviderError | ItemLost


@dataclass(frozen=True, slots=True)
class BatchPoll:
    """A batch's state: still running, or ended with a result for each item it returned.

    An item an ended batch did not return (a failed or expired batch's, or, against
    the docs, one it skipped) has the result `missing`.
    """

    ended: bool
    status: str
    results: Mapping[str, ItemResult] = field(default_factory=dict)
    missing: ItemLost = ItemLost("missing from the batch's results")

    def result(self, custom_id: str) -> ItemResult:
        return self.results.get(custom_id, self.missing)


class BatchApi(Protocol):
    family: str

    async def submit(
        self,
        http: httpx.AsyncClient,
        model: ModelSpec,
        items: Sequence[tuple[str, RouteRequest]],
        api_key: str | None,
    ) -> str:
        """Send `items` as one batch; return the provider's batch id (or raise ProviderError)."""
        ...

    async def poll(
        self, http: httpx.AsyncClient, model: ModelSpec, batch_id: str, api_key: str | None
    ) -> BatchPoll:
        """The batch's state now, with every item's result once it has ended."""
        ...


def batch_api_for(family: str) -> BatchApi | None:
    """The batch client of `family`, or None for a family without a batch API."""
    from tierline.processors.providers.batch.anthropic import AnthropicBatches
    from tierline.processors.providers.batch.gemini import GeminiBatches
    from tierline.processors.providers.batch.openai import OpenAIBatches

    clients: dict[str, BatchApi] = {
        "openai": OpenAIBatches(),
        "anthropic": AnthropicBatches(),
        "gemini": GeminiBatches(),
    }
    return clients.get(family)


def auth_headers(call: HttpCall) -> dict[str, str]:
    """The synchronous call's headers less its content type: the key and version headers
    every request of the batch API needs too."""
    return {k: v for k, v in call.headers.items() if k.lower() != "content-type"}


#: the smallest request: what the adapter builds for it carries the auth headers
_PROBE = RouteRequest.model_validate(
    {"id": "batch-auth", "tenant": "tierline", "messages": [{"role": "user", "content": "."}]}
)


def key_headers(adapter: Adapter, model: ModelSpec, api_key: str | None) -> dict[str, str]:
    """The auth (and version) headers of `model`'s API, for calls that carry no request."""
    return auth_headers(adapter.build(model, _PROBE, api_key))


async def exchange(
    http: httpx.AsyncClient,
    adapter: Adapter,
    model: ModelSpec,
    method: str,
    url: str,
    *,
    timeout_s: float,
    **kwargs: Any,
) -> httpx.Response:
    """One management call (upload, create, poll, download): the reply, or a typed error.

    A non-2xx reply is parsed by the synchronous adapter, whose error rules type it
    (a 401 is `auth`, a 429 `rate_limited`, a 5xx `server_error`).
    """
    try:
        reply = await http.request(method, url, timeout=timeout_s, **kwargs)
    except (TimeoutError, httpx.TransportError) as exc:
        raise transport_failure(exc, model.name, timeout_s) from None
    if reply.status_code >= 400:
        adapter.parse(reply.status_code, reply.headers, reply.content)  # raises, typed
        raise unusable(f"{model.name}: batch call answered {reply.status_code}", reply.status_code)
    return reply


@dataclass(frozen=True, slots=True)
class BatchCalls:
    """The management calls of one model's batch API: its client, adapter, key headers
    and timeout, said once per submit or poll instead of at every call."""

    http: httpx.AsyncClient
    adapter: Adapter
    model: ModelSpec
    headers: dict[str, str]
    timeout_s: float

    @classmethod
    def of(
        cls, http: httpx.AsyncClient, model: ModelSpec, api_key: str | None, timeout_s: float
    ) -> BatchCalls:
        adapter = adapter_for(model.provider)
        return cls(http, adapter, model, key_headers(adapter, model, api_key), timeout_s)

    async def get(self, url: str) -> httpx.Response:
        return await self.call("GET", url)

    async def post_json(self, url: str, body: Any) -> httpx.Response:
        return await self.call(
            "POST", url, content=orjson.dumps(body), headers={"content-type": "application/json"}
        )

    async def call(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """`exchange` with this API's headers (plus `headers`) and timeout."""
        return await exchange(
            self.http,
            self.adapter,
            self.model,
            method,
            url,
            timeout_s=self.timeout_s,
            headers=self.headers | dict(headers or {}),
            **kwargs,
        )


def created_name(reply: httpx.Response, what: str, field: str, thing: str) -> str:
    """The string `field` of a create call's JSON reply, or an `invalid_response` error
    saying the reply has no `thing`."""
    value = json_reply(reply, what).get(field)
    if not isinstance(value, str) or not value:
        raise unusable(f"{what}: the reply has no {thing}")
    return value


def unusable(message: str, status: int | None = None) -> ProviderError:
    """A batch API reply tierline cannot read: the provider's fault, another model may help."""
    return ProviderError(ErrorType.INVALID_RESPONSE, message[:300], status=status)


def json_reply(reply: httpx.Response, what: str) -> dict[str, Any]:
    """The reply's JSON object, or an `invalid_response` error saying which call it was."""
    try:
        parsed = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        raise unusable(f"{what}: the reply is not JSON", reply.status_code) from None
    if not isinstance(parsed, dict):
        raise unusable(f"{what}: the reply is not a JSON object", reply.status_code)
    return parsed


def jsonl(content: bytes, what: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL results file; a line that is not one is an error."""
    lines = []
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise unusable(f"{what}: line {n} is not JSON") from None
        if not isinstance(parsed, dict):
            raise unusable(f"{what}: line {n} is not a JSON object")
        lines.append(parsed)
    return lines


def parsed_item(adapter: Adapter, status: int, body: Any) -> ProviderReply | ProviderError:
    """One item's answer, read by the synchronous adapter: its reply or its typed error."""
    try:
        return adapter.parse(status, {}, orjson.dumps(body))
    except ProviderError as exc:
        return exc
