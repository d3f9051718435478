"""The model catalog: which models serve each tier, where they live, what they cost.

A tier's candidates are kept cheapest first (by a blended 3:1 input:output
price), which is the order a worker tries them in. Prices come from the bundled
public catalog unless the config file gives them (`price = {...}` on the
model, which pins it). A model's `provider` is its family (`openai`,
`anthropic`, `gemini`, `deepseek`, ...); its price is looked up by
`price_key`, else by its name with the family's catalog prefix
(`gemini/gemini-2.5-flash`), else by its bare name. Cache prices the catalog does
not list come from the multipliers the model's provider documents
(`processors.pricing.cache_rates`). `with_price_book()` reprices every model that
is not pinned from a newer price book (see `processors.prices.refresh`), without
a restart.

Each model also carries its capabilities (tools, images, json_schema: see
`processors.pricing.capabilities`), from the price catalog's `supports_*` flags,
overridden by the same keys on the model's entry (`supports_function_calling =
false`); a refresh reprices, it does not change them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from tierline.processors.errors import InputError
from tierline.processors.pricing.batch_rates import documented_batch_rates, has_batch_api
from tierline.processors.pricing.cache_rates import documented_cache_rates
from tierline.processors.pricing.capabilities import CATALOG_FLAGS, Capabilities
from tierline.processors.pricing.families import family_defaults
from tierline.processors.pricing.prices import Price, PriceBook, bundled_price_book
from tierline.schemas import ErrorType, Tier


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One callable model: the catalog's name for it and everything needed to call and bill it."""

    name: str
    provider: str
    model_id: str
    api_base: str
    key_env: str
    price: Price
    context_window: int | None = None
    max_output_tokens: int | None = None
    #: the price catalog key the price came from; "" when the config file pinned it
    price_key: str = ""
    #: the key's requests / tokens per minute for this model, when the operator knows them;
    #: the provider's own headers tighten them at run time (`processors.health`)
    rpm: int | None = None
    tpm: int | None = None
    #: what it can do beyond text; unknown unless the price catalog or the config says
    capabilities: Capabilities = Capabilities()


class CatalogError(ValueError):
    """The catalog file is wrong; the message says where."""


class Catalog:
    def __init__(self, models: Mapping[str, ModelSpec], tiers: Mapping[Tier, list[str]]) -> None:
        self.models = dict(models)
        self.tiers: dict[Tier, tuple[str, ...]] = {
            tier: tuple(sorted(names, key=lambda n: self._rank_price(n, tier)))
            for tier, names in tiers.items()
        }

    def _rank_price(self, name: str, tier: Tier) -> Decimal:
        """What a model costs on `tier`: its batch price on the batch lane, where it has a
        batch API (the lane sends it work through that API), else its synchronous price."""
        model = self.models[name]
        price = model.price
        if tier is Tier.BATCH and has_batch_api(model.provider) and price.batch_input is not None:
            return price.batch_blended()
        return price.blended()

    def candidates(self, tier: Tier) -> tuple[str, ...]:
        """The tier's models, cheapest first."""
        return self.tiers.get(tier, ())

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise InputError(f"unknown model {name!r}", ErrorType.UNKNOWN_MODEL) from None

    def with_simulator(self, url: str) -> Catalog:
        """The same catalog with every model served by the simulator at `url`."""
        models = {
            n: replace(m, api_base=family_defaults(m.provider).simulated_base(url))
            for n, m in self.models.items()
        }
        return Catalog(models, {t: list(ns) for t, ns in self.tiers.items()})

    def with_price_book(self, prices: PriceBook) -> Catalog:
        """The same catalog repriced from `prices`; pinned prices and unlisted models stay."""
        models = {}
        for name, m in self.models.items():
            listed = prices.get(m.price_key) if m.price_key else None
            models[name] = (
                replace(m, price=documented_rates(listed.price, m.provider))
                if listed is not None
                else m
            )
        return Catalog(models, {t: list(ns) for t, ns in self.tiers.items()})

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], prices: PriceBook | None = None) -> Catalog:
        """Build from the `[models.*]` and `[tiers]` tables of a config file."""
        prices = prices or bundled_price_book()
        models = {
            name: _model_spec(name, entry, prices)
            for name, entry in dict(raw.get("models", {})).items()
        }
        tiers: dict[Tier, list[str]] = {}
        for tier_name, names in dict(raw.get("tiers", {})).items():
            try:
                tier = Tier(tier_name)
            except ValueError:
                raise CatalogError(f"[tiers] {tier_name!r} is not a tier: {list(Tier)}") from None
            for name in names:
                if name not in models:
                    raise CatalogError(f"[tiers] {tier_name} lists {name!r}, not in [models]")
            tiers[tier] = list(names)
        for tier in Tier.ladder():
            if not tiers.get(tier):
                raise CatalogError(f"[tiers] {tier} has no models")
        return cls(models, tiers)


def _model_spec(name: str, entry: Mapping[str, Any], prices: PriceBook) -> ModelSpec:
    provider = str(entry.get("provider", ""))
    if not provider:
        raise CatalogError(f"[models.{name}] needs a provider")
    try:
        defaults = family_defaults(provider)
    except ValueError as exc:
        raise CatalogError(f"[models.{name}] {exc}") from None
    keys = (str(entry["price_key"]),) if "price_key" in entry else defaults.price_keys(name)
    price_key = next((k for k in keys if k in prices), keys[0])
    listed = prices.get(price_key)
    if "price" in entry:
        p = entry["price"]
        price = Price.per_million(
            Decimal(str(p["input"])),
            Decimal(str(p["output"])),
            _opt_dec(p.get("cached_input")),
            _opt_dec(p.get("cache_write")),
            _opt_dec(p.get("batch_input")),
            _opt_dec(p.get("batch_output")),
            cache_write_1h=_opt_dec(p.get("cache_write_1h")),
        )
    elif listed is not None:
        price = listed.price
    else:
        raise CatalogError(
            f"[models.{name}] has no price: {' or '.join(map(repr, keys))} not in the price "
            "catalog; give price = { input = ..., output = ... } (USD per 1M tokens)"
        )
    return ModelSpec(
        name=name,
        provider=provider,
        model_id=str(entry.get("model_id", name)),
        api_base=str(entry.get("api_base", defaults.api_base)).rstrip("/"),
        key_env=str(entry.get("key_env", defaults.key_env)),
        price=documented_rates(price, provider),
        context_window=entry.get("context_window") or (listed.max_input_tokens if listed else None),
        max_output_tokens=(
            entry.get("max_output_tokens") or (listed.max_output_tokens if listed else None)
        ),
        price_key="" if "price" in entry else price_key,
        rpm=_opt_limit(name, entry, "rpm"),
        tpm=_opt_limit(name, entry, "tpm"),
        capabilities=_capabilities(name, entry, listed.capabilities if listed else None),
    )


def _capabilities(name: str, entry: Mapping[str, Any], listed: Capabilities | None) -> Capabilities:
    """The catalog's flags, with the ones the config entry sets replacing them."""
    for flag in CATALOG_FLAGS.values():
        if flag in entry and not isinstance(entry[flag], bool):
            raise CatalogError(f"[models.{name}] {flag} must be true or false")
    return (listed or Capabilities()).overridden(entry)


def _opt_limit(name: str, entry: Mapping[str, Any], field: str) -> int | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CatalogError(f"[models.{name}] {field} must be a whole number >= 1, got {value!r}")
    return value


def documented_rates(price: Price, family: str) -> Price:
    """`price` with the cache and batch prices it lacks filled in from what `family`
    documents (`cache_rates`, `batch_rates`)."""
    return documented_batch_rates(documented_cache_rates(price, family), family)


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def default_catalog_config() -> dict[str, Any]:
    """The bundled catalog file, parsed."""
    text = (
        resources.files("tierline.processors.pricing").joinpath("default_catalog.toml").read_text()
    )
    return tomllib.loads(text)


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog from a config file's `[models]`/`[tiers]`, or the bundled default."""
    if path is None:
        return Catalog.from_config(default_catalog_config())
    raw = tomllib.loads(path.read_text())
    if "models" not in raw:
        return Catalog.from_config(default_catalog_config())
    return Catalog.from_config(raw)
