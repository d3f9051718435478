"""One HTTP exchange with a provider, with a hard deadline, errors typed; whole, or streamed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import httpx

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.base import Adapter, HttpCall, ProviderReply
from tierline.processors.providers.http_client import ProviderClient
from tierline.processors.providers.registry import adapter_for
from tierline.processors.providers.streaming import (
    SseDecoder,
    StreamDelta,
    stream_parser,
    streaming_call,
)
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
    headers: Mapping[str, str] | None = None,
) -> ProviderReply:
    """Send `request` to `model` and return its normalized reply, or raise `ProviderError`;
    `heard` sees the reply's headers (the provider's rate limits ride on them). `headers`
    go with the call (the trace context), under the adapter's own: never in their place."""
    call = _with_headers(adapter.build(model, request, api_key), headers)
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


#: told each piece of a streamed answer as it arrives; awaited before the next is read
DeltaHook = Callable[[StreamDelta], Awaitable[None]]


async def stream_model(
    client: httpx.AsyncClient,
    model: ModelSpec,
    request: RouteRequest,
    api_key: str | None,
    timeout_s: float,
    on_delta: DeltaHook,
    heard: HeadersHook | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderReply:
    """Call `model` in streaming mode: each piece of the answer goes to `on_delta` as it
    comes, and the whole reply is returned at the end (or `ProviderError` raised).

    `timeout_s` bounds the wait for the first byte and for each next one: a stream that
    keeps writing may take longer in all. A non-2xx answer is read whole and typed by
    the adapter, as for a call that does not stream. `headers` as for `call_model`.
    """
    call = _with_headers(streaming_call(model, request, api_key), headers)
    decoder = SseDecoder()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            async with client.stream(
                "POST", call.url, content=call.body, headers=call.headers
            ) as reply:
                if heard is not None:
                    heard(reply.headers)
                if reply.status_code >= 300:
                    body = await reply.aread()
                    return adapter_for(model.provider).parse(reply.status_code, reply.headers, body)
                # the reply's headers carry the provider's request id
                parser = stream_parser(model.provider, reply.headers)
                async for chunk in reply.aiter_bytes():
                    deadline.reschedule(loop.time() + timeout_s)
                    for event in decoder.feed(chunk):
                        for delta in parser.feed(event):
                            await on_delta(delta)
                for event in decoder.close():
                    for delta in parser.feed(event):
                        await on_delta(delta)
    except (TimeoutError, httpx.TransportError) as exc:
        raise transport_failure(exc, model.name, timeout_s) from None
    return parser.finish()


def _with_headers(call: HttpCall, extra: Mapping[str, str] | None) -> HttpCall:
    """`call` with `extra` headers added; a header the adapter set (auth, content type)
    keeps the adapter's value, whatever its case in `extra`."""
    if not extra:
        return call
    own = {name.lower() for name in call.headers}
    added = {name: value for name, value in extra.items() if name.lower() not in own}
    return replace(call, headers={**call.headers, **added})
