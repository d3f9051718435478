"""Price refresh: fetch, parse, swap, against httpx.MockTransport and a local aiohttp server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tierline.processors.pricing.catalog import Catalog, load_catalog
from tierline.processors.pricing.prices import PriceBook
from tierline.processors.pricing.prices.refresh import (
    PriceFeed,
    PriceRefreshError,
    parse_price_catalog,
    refresh_forever,
)
from tierline.schemas import Tier

URL = "https://prices.example/catalog.json"


def catalog_file(nano_input: float = 1e-07, extra: int = 60) -> dict[str, Any]:
    """A small catalog in the public format: gpt-4.1-nano plus `extra` filler models."""
    raw: dict[str, Any] = {
        "sample_spec": {"note": "the public file starts with a spec entry"},
        "gpt-4.1-nano": {
            "litellm_provider": "openai",
            "mode": "chat",
            "input_cost_per_token": nano_input,
            "output_cost_per_token": 4e-07,
            "cache_read_input_token_cost": 2.5e-08,
            "max_input_tokens": 1047576,
        },
        "text-embedding-3-small": {
            "litellm_provider": "openai",
            "mode": "embedding",
            "input_cost_per_token": 2e-08,
            "output_cost_per_token": 0.0,
        },
    }
    for i in range(extra):
        raw[f"filler-{i}"] = {
            "litellm_provider": "openai",
            "mode": "chat",
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 2e-06,
        }
    return raw


def test_parse_keeps_priced_chat_models_of_known_providers() -> None:
    book = parse_price_catalog(orjson.dumps(catalog_file()))
    assert len(book) == 61
    entry = book.get("gpt-4.1-nano")
    assert entry is not None and entry.price.cached_input == Decimal("2.5E-8")
    assert "text-embedding-3-small" not in book and "sample_spec" not in book


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"<html>503</html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (orjson.dumps(catalog_file(extra=3)), "fewer than"),
    ],
)
def test_unusable_catalogs_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(PriceRefreshError, match=why):
        parse_price_catalog(raw)


class Server:
    """A MockTransport handler serving a catalog with an ETag, counting requests."""

    def __init__(self) -> None:
        self.body = orjson.dumps(catalog_file())
        self.status = 200
        self.requests: list[httpx.Request] = []

    def etag(self) -> str:
        return f'"{hash(self.body) & 0xFFFF:x}"'

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, text="unavailable")
        if request.headers.get("if-none-match") == self.etag():
            return httpx.Response(304)
        return httpx.Response(200, content=self.body, headers={"etag": self.etag()})


async def test_fetch_is_conditional_and_sees_changes() -> None:
    server = Server()
    feed = PriceFeed(URL)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        first = await feed.fetch(client)
        assert first is not None and len(first) == 61
        assert await feed.fetch(client) is None  # 304: unchanged, not parsed again
        assert server.requests[1].headers["if-none-match"] == server.etag()
        server.body = orjson.dumps(catalog_file(nano_input=5e-08))
        changed = await feed.fetch(client)
    assert changed is not None
    entry = changed.get("gpt-4.1-nano")
    assert entry is not None and entry.price.input == Decimal("5E-8")


async def test_a_failed_fetch_is_a_typed_error() -> None:
    server = Server()
    server.status = 503
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        with pytest.raises(PriceRefreshError, match="HTTP 503"):
            await PriceFeed(URL).fetch(client)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(PriceRefreshError, match="ConnectError"):
            await PriceFeed(URL).fetch(client)


def test_a_new_book_reprices_listed_models_but_not_pinned_ones() -> None:
    catalog = Catalog.from_config(
        {
            "models": {
                "gpt-4.1-nano": {"provider": "openai"},
                "pinned": {"provider": "openai", "price": {"input": "9", "output": "9"}},
                "gpt-4o-mini": {"provider": "openai"},
            },
            "tiers": {
                "economy": ["gpt-4.1-nano", "gpt-4o-mini"],
                "standard": ["pinned"],
                "premium": ["pinned"],
            },
        }
    )
    assert catalog.candidates(Tier.ECONOMY) == ("gpt-4.1-nano", "gpt-4o-mini")
    # the new book makes nano pricier than 4o-mini (absent from it: keeps its price)
    book = PriceBook.from_catalog(catalog_file(nano_input=1e-05))
    repriced = catalog.with_price_book(book)
    assert repriced.model("gpt-4.1-nano").price.input == Decimal("0.00001")
    assert repriced.model("gpt-4o-mini").price == catalog.model("gpt-4o-mini").price
    assert repriced.model("pinned").price == catalog.model("pinned").price
    assert repriced.candidates(Tier.ECONOMY) == ("gpt-4o-mini", "gpt-4.1-nano")
    assert catalog.candidates(Tier.ECONOMY) == ("gpt-4.1-nano", "gpt-4o-mini")  # untouched


def test_the_bundled_catalog_survives_a_reprice_from_the_bundled_snapshot() -> None:
    from tierline.processors.pricing.prices import bundled_price_book

    catalog = load_catalog()
    assert catalog.with_price_book(bundled_price_book()).tiers == catalog.tiers


@pytest.fixture
async def aiohttp_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A local HTTP server whose catalog a test can change between refreshes."""
    bodies = [orjson.dumps(catalog_file()), orjson.dumps(catalog_file(nano_input=3e-07))]

    async def serve(request: web.Request) -> web.Response:
        body = bodies[0] if len(bodies) == 1 else bodies.pop(0)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/prices.json", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/prices.json", bodies
    await runner.cleanup()


async def test_refresh_forever_swaps_prices_while_running(
    aiohttp_server: tuple[str, list[bytes]],
) -> None:
    url, _ = aiohttp_server
    catalog = Catalog.from_config(
        {
            "models": {"gpt-4.1-nano": {"provider": "openai"}},
            "tiers": {t: ["gpt-4.1-nano"] for t in ("economy", "standard", "premium")},
        }
    )
    live = {"catalog": catalog}
    seen: list[Decimal] = []
    errors: list[PriceRefreshError] = []
    stop = asyncio.Event()

    def apply(book: PriceBook) -> None:
        live["catalog"] = live["catalog"].with_price_book(book)
        seen.append(live["catalog"].model("gpt-4.1-nano").price.input)
        if len(seen) == 2:
            stop.set()

    async with httpx.AsyncClient() as client:
        await asyncio.wait_for(
            refresh_forever(PriceFeed(url), client, 0.01, apply, errors.append, stop=stop), 5
        )
    assert seen == [Decimal("1E-7"), Decimal("3E-7")]
    assert errors == []


async def test_refresh_forever_reports_failures_and_keeps_going() -> None:
    calls = 0
    stop = asyncio.Event()

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(500)
        stop.set()
        return httpx.Response(200, content=orjson.dumps(catalog_file()))

    books: list[PriceBook] = []
    errors: list[PriceRefreshError] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(flaky)) as client:
        await asyncio.wait_for(
            refresh_forever(PriceFeed(URL), client, 0.01, books.append, errors.append, stop=stop),
            5,
        )
    assert len(errors) == 1 and "HTTP 500" in str(errors[0])
    assert len(books) == 1
