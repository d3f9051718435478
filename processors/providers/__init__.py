"""Provider adapters: one module per wire format, one registry, one HTTP exchange.

`registry.adapter_for(family)` gives the adapter; `call.call_model` performs the
exchange through a shared `httpx.AsyncClient`.
"""
