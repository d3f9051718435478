"""What every batch route does alike, whatever the format: the gate, submitting, looking.

Each `*_batch` module reads its provider's submission and renders its objects; the
desk does the rest the same way for all three, between them and the server:

* `gate` (and `submission`, which also reads a create call's JSON body): a batch
  call is refused during an outage as a synchronous call is
  (`POST /_sim/down`: a dropped connection, or the format's 503), and needs the key
  the format's synchronous route needs (its 401, 403 or 400 otherwise);
* `submit` / `fail`: store a new batch, due after the slowest of its models'
  `batch_delay_s` (a failed one ends at once), and count it: `batches` by route,
  and for one that runs `batch_items` and `batch_items_resubmitted` (items whose
  custom id the route had in an earlier batch);
* `look`: the batch of this route with that id, brought up to now: a due batch is
  answered here, item by item, by `SimulatorServer.answer_item`. A status call
  counts in `batch_polls`.

The desk reaches the server only through `BatchHost`, the few things it asks of it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any, Protocol

from aiohttp import web

from tierline.processors.simulator.batches import Batch, BatchItem, BatchStore, ItemAnswer
from tierline.processors.simulator.wire import WireFormat

__all__ = ["BatchDesk", "BatchHost"]


class BatchHost(Protocol):
    """What the desk needs of the server (`SimulatorServer` is one)."""

    @property
    def invalid_keys(self) -> frozenset[str]: ...

    async def refusal(self, request: web.Request, wire: WireFormat) -> web.Response | None:
        """The outage's answer to this call, or None."""

    def batch_delay(self, models: Iterable[str]) -> float:
        """How long a batch of these models runs."""

    def answer_item(self, wire: WireFormat, body: Any, path_model: str) -> ItemAnswer:
        """One item, answered as its synchronous route answers its body."""

    def count_batch(self, route: str, items: int, resubmitted: int) -> None:
        """Count a new batch of this route, with its items (0 for one that failed)."""

    def count_poll(self) -> None:
        """Count a status call on a batch."""


class BatchDesk:
    """The batch routes' common ground: one per server, holding its `BatchStore`."""

    def __init__(self, server: BatchHost, seed: int = 0) -> None:
        self._server = server
        self.store = BatchStore(seed=seed)

    def new_id(self, length: int = 24) -> str:
        """Hex digits for a new batch, file or result line id (the same on every run of a
        seed, given the same calls)."""
        return self.store.new_id(length)

    @staticmethod
    def rid() -> str:
        """A request id for one answer of a batch call (its headers, its error body)."""
        return secrets.token_hex(16)

    async def gate(self, request: web.Request, wire: WireFormat) -> web.Response | None:
        """The outage's refusal or the auth error for this call, or None when it may pass."""
        refused = await self._server.refusal(request, wire)
        if refused is not None:
            return refused
        return wire.auth_error(request, self._server.invalid_keys, self.rid())

    async def submission(
        self, request: web.Request, wire: WireFormat
    ) -> tuple[str, dict[str, Any]] | web.Response:
        """A create call's request id and JSON object body, once `gate` lets it pass; the
        refusal (outage, auth, a body that is no JSON object) otherwise."""
        refused = await self.gate(request, wire)
        if refused is not None:
            return refused
        rid = self.rid()
        data = wire.read_object(await request.read(), rid)
        if isinstance(data, web.Response):
            return data
        return rid, data

    def submit(
        self,
        wire: WireFormat,
        batch_id: str,
        items: list[BatchItem],
        models: Iterable[str],
        *,
        path_model: str = "",
        info: dict[str, Any] | None = None,
    ) -> Batch:
        """A new running batch of these items; `models` are the ones its items name."""
        now = time.time()
        delay = self._server.batch_delay(models)
        batch = Batch(batch_id, wire.name, items, now, now + delay, path_model, info or {})
        self.store.add(batch, now)
        again = self.store.resubmitted(wire.name, (i.custom_id for i in items if i.custom_id))
        self._server.count_batch(wire.name, len(items), again)
        return batch

    def fail(
        self, wire: WireFormat, batch_id: str, errors: list[dict[str, Any]], info: dict[str, Any]
    ) -> Batch:
        """A new batch whose submission did not validate: failed from the start, no items."""
        now = time.time()
        batch = Batch(batch_id, wire.name, [], now, now, info=info, errors=errors)
        self.store.add(batch, now)
        self._server.count_batch(wire.name, 0, 0)
        return batch

    def look(self, wire: WireFormat, batch_id: str, *, poll: bool = False) -> Batch | None:
        """The route's batch with this id, up to date (answered if due), or None;
        `poll` = a status call, counted in `batch_polls`."""
        batch = self.store.get(batch_id)
        if batch is None or batch.route != wire.name:
            return None
        if poll:
            self._server.count_poll()
        answer = self._server.answer_item
        path_model = batch.path_model
        batch.settle(time.time(), lambda item: answer(wire, item.body, path_model))
        return batch
