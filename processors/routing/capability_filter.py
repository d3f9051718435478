"""A model without what a request needs is no candidate: tools, images, json_schema.

`processors.pricing.capabilities` says what a request needs and what each model
is known to lack. The router keeps, of a tier's models, those that lack none of
it; when none of the decided tier's models qualifies, the nearest allowed tier
that has one serves the request (economy for the batch lane, then the tiers
above: a stronger model before a weaker one), and when no allowed tier has one
the request is refused with `no_candidate`, the reason naming the capability. A
model whose flags are unknown stays a candidate (its provider decides).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tierline.processors.errors import InputError
from tierline.processors.pricing.capabilities import Capability
from tierline.processors.pricing.catalog import ModelSpec
from tierline.schemas import ErrorType


@dataclass(frozen=True, slots=True)
class Fitted:
    """The candidates that can serve the request, in their order, and those dropped, why."""

    kept: list[str]
    #: "name (no tools)" for each dropped model
    dropped: list[str]


def fit(
    names: Iterable[str], needs: frozenset[Capability], models: Mapping[str, ModelSpec]
) -> Fitted:
    """Keep the models that lack none of `needs`; a model the catalog does not know stays
    (other checks drop it)."""
    kept: list[str] = []
    dropped: list[str] = []
    for name in names:
        spec = models.get(name)
        lacking = spec.capabilities.lacks(needs) if spec is not None and needs else []
        if lacking:
            dropped.append(f"{name} (no {', '.join(lacking)})")
        else:
            kept.append(name)
    return Fitted(kept, dropped)


def needs_label(needs: Iterable[Capability]) -> str:
    """`tools (function calling), image input (vision)`: the request's needs, in words."""
    return ", ".join(c.described for c in Capability if c in set(needs))


def no_capable_model(needs: frozenset[Capability], tried: Mapping[str, list[str]]) -> InputError:
    """The `no_candidate` refusal when no allowed tier has a model with what is needed."""
    where = "; ".join(
        f"{tier}: {', '.join(dropped) or 'no models'}" for tier, dropped in tried.items()
    )
    return InputError(
        f"no candidate model supports {needs_label(needs)}, which the request needs ({where})",
        ErrorType.NO_CANDIDATE,
    )


def pinned_lacks(name: str, lacking: list[Capability]) -> InputError:
    return InputError(
        f"model {name!r} does not support {needs_label(lacking)}, which the request needs",
        ErrorType.NO_CANDIDATE,
    )
