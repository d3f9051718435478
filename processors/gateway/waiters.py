"""The HTTP calls waiting for their answers: a cloakroom of futures, keyed by (tenant, id).

A call hands in its request and gets a ticket, a future under its tenant and
request id; the gateway's reply reader hands the answer back when it arrives on the
response topic, and the call returns it. The key is the pair, never the id alone: two
tenants that pick the same id (the same `Idempotency-Key`) hold two tickets and
each gets only its own answer.

* A second call with a key that is already waiting joins that wait: the request is
  sent once, and both calls get its one answer.
* A call that gives up (its timeout) leaves its ticket; when no call holds it any
  more the key is still expected, so its answer is kept when it comes.
* A streamed call also `listen`s: the chunks of its answer (`ResponseChunk`) are
  put on its queue as the reader hands them over, before the answer itself.
* The last `remember` answers are kept: a key asked again after its answer came (or
  after a timeout) is answered from here, by this gateway. Past that, or on another
  gateway replica, a repeated key is sent again and tierline's pipeline may drop it
  as a duplicate: deduplicating completed requests everywhere is not done here.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tierline.schemas import ResponseChunk, RouteResponse

Key = tuple[str, str]


@dataclass(slots=True)
class _Ticket:
    answer: asyncio.Future[RouteResponse]
    calls: int = 0


class Waiters:
    """The tickets of the calls in flight, the keys still expected, and recent answers."""

    def __init__(self, remember: int = 1000) -> None:
        self.remember = remember
        self._tickets: dict[Key, _Ticket] = {}
        #: keys whose calls all gave up: their answers are kept when they arrive
        self._late: OrderedDict[Key, None] = OrderedDict()
        self._answers: OrderedDict[Key, RouteResponse] = OrderedDict()
        #: request ids with a ticket or expected late, for any tenant: what the reader parses
        self._ids: Counter[str] = Counter()
        #: the chunk queues of streamed calls
        self._streams: dict[Key, list[asyncio.Queue[ResponseChunk]]] = {}

    def __len__(self) -> int:
        """How many requests are waited for now."""
        return len(self._tickets)

    def wants(self, request_id: str) -> bool:
        """Whether an answer with this id is waited for or expected (for some tenant)."""
        return request_id in self._ids

    async def wait(
        self,
        tenant: str,
        request_id: str,
        send: Callable[[], Awaitable[None]],
        timeout_s: float,
    ) -> RouteResponse:
        """The answer of (tenant, request_id); `send` queues the request unless it is
        already waited for or answered. Raises TimeoutError after `timeout_s`."""
        key = (tenant, request_id)
        kept = self._answers.get(key)
        if kept is not None:
            self._answers.move_to_end(key)
            return kept
        ticket = self._tickets.get(key)
        first = ticket is None
        if ticket is None:
            ticket = self._tickets[key] = _Ticket(asyncio.get_running_loop().create_future())
            if key in self._late:  # expected already: its id is counted
                del self._late[key]
            else:
                self._ids[request_id] += 1
        ticket.calls += 1
        try:
            if first:
                try:
                    await send()
                except Exception as exc:
                    if not ticket.answer.done():  # the calls that joined fail with it
                        ticket.answer.set_exception(exc)
                        ticket.answer.exception()  # retrieved: no "never retrieved" log
                    raise
            return await asyncio.wait_for(asyncio.shield(ticket.answer), timeout_s)
        finally:
            ticket.calls -= 1
            if ticket.calls == 0 and self._tickets.get(key) is ticket:
                del self._tickets[key]
                self._expect_late(key)

    def resolve(self, response: RouteResponse) -> bool:
        """Hand `response` to the calls waiting for it; False when nobody asked for it."""
        key = (response.tenant, response.id)
        ticket = self._tickets.pop(key, None)
        late = key in self._late
        if ticket is None and not late:
            return False
        if late:
            del self._late[key]
        self._unwant(response.id)
        if ticket is not None and not ticket.answer.done():
            ticket.answer.set_result(response)
        if self.remember:
            self._answers[key] = response
            while len(self._answers) > self.remember:
                self._answers.popitem(last=False)
        return True

    def listen(self, tenant: str, request_id: str) -> asyncio.Queue[ResponseChunk]:
        """A queue that gets the chunks of (tenant, request_id)'s streamed answer; `unlisten`
        it when done. Listen before `wait`, so that no chunk comes before the queue."""
        queue: asyncio.Queue[ResponseChunk] = asyncio.Queue()
        self._streams.setdefault((tenant, request_id), []).append(queue)
        return queue

    def unlisten(self, tenant: str, request_id: str, queue: asyncio.Queue[ResponseChunk]) -> None:
        key = (tenant, request_id)
        queues = self._streams.get(key)
        if queues is not None and queue in queues:
            queues.remove(queue)
            if not queues:
                del self._streams[key]

    def chunk(self, chunk: ResponseChunk) -> bool:
        """Hand a chunk to the streamed calls of its request; False when none listens."""
        queues = self._streams.get((chunk.tenant, chunk.id))
        for queue in queues or ():
            queue.put_nowait(chunk)
        return bool(queues)

    def abandon(self, error: Exception) -> None:
        """Fail every waiting call with `error` (the gateway is stopping)."""
        for ticket in self._tickets.values():
            if not ticket.answer.done():
                ticket.answer.set_exception(error)
                ticket.answer.exception()

    def _expect_late(self, key: Key) -> None:
        if not self.remember:
            self._unwant(key[1])
            return
        self._late[key] = None
        while len(self._late) > self.remember:
            old, _ = self._late.popitem(last=False)
            self._unwant(old[1])

    def _unwant(self, request_id: str) -> None:
        self._ids[request_id] -= 1
        if self._ids[request_id] <= 0:
            del self._ids[request_id]
