"""Prices refreshed from a URL at start and on an interval, applied without a restart.

The URL serves a catalog in the public format the bundled snapshot comes from
(LiteLLM's `model_prices_and_context_window.json`, or a file of the same
shape). A refresh is fetch, parse, swap:

* `PriceFeed.fetch(client)` downloads it with the `httpx.AsyncClient` it is
  given (a conditional GET: an unchanged file answers 304 and is not parsed
  again), keeps the chat models of the providers tierline speaks to (the same
  trim as the bundled snapshot) and returns a `PriceBook`, or None when
  nothing changed. A download that is not JSON, too big, or has fewer priced
  models than `min_models` (an error page, a truncated file) raises
  `PriceRefreshError` and changes nothing.
* `Catalog.with_price_book(book)` is the swap: a new catalog whose models not
  pinned by a `price = {...}` in the config take the new prices, tiers
  re-sorted cheapest first. Assigning it where the old one was referenced is
  atomic for the asyncio tasks that read it.
* `refresh_forever(feed, client, interval_s, apply, on_error)` runs the loop:
  fetch at once, then every `interval_s`; `apply(book)` performs the swap,
  `on_error(exc)` hears about a failed refresh (the old prices stay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import orjson

from tierline.processors.pricing.prices.book import PriceBook
from tierline.processors.pricing.prices.build import trim

#: a download with fewer priced chat models than this is broken, not a price list
MIN_MODELS = 50
MAX_BYTES = 64 * 1024 * 1024


class PriceRefreshError(Exception):
    """A refresh failed; the prices in use stay as they were."""


def parse_price_catalog(raw: bytes, *, min_models: int = MIN_MODELS) -> PriceBook:
    """A price book from a catalog file's bytes; raises `PriceRefreshError` when unusable."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PriceRefreshError(f"price catalog is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceRefreshError(f"price catalog is a JSON {type(data).__name__}, not an object")
    book = PriceBook.from_catalog(trim(data))
    if len(book) < min_models:
        raise PriceRefreshError(
            f"price catalog has {len(book)} priced chat models, fewer than {min_models}"
        )
    return book


@dataclass
class PriceFeed:
    """Where prices come from, and what was last fetched from there (for conditional GETs)."""

    url: str
    timeout_s: float = 30.0
    min_models: int = MIN_MODELS
    max_bytes: int = MAX_BYTES
    _validators: dict[str, str] = field(default_factory=dict, repr=False)

    async def fetch(self, client: httpx.AsyncClient) -> PriceBook | None:
        """The catalog at `url` as a price book; None when it has not changed since last time."""
        headers = {"accept": "application/json"}
        if "etag" in self._validators:
            headers["if-none-match"] = self._validators["etag"]
        if "last-modified" in self._validators:
            headers["if-modified-since"] = self._validators["last-modified"]
        try:
            response = await client.get(self.url, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise PriceRefreshError(f"price catalog fetch failed: {type(exc).__name__}") from None
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise PriceRefreshError(f"price catalog fetch answered HTTP {response.status_code}")
        if len(response.content) > self.max_bytes:
            raise PriceRefreshError(f"price catalog is over {self.max_bytes} bytes")
        book = parse_price_catalog(response.content, min_models=self.min_models)
        self._validators = {
            k: v for k in ("etag", "last-modified") if (v := response.headers.get(k))
        }
        return book


async def refresh_forever(
    feed: PriceFeed,
    client: httpx.AsyncClient,
    interval_s: float,
    apply: Callable[[PriceBook], None],
    on_error: Callable[[PriceRefreshError], None],
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Fetch now and every `interval_s` until `stop` is set; `apply` each changed book."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            book = await feed.fetch(client)
        except PriceRefreshError as exc:
            on_error(exc)
        else:
            if book is not None:
                apply(book)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            continue
