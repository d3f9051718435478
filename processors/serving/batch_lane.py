"""The batch lane on the providers' batch APIs: collect, submit, poll, answer each request.

A request on the batch tier whose model has a batch API (`pricing.batch_rates`)
is not called: `BatchLane.answer` adds it to the model's pending batch and waits.
A pending batch is submitted when it holds `max_requests` items or its oldest
has waited `max_wait_s`; it is then *journaled* (`BatchJournal.opened`: on Kafka,
the compacted `tierline.batches`), and polled every `poll_s` until the provider
says it ended. Each waiting request then gets its item's result: a reply (billed
by the walk at the batch price), a typed error, or `ItemLost` (expired,
cancelled, failed batch), which the walk retries synchronously once or answers
as an error (`lost`).

Nothing here commits anything. The worker keeps a batched request's offset
unfinished while it waits, as for any request in flight, so a crash redelivers
it; `answer` for a redelivered request finds its item in a journaled batch (its
`custom_id` is derived from the request and the model, so it is the same id) and
waits for that batch instead of submitting it again. A batch is closed in the
journal once the worker has published every item's answer (`answered`), or
`claim_grace_s` after it ended (items whose requests never came back were
answered before the crash, or went to another worker). The one window left: a
crash between the provider accepting a batch and the journal record being
durable (milliseconds) resubmits that batch's requests.

Several workers processes share the journal: before submitting, the lane reads
what the others journaled (`BatchJournal.catch_up`), so a request another
process had submitted before a rebalance is not submitted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Literal, Protocol

import httpx

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.batch_rates import has_batch_api
from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.batch import ItemLost, ItemResult, batch_api_for
from tierline.schemas import OpenBatch, RouteRequest

log = logging.getLogger("tierline.batch")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When batches are cut, how often they are polled, and what a lost item becomes."""

    #: a pending batch is submitted at this many requests ...
    max_requests: int = 1000
    #: ... or once its oldest request has waited this long
    max_wait_s: float = 60.0
    #: how often an open batch's status is asked
    poll_s: float = 30.0
    #: an ended batch is closed this long after it ended, even if some items were not
    #: asked for again
    claim_grace_s: float = 600.0
    #: a batch not ended after this long is given up: its items are lost
    max_age_s: float = 25 * 3600.0
    #: a lost item: "sync" = call the model synchronously once, "error" = answer an error
    lost: Literal["sync", "error"] = "sync"


class BatchJournal(Protocol):
    """Where open batches are kept durably, shared by every workers process."""

    async def opened(self, batch: OpenBatch) -> None:
        """Journal `batch`; returns once it is durable."""
        ...

    async def closed(self, key: str) -> None:
        """Forget the batch `key` (every item answered, or long ended)."""
        ...

    async def catch_up(self) -> None:
        """Feed the lane (`BatchLane.learned` / `forgot`) everything journaled until now."""
        ...


def custom_id_for(model: ModelSpec, request: RouteRequest) -> str:
    """The item id of `request` in a batch to `model`: the same on every delivery of the
    same request generation, distinct across tenants, ids, replays and models, and within
    every provider's rules (`^[a-zA-Z0-9_-]{1,64}$`)."""
    seed = "\x1f".join((request.tenant, request.id, str(request.replay), model.name))
    return "tl-" + blake2b(seed.encode(), digest_size=20).hexdigest()


@dataclass
class _Batch:
    """An open batch as the lane sees it: the journal's record and what is left of it."""

    record: OpenBatch
    #: items whose answer has not yet been published by this process
    unanswered: set[str]
    ended_at: float | None = None
    poller: asyncio.Task[None] | None = None


@dataclass
class _Pending:
    """Items waiting to be submitted to one model, oldest first."""

    model: ModelSpec
    api_key: str | None
    items: dict[str, RouteRequest] = field(default_factory=dict)
    since: float = 0.0


@dataclass
class LaneStats:
    submitted_batches: int = 0
    submitted_items: int = 0
    #: items of a redelivered request found in a journaled batch: waited for, not resubmitted
    resumed_items: int = 0
    lost_items: int = 0
    polls: int = 0
    poll_errors: int = 0


class BatchLane:
    """Answers batch-tier requests through the providers' batch APIs (see the module doc)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: BatchPolicy,
        journal: BatchJournal | None = None,
        *,
        model_of: Callable[[str], ModelSpec | None],
        key_of: Callable[[ModelSpec], str | None],
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.policy = policy
        self.journal = journal
        self._model_of = model_of
        self._key_of = key_of
        self._sleep = sleep
        self._clock = clock
        self.stats = LaneStats()
        self._pending: dict[str, _Pending] = {}
        self._waiters: dict[str, asyncio.Future[ItemResult]] = {}
        self._batches: dict[str, _Batch] = {}
        self._batch_of: dict[str, str] = {}
        #: results of ended batches not (yet) asked for
        self._results: dict[str, ItemResult] = {}
        #: per request (tenant, id, replay): the items it took results of, to close batches
        self._taken: dict[tuple[str, str, int], list[str]] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        #: the tasks waiting in `answer` now: a rebalance hands them back, not waits for them
        self.holders: set[asyncio.Task[object]] = set()

    # ------------------------------------------------------------------ what the walk calls

    def takes(self, model: ModelSpec) -> bool:
        """Whether `model` is served through its provider's batch API."""
        return has_batch_api(model.provider) and batch_api_for(model.provider) is not None

    async def answer(self, model: ModelSpec, request: RouteRequest) -> ItemResult:
        """`request`'s result from a batch to `model`: a journaled batch's if it is in one,
        else from the next batch submitted."""
        custom_id = custom_id_for(model, request)
        task = asyncio.current_task()
        if task is not None:
            self.holders.add(task)
        try:
            return await self._result_of(custom_id, model, request)
        finally:
            if task is not None:
                self.holders.discard(task)

    def answered(self, request: RouteRequest) -> None:
        """The worker published `request`'s answer: its items need no result any more."""
        for custom_id in self._taken.pop(_request_key(request), ()):
            key = self._batch_of.get(custom_id)
            batch = self._batches.get(key) if key is not None else None
            if batch is not None:
                batch.unanswered.discard(custom_id)
                if not batch.unanswered:
                    self._close(batch)

    # ------------------------------------------------------------------ what the journal calls

    def learned(self, record: OpenBatch) -> None:
        """A journaled batch (ours or another process's) is open."""
        if record.key in self._batches:
            return
        batch = _Batch(record, set(record.custom_ids))
        self._batches[record.key] = batch
        for custom_id in record.custom_ids:
            self._batch_of[custom_id] = record.key
        if any(c in self._waiters for c in record.custom_ids):
            self._poll_soon(batch)

    def forgot(self, key: str) -> None:
        """A batch was closed (here or by another process)."""
        batch = self._batches.pop(key, None)
        if batch is None:
            return
        for custom_id in batch.record.custom_ids:
            if self._batch_of.get(custom_id) == key:
                del self._batch_of[custom_id]
        if batch.poller is not None and batch.poller is not asyncio.current_task():
            batch.poller.cancel()

    def open_batches(self) -> int:
        return len(self._batches)

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Submit pending batches when due, close long-ended ones; until `stop`."""
        tick = min(1.0, max(0.05, self.policy.max_wait_s / 4))
        try:
            while not stop.is_set():
                now = self._clock()
                for name, pending in list(self._pending.items()):
                    if pending.items and now - pending.since >= self.policy.max_wait_s:
                        self._flush(name)
                for batch in list(self._batches.values()):
                    if self._stale(batch, now):
                        left = len(batch.unanswered)
                        log.info("batch %s: closed, %d items not asked for", batch.record.key, left)
                        self._close(batch)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=tick)
        finally:
            for batch in self._batches.values():
                if batch.poller is not None:
                    batch.poller.cancel()
            for task in self._flushes:
                task.cancel()

    # ------------------------------------------------------------------ inside

    def _stale(self, batch: _Batch, now: float) -> bool:
        """Ended `claim_grace_s` ago; or journaled `max_age_s` ago and no one waits for it
        (a batch read from the journal whose requests were answered before a crash)."""
        if batch.ended_at is not None:
            return now - batch.ended_at >= self.policy.claim_grace_s
        idle = batch.poller is None or batch.poller.done()
        age = time.time() - batch.record.submitted_at.timestamp()
        return idle and age > self.policy.max_age_s

    async def _result_of(
        self, custom_id: str, model: ModelSpec, request: RouteRequest
    ) -> ItemResult:
        kept = self._results.pop(custom_id, None)
        if kept is not None:
            return self._took(request, custom_id, kept)
        waiter = self._waiters.get(custom_id)
        if waiter is None or waiter.done():
            waiter = self._waiters[custom_id] = asyncio.get_running_loop().create_future()
        key = self._batch_of.get(custom_id)
        if key is not None:
            self.stats.resumed_items += 1
            batch = self._batches[key]
            if batch.ended_at is not None:  # ended, its result handed out: fetch it again
                batch.ended_at = None
                batch.unanswered.add(custom_id)
            self._poll_soon(batch)
        else:
            self._add_pending(custom_id, model, request)
        try:
            result = await asyncio.shield(waiter)
        except asyncio.CancelledError:
            # handed back (rebalance, shutdown): the batch stays journaled for the next owner
            if self._waiters.get(custom_id) is waiter:
                del self._waiters[custom_id]
            pending = self._pending.get(model.name)
            if pending is not None:
                pending.items.pop(custom_id, None)
            raise
        return self._took(request, custom_id, result)

    def _took(self, request: RouteRequest, custom_id: str, result: ItemResult) -> ItemResult:
        self._taken.setdefault(_request_key(request), []).append(custom_id)
        if isinstance(result, ItemLost):
            self.stats.lost_items += 1
        return result

    def _add_pending(self, custom_id: str, model: ModelSpec, request: RouteRequest) -> None:
        pending = self._pending.get(model.name)
        if pending is None:
            pending = self._pending[model.name] = _Pending(model, self._key_of(model))
        if not pending.items:
            pending.since = self._clock()
        pending.items[custom_id] = request
        if len(pending.items) >= self.policy.max_requests:
            self._flush(model.name)

    def _flush(self, name: str) -> None:
        pending = self._pending.pop(name, None)
        if pending is None or not pending.items:
            return
        task = asyncio.create_task(self._submit(pending), name=f"batch.submit.{name}")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _submit(self, pending: _Pending) -> None:
        model = pending.model
        if self.journal is not None:
            try:
                await self.journal.catch_up()
            except Exception as exc:  # noqa: BLE001 - submit anyway; the window is narrow
                log.warning("batch: could not read the journal before submitting (%s)", exc)
        items = [(c, r) for c, r in pending.items.items() if c not in self._batch_of]
        for custom_id in pending.items:
            key = self._batch_of.get(custom_id)
            if key is not None:  # another process journaled it meanwhile: wait for that batch
                self.stats.resumed_items += 1
                self._poll_soon(self._batches[key])
        if not items:
            return
        api = batch_api_for(model.provider)
        assert api is not None
        try:
            provider_id = await api.submit(self.client, model, items, pending.api_key)
        except ProviderError as exc:
            log.warning("batch: %s refused a batch of %d (%s)", model.name, len(items), exc)
            for custom_id, _ in items:
                self._resolve(custom_id, exc)
            return
        except Exception as exc:
            log.exception("batch: submitting %d items to %s failed", len(items), model.name)
            for custom_id, _ in items:
                self._resolve(custom_id, ItemLost(f"batch submit failed: {exc!r}"[:200]))
            return
        record = OpenBatch(
            key=uuid.uuid4().hex,
            model=model.name,
            provider=model.provider,
            provider_batch_id=provider_id,
            custom_ids=[c for c, _ in items],
            submitted_at=datetime.now(UTC),
        )
        self.stats.submitted_batches += 1
        self.stats.submitted_items += len(items)
        log.info(
            "batch %s: %d requests to %s as %s", record.key, len(items), model.name, provider_id
        )
        if self.journal is not None:
            await self.journal.opened(record)
        self.learned(record)
        self._poll_soon(self._batches[record.key])

    def _poll_soon(self, batch: _Batch) -> None:
        if batch.poller is None or batch.poller.done():
            if batch.ended_at is not None:
                return  # ended: its results are kept or were handed out
            batch.poller = asyncio.create_task(
                self._poll(batch), name=f"batch.poll.{batch.record.key}"
            )

    async def _poll(self, batch: _Batch) -> None:
        record = batch.record
        model = self._model_of(record.model)
        api = batch_api_for(record.provider)
        if model is None or api is None:
            self._end(batch, None, ItemLost(f"model {record.model} is no longer in the catalog"))
            return
        key = self._key_of(model)
        started = record.submitted_at.timestamp()
        while True:
            await self._sleep(self.policy.poll_s)
            if time.time() - started > self.policy.max_age_s:
                self._end(
                    batch, None, ItemLost(f"batch did not end in {self.policy.max_age_s:.0f} s")
                )
                return
            self.stats.polls += 1
            try:
                poll = await api.poll(self.client, model, record.provider_batch_id, key)
            except ProviderError as exc:
                self.stats.poll_errors += 1
                log.warning("batch %s: status unknown (%s); asking again", record.key, exc)
                continue
            if poll.ended:
                self._end(batch, poll.result, None)
                return

    def _end(
        self,
        batch: _Batch,
        result_of: Callable[[str], ItemResult] | None,
        lost: ItemLost | None,
    ) -> None:
        """Hand every item's result to its waiter, or keep it for a request yet to come."""
        batch.ended_at = self._clock()
        for custom_id in batch.record.custom_ids:
            if custom_id not in batch.unanswered:
                continue
            result = result_of(custom_id) if result_of is not None else lost
            assert result is not None
            if not self._resolve(custom_id, result):
                self._results[custom_id] = result

    def _resolve(self, custom_id: str, result: ItemResult) -> bool:
        waiter = self._waiters.pop(custom_id, None)
        if waiter is None or waiter.done():
            return False
        waiter.set_result(result)
        return True

    def _close(self, batch: _Batch) -> None:
        key = batch.record.key
        for custom_id in batch.record.custom_ids:
            self._results.pop(custom_id, None)
        self.forgot(key)
        if self.journal is not None:
            task = asyncio.create_task(self.journal.closed(key), name=f"batch.close.{key}")
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def waiting(self) -> Iterator[str]:
        """The items waiting for a result now (for status output and tests)."""
        return iter(list(self._waiters))


def _request_key(request: RouteRequest) -> tuple[str, str, int]:
    return (request.tenant, request.id, request.replay)
