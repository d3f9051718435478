"""Learning from production: the text classifier trained on the team's own scored requests.

The router records every routed request's hashed features (`request_features`);
applications send feedback (`feedback`); the `decisions` view says which tier
served each request. Joined by request id, they say, per request, how the
answer it got was judged. The classifier's score means "the cheapest tier
falls short on this request", so the outcomes that teach it are:

* a request the weak tier (`weak_tier`, default economy) answered and the
  application scored: label `1 - score` (a thumbs-down is 1, a perfect
  grade 0, a 0.7 grade a 0.3 shortfall);
* a cascade that escalated: the weak tier's answer failed its check, label 1,
  whatever the escalated answer was judged (both answers of a cascade are an
  outcome pair for free).

Requests a stronger tier served and scored say nothing about the weak tier,
so they do not enter the labels; they give the strong tier's quality, which
the shadow comparison (`shadow_compare`) needs. Selection bias is the
trap: the weak tier sees only what the router already thought easy, so a
model trained on those alone learns little about the rest. Experiment arms
(`[[experiments]]`, a random share of traffic sent to the weak tier whatever
its score) are the unbiased sample; the README says how large a share to run.

Scoring reuses the offline harness: each labelled request becomes a
`RoutingExample` with the weak tier's observed quality (`1 - label`) and the
strong tier's mean judged quality (imputed: one request is answered by one
tier), so APGR, CPT50/80 and the saving at 95% quality mean what they mean
on the public datasets, on the team's own traffic.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tierline.processors.learning.datasets import ModelOutcome, RoutingExample
from tierline.processors.learning.harness import evaluate
from tierline.processors.learning.metrics import auroc, brier_score
from tierline.processors.learning.tfidf_training import TfidfOptions, fit_documents
from tierline.processors.routing.classifiers.hashed_terms import HASHING, as_document
from tierline.processors.routing.classifiers.learned import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    DENSE_FEATURES,
    LearnedClassifier,
)
from tierline.processors.routing.classifiers.tfidf import TfidfArtifact

CASCADE_ESCALATED = "cascade: "
#: the two "models" of the harness: the weak tier as observed, the strong tier imputed
WEAK, STRONG = "weak", "strong"

ROWS_SQL = """
SELECT
    f.request_id, f.tenant, f.hashing, f.term_ids, f.term_counts, f.dense, f.dense_names,
    f.score, f.artifact, d.tier, d.feedback_score, d.reasons, toFloat64(d.cost_usd)
FROM (
    SELECT request_id, tenant, hashing, term_ids, term_counts, dense, dense_names, score,
           artifact
    FROM request_features FINAL
    WHERE created_at >= {since:DateTime64(3)} AND created_at < {until:DateTime64(3)}
    {tenant_filter}
) AS f
INNER JOIN decisions AS d ON d.request_id = f.request_id AND d.tenant = f.tenant
"""


class ProductionDataError(ValueError):
    """Not enough (or unusable) production signal to train or compare on."""


@dataclass(frozen=True, slots=True)
class ScoredRequest:
    """One recorded request and what came of it."""

    request_id: str
    tenant: str
    ids: Mapping[int, int]
    dense: tuple[float, ...]
    #: the score the router gave it at the time, and the artifact that gave it
    routed_score: float
    artifact: str
    #: the tier whose answer the request got, its mean feedback score (None = unscored)
    tier: str
    feedback: float | None
    escalated: bool
    cost_usd: float

    def document(self) -> str:
        ids = sorted(self.ids)
        return as_document(ids, [self.ids[i] for i in ids])


@dataclass(frozen=True, slots=True)
class Labelled:
    request: ScoredRequest
    #: how far the weak tier fell short, in [0, 1]
    label: float
    why: str


def read_scored(
    client: Any,
    *,
    since: datetime.datetime,
    until: datetime.datetime,
    tenant: str | None = None,
) -> list[ScoredRequest]:
    """Every recorded request in [since, until) (of `tenant`) joined to its decision."""
    sql = ROWS_SQL.replace("{tenant_filter}", "AND tenant = {tenant:String}" if tenant else "")
    parameters: dict[str, Any] = {"since": since, "until": until}
    if tenant:
        parameters["tenant"] = tenant
    out = []
    for row in client.query(sql, parameters=parameters).result_rows:
        (rid, ten, hashing, ids, counts, dense, names, score, artifact) = row[:9]
        tier, feedback, reasons, cost = row[9:]
        if hashing != HASHING or tuple(names) != DENSE_FEATURES:
            continue  # recorded by another tierline's scheme: not comparable
        out.append(
            ScoredRequest(
                request_id=rid,
                tenant=ten,
                ids=dict(zip((int(i) for i in ids), (int(n) for n in counts), strict=True)),
                dense=tuple(float(x) for x in dense),
                routed_score=float(score),
                artifact=str(artifact),
                tier=str(tier),
                feedback=None if feedback is None or math.isnan(feedback) else float(feedback),
                escalated=any(str(r).startswith(CASCADE_ESCALATED) for r in reasons),
                cost_usd=float(cost),
            )
        )
    return out


def labelled(requests: Sequence[ScoredRequest], weak_tier: str) -> list[Labelled]:
    """The requests that say how the weak tier did, with that as their label."""
    out = []
    for r in requests:
        if r.escalated:
            out.append(Labelled(r, 1.0, "cascade escalated"))
        elif r.tier == weak_tier and r.feedback is not None:
            out.append(Labelled(r, round(1.0 - r.feedback, 9), "weak tier scored"))
    return out


def _check(rows: Sequence[Labelled], weak_tier: str, min_signals: int) -> None:
    if len(rows) < min_signals:
        raise ProductionDataError(
            f"{len(rows)} scored requests tell how tier {weak_tier!r} did (answers it gave "
            f"that feedback scored, and cascades it escalated); at least {min_signals} are "
            "needed: send feedback for more requests, or run an experiment that sends a "
            "share of traffic to that tier (see the README, 'Learning from production')"
        )
    if len({row.label > 0.5 for row in rows}) < 2:
        raise ProductionDataError(
            f"every scored answer of tier {weak_tier!r} was judged the same way "
            "(all good or all short): nothing to learn"
        )


def train_from_production(
    requests: Sequence[ScoredRequest],
    *,
    weak_tier: str = "economy",
    min_signals: int = 30,
    options: TfidfOptions | None = None,
    created_at: str | None = None,
    window: tuple[str, str] | None = None,
) -> TfidfArtifact:
    """A hashed tf-idf artifact fitted on the labelled requests; `ProductionDataError` when
    there are too few."""
    options = options or TfidfOptions()
    rows = labelled(requests, weak_tier)
    _check(rows, weak_tier, min_signals)
    documents = [row.request.document() for row in rows]
    # recorded requests are fitted by log loss, not APGR: "cv" keeps the dense features
    dense = (
        np.array([row.request.dense for row in rows], dtype=np.float64) if options.dense else None
    )
    y = np.array([row.label for row in rows], dtype=np.float64)
    fitted, c, grid = fit_documents(documents, dense, y, options)
    reasons: dict[str, int] = {}
    for row in rows:
        reasons[row.why] = reasons.get(row.why, 0) + 1
    metadata: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "learner": "tfidf",
        "source": "production",
        "weak_tier": weak_tier,
        "label": f"1 - feedback score of tier {weak_tier}'s answer; 1 for a cascade escalation",
        "created_at": created_at,
        "window": list(window) if window else None,
        "examples": len(rows),
        "examples_by_kind": reasons,
        "positive_rate": round(float(y.mean()), 6),
        "vocabulary": len(fitted.weights),
        "C": c,
        "cv_log_loss_by_C": {str(k): v for k, v in grid.items()},
        "hashing": HASHING,
    }
    return TfidfArtifact(
        intercept=fitted.intercept,
        idf=fitted.idf,
        weights=fitted.weights,
        dense_features=fitted.dense_features,
        dense_mean=fitted.dense_mean,
        dense_scale=fitted.dense_scale,
        dense_weights=fitted.dense_weights,
        training=metadata,
        hashed=True,
    )


def shadow_compare(
    requests: Sequence[ScoredRequest],
    candidate: LearnedClassifier,
    *,
    weak_tier: str = "economy",
    min_signals: int = 30,
) -> dict[str, Any]:
    """The candidate against the deployed router (the scores recorded at route time) on the
    same recent scored traffic: APGR, CPT50/80, saving at 95% quality, Brier, AUC."""
    rows = labelled(requests, weak_tier)
    _check(rows, weak_tier, min_signals)
    strong_scored = [
        r.feedback
        for r in requests
        if r.tier != weak_tier and r.feedback is not None and not r.escalated
    ]
    strong_quality = float(np.mean(strong_scored)) if strong_scored else None
    weak_cost = _mean([r.cost_usd for r in requests if r.tier == weak_tier and not r.escalated])
    strong_cost = _mean([r.cost_usd for r in requests if r.tier != weak_tier and not r.escalated])
    candidate_scores = [
        candidate.score_recorded(row.request.ids, row.request.dense) for row in rows
    ]
    deployed_scores = [row.request.routed_score for row in rows]
    labels = [row.label for row in rows]
    examples = None
    if strong_quality is not None:
        examples = [
            RoutingExample(
                id=row.request.request_id,
                messages=(),
                outcomes={
                    WEAK: ModelOutcome(1.0 - row.label, weak_cost),
                    STRONG: ModelOutcome(strong_quality, strong_cost),
                },
            )
            for row in rows
        ]
    out: dict[str, Any] = {
        "weak_tier": weak_tier,
        "labelled": len(rows),
        "strong_scored": len(strong_scored),
        "strong_quality_imputed": strong_quality,
        "deployed_artifacts": sorted({row.request.artifact for row in rows}),
        "routers": {},
    }
    for name, scores in (("deployed", deployed_scores), ("candidate", candidate_scores)):
        auc = auroc(scores, [float(label > 0.5) for label in labels])
        entry: dict[str, Any] = {
            "brier": round(brier_score(scores, labels), 6),
            "auc": None if auc is None else round(auc, 6),
        }
        if examples is not None:
            result = evaluate(examples, scores, STRONG, WEAK, router=name)
            entry |= {
                "apgr": result.apgr,
                "cpt50": result.cpt50,
                "cpt80": result.cpt80,
                "saving_at_95": result.saving_at_95,
            }
        out["routers"][name] = entry
    if examples is None:
        out["note"] = (
            "no scored answers from tiers above the weak one: APGR/CPT need the strong tier's "
            "quality; only Brier and AUC are reported"
        )
    return out


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None
