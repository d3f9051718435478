"""The router's decision for one request, a pure function: classify, decide, attach candidates."""

from __future__ import annotations

from datetime import UTC, datetime

from processors.catalog import Catalog
from processors.classifier import Classifier
from processors.errors import InputError
from processors.policy import RoutingPolicy
from schemas import ErrorType, RoutedRequest, RouteRequest


def route(
    request: RouteRequest, classifier: Classifier, policy: RoutingPolicy, catalog: Catalog
) -> RoutedRequest:
    """The request, its decision, and its tier's models cheapest first."""
    decision = policy.decide(request, classifier.classify(request))
    candidates = catalog.candidates(decision.tier)
    if not candidates:
        raise InputError(
            f"tier {decision.tier} has no models in the catalog", ErrorType.NO_CANDIDATE
        )
    return RoutedRequest(
        request=request,
        decision=decision,
        candidates=list(candidates),
        routed_at=datetime.now(UTC),
    )
