"""One HTTP exchange with a provider, with a hard deadline, errors typed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import httpx

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import Adapter, ProviderReply
from tierline.processors.providers.http_client import ProviderClient
from tierline.processors.providers.transport_errors import transport_failure
from tierline.schemas import RouteRequest

#: told the reply's headers (whatever its status) before it is parsed
HeadersHook = Callable[[Mapping[str, str]], None]


async def call_model(
    client: httpx.AsyncClient,
    adapter: Adapter,
    model: ModelSpec,
    request: RouteRequest,
    api_key: str | None,
    timeout_s: float,
    heard: HeadersHook | None = None,
) -> ProviderReply:
    """Send `request` to `model` and return its normalized reply, or raise `ProviderError`;
    `heard` sees the reply's headers (the provider's rate limits ride on them)."""
    call = adapter.build(model, request, api_key)
    try:
        async with asyncio.timeout(timeout_s):
            if isinstance(client, ProviderClient):
                reply = await client.post_bytes(call.url, call.body, call.headers)
            else:
                reply = await client.post(call.url, content=call.body, headers=call.headers)
            body = reply.content
    except (TimeoutError, httpx.TransportError) as exc:
        raise transport_failure(exc, model.name, timeout_s) from None
    if heard is not None:
        heard(reply.headers)
    return adapter.parse(reply.status_code, reply.headers, body)
