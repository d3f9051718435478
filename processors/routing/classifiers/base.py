"""The one interface every classifier has."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tierline.schemas import RouteRequest


@dataclass(frozen=True, slots=True)
class Classification:
    """A classifier's verdict.

    `score` is continuous in [0, 1]: how likely the cheapest tier falls short on
    this request (0 = any model will do, 1 = only the strongest). `confidence`
    in [0, 1] says how sure the classifier is; the policy escalates when low.
    """

    task: str
    score: float
    confidence: float = 1.0
    reasons: tuple[str, ...] = field(default_factory=tuple)


class Classifier(Protocol):
    name: str

    def classify(self, request: RouteRequest) -> Classification: ...
