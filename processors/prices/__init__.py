"""Per-token prices, exact: a bundled snapshot of a public catalog, overridable in config.

Prices are USD per token as `Decimal`, read from the catalog's JSON through
`str(float)`, which gives back the shortest decimal the catalog author wrote
(1.5e-07, not 1.4999999999999999e-07).
"""

from processors.prices.book import Price, PriceBook, bundled_price_book

__all__ = ["Price", "PriceBook", "bundled_price_book"]
