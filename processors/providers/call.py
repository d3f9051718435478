"""One HTTP exchange with a provider, with a hard deadline, errors typed."""

from __future__ import annotations

import asyncio

import httpx

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import Adapter, ProviderReply
from tierline.processors.providers.http_client import ProviderClient
from tierline.schemas import ErrorType, RouteRequest


async def call_model(
    client: httpx.AsyncClient,
    adapter: Adapter,
    model: ModelSpec,
    request: RouteRequest,
    api_key: str | None,
    timeout_s: float,
) -> ProviderReply:
    """Send `request` to `model` and return its normalized reply, or raise `ProviderError`."""
    call = adapter.build(model, request, api_key)
    try:
        async with asyncio.timeout(timeout_s):
            if isinstance(client, ProviderClient):
                reply = await client.post_bytes(call.url, call.body, call.headers)
            else:
                reply = await client.post(call.url, content=call.body, headers=call.headers)
            body = reply.content
    except (TimeoutError, httpx.TimeoutException):
        raise ProviderError(
            ErrorType.TIMEOUT, f"{model.name}: no answer within {timeout_s:g}s"
        ) from None
    except httpx.TransportError as exc:
        raise ProviderError(
            ErrorType.CONNECTION, f"{model.name}: {type(exc).__name__} {exc}"[:300]
        ) from None
    return adapter.parse(reply.status_code, reply.headers, body)
