"""Hashed terms: what the router stores of a prompt instead of its text, and learns from.

To learn from production, tierline needs the features of every routed request
next to what came of it, but it must not keep the prompts. So each request's
terms — the tf-idf learner's own (`tfidf.terms`: the unigrams and
bigrams of the ask's first `MAX_TOKENS` tokens) plus a few metadata terms
(`meta_terms`: the task hint, the feature, the tenant; difficulty differs by
feature) — are reduced to 20-bit ids (`zlib.crc32`, masked) with their counts.
That record is what ClickHouse keeps (`FeatureRecord`), what `tierline train
--from-clickhouse` fits a tf-idf model on, and what a *hashed* tf-idf artifact
scores at route time (its weights are keyed by id, so training and serving
read the very same features).

What this does and does not protect: no text, no word order beyond adjacent
pairs, and collisions (~1M buckets) blur the rest. It is not anonymisation: a
dictionary attack (hash every English word and pair) recovers which common
words a prompt used. Rare strings (names, numbers, secrets) are as exposed as
their guessability. Teams that need more keep `record_features = false`.
"""

from __future__ import annotations

import operator
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import repeat

from tierline.processors.routing.classifiers.features import grams

#: the id space: 2**20 buckets, as sklearn's HashingVectorizer default
HASH_BITS = 20
_MASK = (1 << HASH_BITS) - 1
#: names the hashing in artifacts and records, so ids from another scheme are refused
HASHING = f"crc32/{HASH_BITS}"
#: metadata terms are marked so they never collide by spelling with a prompt word
_META = "\x00"
_encode = operator.methodcaller("encode", "utf-8", "surrogatepass")


def term_id(term: str) -> int:
    """The id of one term."""
    return zlib.crc32(_encode(term)) & _MASK


def meta_terms(task: str | None, feature: str | None, tenant: str | None) -> list[str]:
    """The request's metadata as terms (`task=...`, `feature=...`, `tenant=...`)."""
    pairs = (("task", task), ("feature", feature), ("tenant", tenant))
    return [f"{_META}{name}={value}" for name, value in pairs if value]


def hashed_counts(terms: Iterable[str], meta: Iterable[str] = ()) -> Counter[int]:
    """The ids of `terms` (repeats counted) and of the metadata terms, with their counts;
    colliding terms add up. C-level maps only: this runs on every routed request."""
    ids = Counter(map(operator.and_, map(zlib.crc32, map(_encode, terms)), repeat(_MASK)))
    ids.update(map(term_id, meta))
    return ids


@lru_cache(maxsize=64)
def ngram_ids(tokens: tuple[str, ...], meta: tuple[str, ...] = ()) -> Counter[int]:
    """`hashed_counts` of the unigrams then bigrams of `tokens` (`tfidf.terms` of them) and
    of the metadata terms: the same ids, computed faster, and remembered for the last few
    requests (the classifier and the feature record of one request both ask; callers must
    not change the result).

    ASCII tokens (nearly all) are hashed as bytes cut from one encoded line: no
    per-term `encode`. The tokens hold no whitespace (they come from `str.split`),
    so splitting that line gives them back exactly.
    """
    line = " ".join(tokens)
    if not line.isascii():
        return hashed_counts(grams(tokens), meta)
    words = line.encode().split()
    grams_b = [*words, *map(b" ".join, zip(words, words[1:], strict=False))]
    ids = Counter(map(operator.and_, map(zlib.crc32, grams_b), repeat(_MASK)))
    if meta:
        ids.update(map(term_id, meta))
    return ids


def as_document(ids: Sequence[int], counts: Sequence[int]) -> str:
    """Stored ids and counts as the text a vectorizer reads: each id, `count` times."""
    return " ".join(str(i) for i, n in zip(ids, counts, strict=True) for _ in range(n))
