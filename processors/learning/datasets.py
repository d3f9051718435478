"""Routing datasets: prompts with each model's measured outcome on them.

A router is trained and judged on *outcomes*: for each prompt, how well each
model did (a score in [0, 1]) and, when known, what the call cost. Two file
formats hold them:

* JSONL, tierline's own: one object per line,
  `{"id": str, "prompt": str | [chat messages], "outcomes": {"<model>":
  {"score": 0..1, "cost_usd": optional}}}`.
* RouterBench-style wide CSV: `sample_id`, `prompt` (a Python-list string of
  turns, parsed with `ast.literal_eval`, never `eval`), optionally
  `eval_name`, and per model a score column named after the model plus
  `<model>|total_cost` (and `<model>|model_response`, ignored).

Both loaders are strict about what they promise (scores in [0, 1], costs
non-negative, ids present) and forgiving about what is merely missing: a model
without a score on a row is absent from that row's outcomes. Rows repeating an
id are dropped (the first wins) and counted.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierline.schemas import ChatMessage, RouteRequest

MAX_PROMPT_CHARS = 2_000_000
_CSV_META_COLUMNS = frozenset({"", "unnamed: 0", "sample_id", "prompt", "eval_name"})


class DatasetError(ValueError):
    """A dataset file that does not say what the format promises."""


@dataclass(frozen=True, slots=True)
class ModelOutcome:
    """How one model did on one prompt: quality in [0, 1] and, if known, the call's cost."""

    score: float
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class RoutingExample:
    """One prompt and every model's outcome on it."""

    id: str
    messages: tuple[ChatMessage, ...]
    outcomes: Mapping[str, ModelOutcome]
    source: str = ""

    def text(self) -> str:
        """The prompt's text, as `RouteRequest.prompt_text` would join it."""
        return "\n".join(message.text() for message in self.messages)

    def to_request(self, tenant: str = "evaluation") -> RouteRequest:
        """The request an application would have sent for this prompt."""
        return RouteRequest(id=self.id[:128], tenant=tenant, messages=list(self.messages))


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named set of routing examples, as loaded from one file."""

    name: str
    examples: tuple[RoutingExample, ...]
    duplicates: int = 0
    path: str | None = None
    models: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.examples)


def load_dataset(path: str | Path, name: str | None = None) -> Dataset:
    """Load a `.jsonl` / `.json` (tierline format) or `.csv` (RouterBench format) file."""
    path = Path(path)
    suffix = path.suffix.lower()
    name = name or path.stem
    if suffix in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8") as lines:
            return _dataset(name, str(path), parse_jsonl(lines, source=name))
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as rows:
            return _dataset(name, str(path), parse_routerbench_csv(rows, source=name))
    raise DatasetError(f"{path}: unknown dataset format {suffix!r} (want .jsonl or .csv)")


def parse_jsonl(lines: Iterable[str], source: str = "") -> Iterator[RoutingExample]:
    """Examples from tierline JSONL lines; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source or 'jsonl'}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: not JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: a line must be a JSON object")
        example_id = record.get("id")
        if not isinstance(example_id, str | int) or str(example_id) == "":
            raise DatasetError(f"{where}: `id` must be a non-empty string")
        raw_outcomes = record.get("outcomes")
        if not isinstance(raw_outcomes, dict):
            raise DatasetError(f"{where}: `outcomes` must be an object of model -> outcome")
        outcomes: dict[str, ModelOutcome] = {}
        for model, outcome in raw_outcomes.items():
            if isinstance(outcome, int | float):
                outcome = {"score": outcome}
            if not isinstance(outcome, dict) or "score" not in outcome:
                raise DatasetError(f"{where}: outcome of {model!r} needs a `score`")
            score = _score(outcome["score"], f"{where}: {model}")
            if score is not None:
                cost = _cost(outcome.get("cost_usd"), f"{where}: {model}")
                outcomes[str(model)] = ModelOutcome(score, cost)
        yield RoutingExample(
            id=str(example_id),
            messages=_messages(record.get("prompt"), where),
            outcomes=outcomes,
            source=str(record.get("source") or source),
        )


def parse_routerbench_csv(rows: Iterable[str], source: str = "") -> Iterator[RoutingExample]:
    """Examples from a RouterBench-style wide CSV (see the module docstring)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(rows)
    header = reader.fieldnames or []
    if "prompt" not in header:
        raise DatasetError(f"{source or 'csv'}: no `prompt` column")
    columns = set(header)
    models = [
        column
        for column in header
        if column.lower() not in _CSV_META_COLUMNS
        and "|" not in column
        and (f"{column}|total_cost" in columns or f"{column}|model_response" in columns)
    ]
    if not models:
        raise DatasetError(f"{source or 'csv'}: no model columns (want `<model>|total_cost`)")
    for number, row in enumerate(reader, start=2):
        where = f"{source or 'csv'}:{number}"
        example_id = row.get("sample_id") or row.get("") or row.get("Unnamed: 0") or str(number)
        outcomes: dict[str, ModelOutcome] = {}
        for model in models:
            score = _score(row.get(model), f"{where}: {model}")
            if score is not None:
                cost = _cost(row.get(f"{model}|total_cost"), f"{where}: {model}|total_cost")
                outcomes[model] = ModelOutcome(score, cost)
        yield RoutingExample(
            id=example_id,
            messages=_messages(_literal_prompt(row["prompt"] or "", where), where),
            outcomes=outcomes,
            source=row.get("eval_name") or source,
        )


def _dataset(name: str, path: str, examples: Iterable[RoutingExample]) -> Dataset:
    kept, duplicates = dedupe(examples)
    models = sorted({model for example in kept for model in example.outcomes})
    return Dataset(name, tuple(kept), duplicates, path, tuple(models))


def dedupe(examples: Iterable[RoutingExample]) -> tuple[list[RoutingExample], int]:
    """The examples with repeated ids dropped (first wins), and how many were dropped."""
    seen: set[str] = set()
    kept: list[RoutingExample] = []
    dropped = 0
    for example in examples:
        if example.id in seen:
            dropped += 1
            continue
        seen.add(example.id)
        kept.append(example)
    return kept, dropped


def _literal_prompt(raw: str, where: str) -> Any:
    """A RouterBench prompt cell: a Python list literal of turns, or plain text."""
    text = raw.strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise DatasetError(f"{where}: prompt longer than {MAX_PROMPT_CHARS:,} chars")
    if not text.startswith("["):
        return raw
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return raw


def _messages(prompt: Any, where: str) -> tuple[ChatMessage, ...]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DatasetError(f"{where}: empty prompt")
        return (ChatMessage(role="user", content=prompt),)
    if isinstance(prompt, list | tuple) and prompt:
        messages: list[ChatMessage] = []
        for turn in prompt:
            if isinstance(turn, str):
                messages.append(ChatMessage(role="user", content=turn))
            elif isinstance(turn, dict) and "role" in turn:
                try:
                    messages.append(ChatMessage.model_validate(turn))
                except ValueError as error:
                    raise DatasetError(f"{where}: bad chat message: {error}") from None
            else:
                raise DatasetError(f"{where}: a prompt turn must be a string or a chat message")
        return tuple(messages)
    raise DatasetError(f"{where}: `prompt` must be a string or a non-empty list of messages")


def _score(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: score {value!r} is not a number") from None
    if math.isnan(score):
        return None
    if not 0.0 <= score <= 1.0:
        raise DatasetError(f"{where}: score {score} outside [0, 1]")
    return score


def _cost(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        cost = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: cost {value!r} is not a number") from None
    if math.isnan(cost):
        return None
    if cost < 0 or math.isinf(cost):
        raise DatasetError(f"{where}: cost {cost} must be finite and >= 0")
    return cost
