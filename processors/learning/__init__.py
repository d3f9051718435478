"""Measuring routers offline: routing datasets, baselines, and RouteLLM/RouterBench metrics.

`datasets` loads prompts with each model's outcome (tierline JSONL or
RouterBench CSV); `routers` turns a classifier or a baseline into one score per
prompt; `metrics` reads APGR, CPT, cost savings and AIQ off the routing curve;
`harness` puts them together. Pure and deterministic: no Kafka, no network.
"""

from tierline.processors.learning.datasets import (
    Dataset,
    DatasetError,
    ModelOutcome,
    RoutingExample,
    load_dataset,
    parse_jsonl,
    parse_routerbench_csv,
)
from tierline.processors.learning.harness import RouterEvaluation, evaluate, evaluate_router, paired
from tierline.processors.learning.metrics import (
    CurvePoint,
    RoutingCurve,
    aiq,
    apgr,
    cpt,
    routing_curve,
)
from tierline.processors.learning.scorers import (
    ClassifierScorer,
    LengthScorer,
    RandomScorer,
    Scorer,
)

__all__ = [
    "ClassifierScorer",
    "CurvePoint",
    "Dataset",
    "DatasetError",
    "LengthScorer",
    "ModelOutcome",
    "RandomScorer",
    "Scorer",
    "RouterEvaluation",
    "RoutingCurve",
    "RoutingExample",
    "aiq",
    "apgr",
    "cpt",
    "evaluate",
    "evaluate_router",
    "load_dataset",
    "paired",
    "parse_jsonl",
    "parse_routerbench_csv",
    "routing_curve",
]
