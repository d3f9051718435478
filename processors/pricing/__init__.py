"""Pricing: which models serve each tier, where they live, and what each token costs.

`catalog` maps tiers to models; `families` says where a provider family lives and
which key it needs; `prices` holds per-token prices (a bundled snapshot, refreshed from
a URL); `cache_rates` fills in the cache prices a provider documents as multiples of
its input price; `cost` multiplies usage by price, exact to the nano-dollar. Imports
`errors`.
"""
