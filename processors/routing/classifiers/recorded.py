"""The features the router records for a request: hashed terms and the dense prompt features.

One pass (`features.extract`) gives both blocks the tf-idf learner reads: the
term-id counts (`hashed_terms`: the ask's unigrams and bigrams, plus the
request's metadata terms) and `learned.DENSE_FEATURES`. The router stores
them per request (`FeatureRecord`), and `tierline train --from-clickhouse`
fits on exactly these numbers, so a model trained from production sees what
the router saw.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tierline.processors.routing.classifiers.features import extract
from tierline.processors.routing.classifiers.hashed_terms import meta_terms, ngram_ids
from tierline.processors.routing.classifiers.learned import dense_features
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.processors.routing.classifiers.tfidf import MAX_TOKENS
from tierline.schemas import RouteRequest


@dataclass(frozen=True, slots=True)
class RecordedFeatures:
    #: term ids (in the order the prompt first uses them) and their counts
    term_ids: tuple[int, ...]
    term_counts: tuple[int, ...]
    #: `learned.DENSE_FEATURES`, in that order
    dense: tuple[float, ...]


def text_features(
    text: str, task_hint: str | None = None, meta: list[str] | None = None
) -> RecordedFeatures:
    """The recorded features of a prompt text (and metadata terms)."""
    features = extract(text)
    rules = RulesClassifier.verdict(features, task_hint)
    # the same ids a hashed classifier scored this request on (remembered: hashed once)
    ids: Counter[int] = ngram_ids(features.tokens[:MAX_TOKENS], tuple(meta or ()))
    return RecordedFeatures(
        term_ids=tuple(ids),
        term_counts=tuple(ids.values()),
        dense=dense_features(features, rules),
    )


def request_features(request: RouteRequest) -> RecordedFeatures:
    """The recorded features of a request: its prompt, task hint, feature and tenant."""
    meta = meta_terms(request.hints.task, request.metadata.feature, request.tenant)
    return text_features(request.prompt_text(), request.hints.task, meta)
