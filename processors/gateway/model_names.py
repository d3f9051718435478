"""The model names the gateway answers to, and what each asks of routing.

    tierline/auto       route: the classifier and the policy pick the tier and model
    tierline/<tier>     pin a tier (economy, standard, premium, batch): min_tier =
                        max_tier = that tier; the cheapest healthy model of it answers
    <catalog model>     pin a model (`hints.model`): that model alone answers, on a
                        tier that lists it (processors/routing/decide.py)

Only models some tier lists are named: a catalog entry in no tier cannot be served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierline.processors.gateway.statuses import GatewayError
from tierline.processors.pricing.catalog import Catalog
from tierline.schemas import Hints, LatencyClass, Tier

AUTO = "tierline/auto"
TIER_PREFIX = "tierline/"
#: `owned_by` of the names that are tierline's rather than one provider's model
OWNER = "tierline"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """What a request's `model` asks for: nothing (auto), a tier, or one model."""

    tier: Tier | None = None
    model: str | None = None

    def hints(self, **more: Any) -> Hints:
        """The routing hints that keep this choice (with `more` hints beside them)."""
        if self.tier is Tier.BATCH:  # the batch lane is for batch latency only
            more["latency"] = LatencyClass.BATCH
        if self.tier is not None:
            more |= {"min_tier": self.tier, "max_tier": self.tier}
        if self.model is not None:
            more["model"] = self.model
        return Hints(**more)


def servable(catalog: Catalog) -> list[str]:
    """The catalog's models that some tier lists, in the catalog's order."""
    listed = {name for tier in Tier for name in catalog.candidates(tier)}
    return [name for name in catalog.models if name in listed]


def choose(name: str, catalog: Catalog) -> ModelChoice:
    """What `name` asks for; a `GatewayError` (400 `model_not_found`) for any other name."""
    if name == AUTO:
        return ModelChoice()
    if name.startswith(TIER_PREFIX):
        try:
            return ModelChoice(tier=Tier(name[len(TIER_PREFIX) :]))
        except ValueError:
            pass
    elif name in servable(catalog):
        return ModelChoice(model=name)
    raise GatewayError(
        400,
        f"The model {name!r} does not exist. Use {AUTO} (routed), "
        f"{TIER_PREFIX}<tier> ({', '.join(Tier)}) or a catalog model; "
        "GET /v1/models lists them all.",
        "model_not_found",
        "model",
        retry=False,
    )


def model_list(catalog: Catalog, created: int) -> dict[str, Any]:
    """`GET /v1/models` in OpenAI's list format: auto, each tier, each servable model."""
    names = [(AUTO, OWNER)] + [(f"{TIER_PREFIX}{tier}", OWNER) for tier in Tier]
    names += [(name, catalog.models[name].provider) for name in servable(catalog)]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": owner}
            for name, owner in names
        ],
    }
