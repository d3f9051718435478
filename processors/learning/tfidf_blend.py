"""The tfidf learner's logit blended with two priors, the mix chosen on data it has not seen.

The text model ranks prompts well on the data it was fitted on and poorly on other data:
its vocabulary is the training benchmarks' vocabulary. The rules' score and the prompt's
length carry what transfers (structure, length). Measured on the RouterBench subsets
(ARC, MBPP, Winogrande), strong gpt-4-1106-preview, each of the ten other models as the
weak one, mean APGR (throwaway scripts; `bench/router_quality.py --weak all
--pair-outcomes --leave-one-out` measures the same):

* in distribution (each set halved by a hash of the id, trained on one half with only
  the two models' outcomes, 60 set/weak/seed pairs): the text model alone 0.536,
  sklearn tf-idf + LR 0.535, ngram 0.517, length 0.493;
* leave one set out (fitted on the other two, 30 set/weak pairs): rules 0.548, ngram
  0.522, length 0.510, the text model alone 0.507; this blend 0.544.

So the mix `(1 - rules - length) * z(logit) + rules * z(rules) + length * z(length)`,
each part standardised, is chosen from `GRID` by mean APGR over datasets of held-out
scores where each dataset is scored by a model fitted on the others (leave one dataset
out): the mix that does best on a benchmark the text model never saw is the one to
serve on traffic that is none of them. On one dataset (a team's own traffic) no mix is
chosen (`tfidf_training._blend` says why); a given mix is standardised on its k-fold
held-out scores.

The chosen mix is folded into the artifact's weights (the rules' score and the length
are dense features already), so serving is unchanged: one linear model, one sigmoid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from tierline.processors.learning.blending import BLEND_FEATURES
from tierline.processors.learning.fitting import FloatArray
from tierline.processors.routing.classifiers.tfidf import TfidfArtifact

Blend = tuple[float, float]

#: Candidate (rules, length) weights, least blending first (ties keep the first). Up to the
#: rules alone: left out, a dataset is often ranked best by the rules with no text at all
#: (chosen on 14 of the 30 pairs above; capped at rules 0.5, the blend scored 0.532).
GRID: tuple[Blend, ...] = tuple(
    (rules, length)
    for rules in (0.0, 0.25, 0.5, 0.75, 1.0)
    for length in (0.0, 0.15, 0.3)
    if rules + length <= 1.0
)


@dataclass(frozen=True, slots=True)
class Standardised:
    """Held-out parts of the blend, each standardised: logit, rules' score, length."""

    parts: FloatArray
    #: the held-out logits' mean and spread: what standardises the served logit
    logit_mean: float
    logit_scale: float


def standardise(held_out: FloatArray, dense: FloatArray, artifact: TfidfArtifact) -> Standardised:
    """The blend's parts for every example (the logit's is NaN where it has no held-out
    logit, and so is any mix of it).

    The priors are standardised as the artifact standardises its dense features, so the
    weights chosen here fold into the artifact exactly.
    """
    finite = held_out[np.isfinite(held_out)]
    mean = float(finite.mean()) if len(finite) else 0.0
    spread = float(finite.std()) if len(finite) > 1 else 0.0
    spread = spread if spread > 1e-9 else 1.0
    parts = np.empty((len(held_out), 3))
    parts[:, 0] = (held_out - mean) / spread
    for k, name in enumerate(BLEND_FEATURES, start=1):
        j = artifact.dense_features.index(name)
        parts[:, k] = (dense[:, j] - artifact.dense_mean[j]) / artifact.dense_scale[j]
    return Standardised(parts, mean, spread)


def mixed(parts: FloatArray, blend: Blend) -> FloatArray:
    rules, length = blend
    result: FloatArray = parts @ np.array([1.0 - rules - length, rules, length])
    return result


def choose(
    standardised: Standardised, score: Callable[[FloatArray], float]
) -> tuple[Blend, dict[Blend, float]]:
    """The blend from `GRID` whose mixed held-out scores `score` rates best (ties keep the
    least blending); and every candidate's rating."""
    grid = {candidate: score(mixed(standardised.parts, candidate)) for candidate in GRID}
    return max(grid, key=grid.__getitem__), grid


def fold_in(artifact: TfidfArtifact, blend: Blend, standardised: Standardised) -> TfidfArtifact:
    """The artifact whose logit is the blend: its own logit standardised by the held-out
    logits' mean and spread, plus the priors' weights on their (standardised) dense
    features. Unchanged for the blend (0, 0)."""
    rules, length = blend
    if (rules, length) == (0.0, 0.0):
        return artifact
    if not (rules >= 0 and length >= 0 and rules + length <= 1):
        raise ValueError(f"blend weights must be >= 0 and sum to <= 1: {blend}")
    k = (1.0 - rules - length) / standardised.logit_scale
    dense = [k * w for w in artifact.dense_weights]
    for weight, name in zip(blend, BLEND_FEATURES, strict=True):
        dense[artifact.dense_features.index(name)] += weight
    return replace(
        artifact,
        intercept=k * (artifact.intercept - standardised.logit_mean),
        weights={t: k * w for t, w in artifact.weights.items()},
        dense_weights=tuple(dense),
    )
