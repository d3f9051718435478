"""The demo workload: ~300 realistic chat requests from four tenants and nine features.

`streams/data/workload.jsonl` holds one request per line, in the `RouteRequest`
shape minus `id`: `messages`, optional `params`/`hints`, `metadata.feature` and
`tenant`, plus two labels that are not part of the request, `expected_task`
(classification, extraction, summarization, translation, qa, rewrite, chat,
creative, code, sql, math, reasoning) and `difficulty` (easy, medium, hard;
roughly 55/30/15). `demo_requests` turns the entries into requests and moves the
labels into `metadata.tags` (`expected_task`, `expected_difficulty`), where a
classifier check can read them without the router seeing them as hints.
"""

from __future__ import annotations

import json
import random
from functools import cache
from importlib import resources
from typing import Any

from tierline.schemas import RouteRequest

WORKLOAD_PACKAGE = "tierline.streams.data"
WORKLOAD_FILE = "workload.jsonl"

#: Every `expected_task` label the workload uses.
TASKS: tuple[str, ...] = (
    "classification",
    "extraction",
    "summarization",
    "translation",
    "qa",
    "rewrite",
    "chat",
    "creative",
    "code",
    "sql",
    "math",
    "reasoning",
)
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")

# Keys of an entry that are labels for checking, not part of the request.
_LABELS = ("expected_task", "difficulty")


@cache
def _workload_text() -> str:
    return resources.files(WORKLOAD_PACKAGE).joinpath(WORKLOAD_FILE).read_text(encoding="utf-8")


def load_workload() -> list[dict[str, Any]]:
    """Every workload entry, in file order; freshly parsed, so callers may mutate them."""
    return [json.loads(line) for line in _workload_text().splitlines() if line.strip()]


def to_request(entry: dict[str, Any], request_id: str) -> RouteRequest:
    """A workload entry as a `RouteRequest`, its labels moved into `metadata.tags`."""
    metadata = dict(entry.get("metadata") or {})
    tags = dict(metadata.get("tags") or {})
    tags["expected_task"] = entry["expected_task"]
    if "difficulty" in entry:
        tags["expected_difficulty"] = entry["difficulty"]
    metadata["tags"] = tags
    fields = {key: value for key, value in entry.items() if key not in _LABELS}
    return RouteRequest.model_validate({**fields, "id": request_id, "metadata": metadata})


def demo_requests(n: int, seed: int) -> list[RouteRequest]:
    """`n` requests drawn from the workload, ids `demo-<seed>-<i>`; same arguments, same list.

    The workload is walked in a seeded random order, reshuffled on every pass, so
    each entry appears once before any appears twice and `n` may exceed its size.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    entries = load_workload()
    rng = random.Random(seed)
    order: list[int] = []
    requests: list[RouteRequest] = []
    for i in range(n):
        if not order:
            order = list(range(len(entries)))
            rng.shuffle(order)
        requests.append(to_request(entries[order.pop()], f"demo-{seed}-{i}"))
    return requests
