"""JSON Schema of each topic's messages, for producers and consumers in other languages.

`python -m schemas.export` rewrites `schemas/jsonschema/`; a test fails when the
committed files drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tierline.schemas.alert import Alert
from tierline.schemas.attempt import Attempt
from tierline.schemas.batch import OpenBatch
from tierline.schemas.cache import CachedAnswer
from tierline.schemas.chunk import ResponseChunk
from tierline.schemas.cost import CostRecord
from tierline.schemas.features import FeatureRecord
from tierline.schemas.feedback import Feedback
from tierline.schemas.health import HealthSnapshot
from tierline.schemas.request import RouteRequest
from tierline.schemas.response import RouteResponse
from tierline.schemas.routed import RoutedRequest
from tierline.schemas.settlement import Settlement

TOPIC_MODELS: dict[str, type[BaseModel]] = {
    "tierline.requests": RouteRequest,
    "tierline.tier.TIER": RoutedRequest,
    "tierline.responses": RouteResponse,
    # a streamed request's chunks, on its reply topic before its response
    "tierline.responses.chunks": ResponseChunk,
    "tierline.costs": CostRecord,
    "tierline.feedback": Feedback,
    "tierline.features": FeatureRecord,
    "tierline.attempts": Attempt,
    "tierline.health": HealthSnapshot,
    "tierline.alerts": Alert,
    "tierline.settlements": Settlement,
    "tierline.cache": CachedAnswer,
    "tierline.batches": OpenBatch,
}
OUT_DIR = Path(__file__).parent / "jsonschema"


def topic_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, one per topic."""
    out: dict[str, str] = {}
    for topic, model in TOPIC_MODELS.items():
        schema: dict[str, Any] = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$comment"] = f"Messages on Kafka topic {topic}. Generated: python -m schemas.export"
        out[f"{topic}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    for name, text in topic_schemas().items():
        (OUT_DIR / name).write_text(text)
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
