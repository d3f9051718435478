"""Pure-Python scoring of the TF-IDF learner: scikit-learn's `predict_proba`, without sklearn.

`tierline train --learner tfidf` fits a scikit-learn `TfidfVectorizer` (word
1-2-grams, sublinear tf, smooth idf, L2 normalisation) and a
`LogisticRegression` over it, optionally with the standardised dense prompt
features (`learned.DENSE_FEATURES`) as extra columns, and exports what scoring
needs into the JSON artifact: per term its idf and weight, the intercept, the
dense block's mean/scale/weights. This module reproduces the vectorizer and
the linear model in plain Python, so serving never imports sklearn or numpy:

* the text vectorized is the prompt's *ask*, lower-cased (`features.extract`'s
  `lowered`: the last paragraph after few-shot examples, capped at
  `ASK_CHARS`), the same text training vectorized; reading the ask rather than
  the whole prompt bounds the cost of scoring and scored as well on held-out
  data;
* tokens are `extract`'s own (`features.tokenize`: punctuation to spaces,
  split), which classification computes anyway; bigrams are two adjacent
  tokens joined by one space. Training hands sklearn the same terms through an
  analyzer callable (`analyze`), so the vocabulary is the same by construction;
* per vocabulary term, `(1 + ln tf) * idf`, divided by the L2 norm of that
  vector (terms outside the vocabulary count for nothing, as in sklearn, so
  scoring filters them out before it counts anything);
* `z = intercept + sum(weight * value) + dense block`, `p = 1 / (1 + e^-z)`.

The unit tests check it against sklearn's `predict_proba` to 1e-9.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierline.processors.routing.classifiers.features import extract, grams
from tierline.processors.routing.classifiers.hashed_terms import HASHING, ngram_ids

TOKENIZER = "tierline.features.tokenize(ask)"
#: the ask's first tokens the vectorizer reads (as the ngram learner's `MAX_TOKENS`): bounds
#: the cost of long asks, the p99 of scoring
MAX_TOKENS = 96


def prepare(text: str) -> str:
    """What the vectorizer reads: the ask's tokens (as `extract` gives them), space-joined."""
    return " ".join(extract(text).tokens[:MAX_TOKENS])


def analyze(prepared: str) -> list[str]:
    """The terms of `prepare`d text: its unigrams then its bigrams (sklearn's analyzer)."""
    return grams(prepared.split())


def terms(tokens: Sequence[str]) -> list[str]:
    """The unigrams then bigrams of the first `MAX_TOKENS` of `tokens`, repeats kept."""
    return grams(tokens[:MAX_TOKENS])


@dataclass(frozen=True)
class TfidfArtifact:
    """A fitted TF-IDF logistic regression, plus the training metadata."""

    intercept: float
    idf: Mapping[str, float]
    weights: Mapping[str, float]
    sublinear_tf: bool = True
    #: the standardised dense features appended to the tf-idf block (empty = none)
    dense_features: tuple[str, ...] = ()
    dense_mean: tuple[float, ...] = ()
    dense_scale: tuple[float, ...] = ()
    dense_weights: tuple[float, ...] = ()
    training: Mapping[str, Any] = field(default_factory=dict)
    #: terms are `hashed_terms` ids (as decimal strings), not words: fitted on stored
    #: feature records, and scored on the same ids (metadata terms included)
    hashed: bool = False

    def features_json(self) -> dict[str, Any]:
        return {
            "tfidf": {
                "tokenizer": TOKENIZER,
                "ngram_range": [1, 2],
                "sublinear_tf": self.sublinear_tf,
                "norm": "l2",
                "text": "ask",
                "max_tokens": MAX_TOKENS,
                "terms": HASHING if self.hashed else "text",
            },
            "dense": list(self.dense_features),
            "dense_mean": list(self.dense_mean),
            "dense_scale": list(self.dense_scale),
        }

    def weights_json(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "dense": list(self.dense_weights),
            # term -> [idf, weight]
            "terms": {t: [self.idf[t], self.weights[t]] for t in sorted(self.weights)},
        }

    @classmethod
    def from_parts(
        cls, features: Mapping[str, Any], weights: Mapping[str, Any], training: Mapping[str, Any]
    ) -> TfidfArtifact:
        config = features["tfidf"]
        if config.get("tokenizer") != TOKENIZER or config.get("norm") != "l2":
            raise ValueError(f"unsupported tf-idf configuration: {dict(config)}")
        low, high = (int(n) for n in config["ngram_range"])
        if (
            (low, high) != (1, 2)
            or config.get("text") != "ask"
            or config.get("max_tokens") != MAX_TOKENS
        ):
            raise ValueError(f"unsupported ngram_range {config['ngram_range']}")
        kind = config.get("terms", "text")
        if kind not in ("text", HASHING):
            raise ValueError(f"unsupported terms {kind!r} (this tierline hashes {HASHING})")
        terms = {str(t): (float(v[0]), float(v[1])) for t, v in weights["terms"].items()}
        artifact = cls(
            intercept=float(weights["intercept"]),
            idf={t: v[0] for t, v in terms.items()},
            weights={t: v[1] for t, v in terms.items()},
            sublinear_tf=bool(config["sublinear_tf"]),
            dense_features=tuple(str(n) for n in features.get("dense", ())),
            dense_mean=tuple(float(m) for m in features.get("dense_mean", ())),
            dense_scale=tuple(float(s) for s in features.get("dense_scale", ())),
            dense_weights=tuple(float(w) for w in weights.get("dense", ())),
            training=dict(training),
            hashed=kind == HASHING,
        )
        if artifact.hashed and not all(t.isdigit() for t in artifact.weights):
            raise ValueError("a hashed artifact's terms are ids")
        width = len(artifact.dense_features)
        if not (
            len(artifact.dense_mean)
            == len(artifact.dense_scale)
            == len(artifact.dense_weights)
            == width
        ) or any(s <= 0 for s in artifact.dense_scale):
            raise ValueError("the dense block's mean/scale/weights do not match its features")
        return artifact


class TfidfScorer:
    """The artifact's logit for a text (and the dense features, when the artifact has them).

    Per term it keeps `idf * weight` and `idf ** 2`: a term seen once (most are) adds
    those two to the dot product and the squared norm with no arithmetic.
    """

    def __init__(self, artifact: TfidfArtifact) -> None:
        self.artifact = artifact
        self.hashed = artifact.hashed
        self.sublinear = artifact.sublinear_tf
        terms = {
            t: (artifact.idf[t] * w, artifact.idf[t] ** 2) for t, w in artifact.weights.items()
        }
        self._terms = {} if artifact.hashed else terms
        self._ids = {int(t): v for t, v in terms.items()} if artifact.hashed else {}
        # unigrams and bigrams apart: a token is looked up among words, a pair among pairs
        self._words = frozenset(t for t in self._terms if " " not in t)
        self._pairs = frozenset(t for t in self._terms if " " in t)
        # Fold the dense standardisation into the weights: w * (x - m) / s.
        self.dense: tuple[float, ...] = tuple(
            w / s for w, s in zip(artifact.dense_weights, artifact.dense_scale, strict=True)
        )
        self.bias = artifact.intercept - math.fsum(
            w * m / s
            for w, m, s in zip(
                artifact.dense_weights, artifact.dense_mean, artifact.dense_scale, strict=True
            )
        )

    @property
    def uses_dense(self) -> bool:
        return bool(self.dense)

    def text_logit(
        self, tokens: Sequence[str], meta: Sequence[str] = ()
    ) -> tuple[float, str | None]:
        """(tf-idf part of the logit, the known term pushing it up most) of the ask's first
        `MAX_TOKENS` tokens. A hashed artifact reads the terms' ids, and the request's
        metadata terms (`meta`) with them.

        Only the terms in the vocabulary are counted (terms outside it count for
        nothing): a C-level filter drops the rest before anything is tallied.
        """
        tokens = tokens[:MAX_TOKENS]
        if self.hashed:
            return self.id_logit(ngram_ids(tuple(tokens), tuple(meta))), None
        known = Counter(filter(self._words.__contains__, tokens))
        pairs = map(" ".join, zip(tokens, tokens[1:], strict=False))
        known.update(filter(self._pairs.__contains__, pairs))
        if not known:
            return 0.0, None
        dot, square, best_term = self._add(self._terms, known, known.keys())
        return dot / math.sqrt(square), best_term

    def id_logit(self, ids: Mapping[int, int]) -> float:
        """The tf-idf part of the logit of a hashed artifact for term-id counts."""
        terms = self._ids
        found = terms.keys() & ids.keys()
        if not found:
            return 0.0
        dot, square, _term = self._add(terms, ids, found)
        return dot / math.sqrt(square)

    def _add(
        self, table: Mapping[Any, tuple[float, float]], counts: Mapping[Any, int], found: Any
    ) -> tuple[float, float, Any]:
        """(dot product, squared norm, the term of the largest contribution) over the
        `found` terms (all in `table`); a term's value is `tf(count) * idf`."""
        dot = square = best = 0.0
        best_term = None
        log, sublinear = math.log, self.sublinear
        for term in found:
            idf_weight, idf_square = table[term]
            count = counts[term]
            if count != 1:
                tf = (1.0 + log(count)) if sublinear else count
                idf_weight *= tf
                idf_square *= tf * tf
            dot += idf_weight
            square += idf_square
            if idf_weight > best:
                best, best_term = idf_weight, term
        return dot, square, best_term

    def logit(self, tokens: Sequence[str], dense: Sequence[float] = ()) -> float:
        z = self.bias + self.text_logit(tokens)[0]
        if self.dense:
            z += math.fsum(w * x for w, x in zip(self.dense, dense, strict=True))
        return z


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
