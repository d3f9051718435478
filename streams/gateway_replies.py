"""The gateway's reply reader: answers from the shared response topic, to the calls waiting.

Why the shared topic, and no reply topic of the gateway's own. A request names its
reply topic in `reply_to`, and the router checks the name against the tenant's
patterns (`processors.routing.reply_topics`); it refuses tierline's own topics
because any producer may name any tenant and any `reply_to` on `tierline.requests`:
Kafka does not tell the router who produced a record. A gateway reply topic the
router accepted for every tenant would be a topic every plain Kafka client could
name too (nothing on a record proves it came from the gateway without a secret
shared with the router). So the gateway names no `reply_to`: its requests are
answered on `tierline.responses`, which tierline's principal alone should read
(deploy/kafka/acls.md), and this reader reads it, as the gateway's own tail:

* every partition, from the end as it was when the gateway started (no consumer
  group: each replica reads everything, and keeps no offsets), committed
  transactions only;
* a record's key is its request id: one whose id no call waits for is skipped
  without being parsed; the others are parsed and handed to `Waiters`, which
  matches tenant *and* id: answers to the waiting calls, the chunks of a streamed
  answer (`ResponseChunk`) to the streamed calls' queues.

Partitions added to the response topic while a gateway runs are read from its next
start. The cost: every gateway replica reads every answer's key. An answer to a call that
moved to another replica (a retry with the same `Idempotency-Key` after a
restart) still reaches the replica that waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from tierline.processors.gateway.waiters import Waiters
from tierline.schemas import ResponseChunk, RouteResponse
from tierline.streams.tail import tail_consumer

log = logging.getLogger("tierline.gateway")

#: how a streamed answer's chunk begins (`schemas.codec.encode` writes `object` first)
_CHUNK = b'{"object":"tierline.chunk"'


class ReplyReader:
    """Reads the response topic from the end and resolves the `Waiters` it serves."""

    def __init__(self, waiters: Waiters) -> None:
        self.waiters = waiters
        self.resolved = 0
        self._consumer: AIOKafkaConsumer | None = None

    async def start(
        self, bootstrap: str, topic: str, isolation_level: str, fetch_max_wait_ms: int
    ) -> None:
        """Positioned at the end of every partition: what is answered from now on is read."""
        self._consumer = await tail_consumer(
            bootstrap,
            topic,
            isolation_level=isolation_level,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )

    async def run(self, stop: asyncio.Event, drain_s: float) -> None:
        """Hand answers to their calls until `stop`, then while calls still wait (up to
        `drain_s`); the calls left then fail."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        drain_until: float | None = None
        try:
            while True:
                if stop.is_set():
                    drain_until = drain_until or time.monotonic() + drain_s
                    if not len(self.waiters) or time.monotonic() >= drain_until:
                        break
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        self._hand_over(record.key, record.value)
        finally:
            self.waiters.abandon(ConnectionAbortedError("the gateway is stopping"))
            await self.close()

    async def close(self) -> None:
        """Stop reading (a no-op once stopped)."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    def _hand_over(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            request_id = key.decode()
        except UnicodeDecodeError:
            return
        if not self.waiters.wants(request_id):
            return
        try:
            if value.startswith(_CHUNK):
                self.waiters.chunk(ResponseChunk.model_validate_json(value))
                return
            response = RouteResponse.model_validate_json(value)
        except (ValidationError, ValueError) as exc:
            log.warning("gateway: an unreadable response for %s skipped: %s", request_id, exc)
            return
        if self.waiters.resolve(response):
            self.resolved += 1
