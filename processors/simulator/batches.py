"""The batch store: every batch the simulator holds, and the life each one goes through.

A batch is a list of items, each an id the client chose and a request body, sent in
one call; `*_batch` modules read and render each provider's shapes, this module
knows none of them. A batch is:

* *running* from its creation until `due_at` (creation plus its models'
  `batch_delay_s`);
* *ended* from then on: the first look after `due_at` answers every item at once,
  with the callable the server passes (each item as its synchronous route would
  answer that body, `SimulatorServer.answer_item`), and every later look sees the
  same answers. So an item is processed, and counted, once, and never before its
  batch ends;
* *canceling* after a cancel that came while it ran, until the next look ends it
  with every item canceled (the simulator has answered none of them yet). A cancel
  after it ended changes nothing;
* *failed* from the start when its submission did not validate (OpenAI checks its
  input file after the create call and says why in the batch's `errors`).

Everything is in memory and bounded: the store keeps at most `max_batches` (1,000)
batches, dropping the oldest first, and drops an ended batch `keep_s` (an hour)
after it ended; OpenAI's files (input, output, error) are bounded the same way.

The store also remembers which (route, custom id) pairs were submitted before, so
the server can count resubmissions (a crashed worker that sends its batch again).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Literal

__all__ = [
    "CANCELED",
    "EXPIRED",
    "Batch",
    "BatchItem",
    "BatchPhase",
    "BatchStore",
    "ItemAnswer",
    "ItemFate",
    "StoredFile",
]

ItemFate = Literal["answered", "expired", "canceled"]
BatchPhase = Literal["running", "canceling", "ended", "failed"]

_MAX_SUBMITTED = 1_000_000
"""(route, custom id) pairs remembered for the resubmission count before a reset."""


@dataclass(frozen=True, slots=True)
class ItemAnswer:
    """What became of one item: answered (with the status and body the synchronous route
    gives), expired, or canceled."""

    fate: ItemFate
    status: int = 0
    body: Any = None
    """The answer's JSON body; a string when the answer was not JSON (a garbled body)."""
    request_id: str = ""

    @property
    def ok(self) -> bool:
        """Answered with a 2xx."""
        return self.fate == "answered" and 200 <= self.status < 300


EXPIRED = ItemAnswer("expired")
CANCELED = ItemAnswer("canceled")


@dataclass(slots=True)
class BatchItem:
    """One request of a batch: the client's id for it and its body (parsed JSON)."""

    custom_id: str
    body: Any
    echo: Any = None
    """What the format hands back with the answer untouched (Gemini's `metadata`)."""


@dataclass(slots=True)
class Batch:
    """One batch and where it is in its life; timestamps are Unix seconds."""

    id: str
    route: str
    """The wire format's name ("openai", "anthropic", "gemini")."""
    items: list[BatchItem]
    created_at: float
    due_at: float
    path_model: str = ""
    """The model the create URL named (Gemini's), else ""."""
    info: dict[str, Any] = field(default_factory=dict)
    """The format's own fields of the batch (metadata, display name, input file id)."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Why the submission failed validation; empty for a batch that runs."""
    cancel_at: float | None = None
    ended_at: float | None = None
    answers: list[ItemAnswer] | None = None
    """One per item, in item order, once the batch ended."""

    @property
    def phase(self) -> BatchPhase:
        if self.errors:
            return "failed"
        if self.ended_at is not None:
            return "ended"
        return "running" if self.cancel_at is None else "canceling"

    def cancel(self, now: float) -> bool:
        """Ask a running batch to cancel; False when it is past that (ended or failed)."""
        if self.phase == "running":
            self.cancel_at = now
            return True
        return self.phase == "canceling"

    def settle(self, now: float, answer: Callable[[BatchItem], ItemAnswer]) -> bool:
        """Bring the batch up to `now`, answering its items if it is due; True when it ended
        in this call."""
        if self.ended_at is not None or self.errors:
            return False
        if self.cancel_at is not None:
            self.answers = [CANCELED] * len(self.items)
            self.ended_at = self.cancel_at
            return True
        if now < self.due_at:
            return False
        self.answers = [answer(item) for item in self.items]
        self.ended_at = self.due_at
        return True

    def tally(self) -> dict[str, int]:
        """The items by what became of them: processing, succeeded (a 2xx), errored (any
        other status), expired, canceled."""
        counts = dict.fromkeys(("processing", "succeeded", "errored", "expired", "canceled"), 0)
        if self.answers is None:
            counts["processing"] = 0 if self.errors else len(self.items)
            return counts
        for a in self.answers:
            if a.fate == "answered":
                counts["succeeded" if a.ok else "errored"] += 1
            else:
                counts[a.fate] += 1
        return counts

    def results(self) -> Iterable[tuple[BatchItem, ItemAnswer]]:
        """Each item with its answer (none before the batch ended)."""
        return zip(self.items, self.answers or (), strict=False)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file of the OpenAI Files API: an uploaded batch input, or a batch's output."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: float


class BatchStore:
    """The batches and files the simulator holds, bounded, and the ids it hands out."""

    def __init__(self, seed: int = 0, max_batches: int = 1000, keep_s: float = 3600.0) -> None:
        self.max_batches = max_batches
        self.keep_s = keep_s
        self._batches: dict[str, Batch] = {}
        self._files: dict[str, StoredFile] = {}
        self._submitted: set[tuple[str, str]] = set()
        self._seed = str(seed).encode()
        self._ids = itertools.count()

    def new_id(self, length: int = 24) -> str:
        """`length` hex digits, unique in this store and the same on every run of a seed."""
        h = blake2b(self._seed, digest_size=32)
        h.update(str(next(self._ids)).encode())
        return h.hexdigest()[:length]

    def add(self, batch: Batch, now: float) -> None:
        self._batches[batch.id] = batch
        self._prune(now)

    def get(self, batch_id: str) -> Batch | None:
        return self._batches.get(batch_id)

    def add_file(self, file: StoredFile) -> None:
        files = self._files
        files[file.id] = file
        while len(files) > 3 * self.max_batches:
            del files[next(iter(files))]

    def get_file(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def resubmitted(self, route: str, custom_ids: Iterable[str]) -> int:
        """How many of these ids (each counted once) this route had in an earlier batch;
        remembers them all."""
        submitted = self._submitted
        if len(submitted) >= _MAX_SUBMITTED:
            submitted.clear()
        keys = {(route, custom_id) for custom_id in custom_ids}
        again = len(keys & submitted)
        submitted |= keys
        return again

    def __len__(self) -> int:
        return len(self._batches)

    def _prune(self, now: float) -> None:
        batches = self._batches
        stale = [
            b.id
            for b in batches.values()
            if b.phase in ("ended", "failed") and (b.ended_at or b.created_at) < now - self.keep_s
        ]
        for batch_id in stale:
            del batches[batch_id]
        while len(batches) > self.max_batches:
            del batches[next(iter(batches))]
