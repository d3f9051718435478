"""What evaluation routes with: anything that gives a prompt a score.

A `Scorer` here is deliberately smaller than a `Classifier`: one number per
example, higher = more in need of the strong model. `ClassifierScorer` adapts
any classifier (rules, learned) by sending it the request the application
would have sent. The two baselines every router must beat:

* `LengthScorer`: longer prompts go to the strong model first.
* `RandomScorer`: a seeded coin per prompt id (order-independent, so the same
  seed gives the same scores however the data is shuffled or filtered).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from tierline.processors.learning.datasets import RoutingExample
from tierline.processors.routing.classifiers.base import Classifier


class Scorer(Protocol):
    name: str

    def score(self, example: RoutingExample) -> float: ...


class ClassifierScorer:
    """Scores an example with a classifier, through the real `classify(request)` path."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.name = classifier.name

    def score(self, example: RoutingExample) -> float:
        return self.classifier.classify(example.to_request()).score


class LengthScorer:
    """The prompt-length heuristic: score rises with the prompt's characters."""

    name = "length"

    def score(self, example: RoutingExample) -> float:
        chars = len(example.text())
        return chars / (chars + 2000.0)


class RandomScorer:
    """A uniform score per prompt id, from a seeded hash: reproducible random routing."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, example: RoutingExample) -> float:
        digest = hashlib.blake2b(f"{self.seed}\0{example.id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64
