"""Per-token prices, exact: a bundled snapshot of a public catalog, overridable in config.

Prices are USD per token as `Decimal`, read from the catalog's JSON through
`str(float)`, which gives back the shortest decimal the catalog author wrote
(1.5e-07, not 1.4999999999999999e-07). `book` holds `Price` (input, cached
input, cache write, output, batch, long-context tiers) and `PriceBook`;
`build` trims the public catalog into the bundled snapshot (LiteLLM's, MIT:
`LICENSE-litellm.txt`); `refresh` fetches a newer catalog from a URL and
swaps it in while running.
"""

from tierline.processors.pricing.prices.book import Price, PriceBook, bundled_price_book

__all__ = ["Price", "PriceBook", "bundled_price_book"]
