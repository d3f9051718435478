"""Publishing a streamed answer's pieces: one `ResponseChunk` record per piece, in order.

A tier worker serving a request that streams hands the walk a `ChunkStream` for it.
Each piece the provider writes becomes the next chunk (`seq` 0, 1, 2, ...) on the
request's reply topic, keyed by request id like its response, sent on the process's
plain producer at once: not in the answers' transaction, which would hold every chunk
back until the whole answer is in (see `schemas.chunk` for what a reader sees).
The producer keeps one key's records in order. Before the response is published the
worker waits for every chunk to be acknowledged (`flushed`), so a reader never sees the
response before a chunk of the same serving. A chunk that cannot be sent is logged and
skipped: the response, which carries the whole answer, is what must land.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.streaming import StreamDelta
from tierline.schemas import ResponseChunk, RouteRequest, ToolCallPiece, encode

log = logging.getLogger("tierline.worker")


class ChunkStream:
    """The chunks of one serving of one request."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, request: RouteRequest) -> None:
        self.producer = producer
        self.topic = topic
        self.request = request
        #: this serving's id: a request served again after a crash streams under a new one
        self.serving = uuid.uuid4().hex[:16]
        self.seq = 0
        self._acks: list[asyncio.Future[object]] = []

    async def __call__(self, model: ModelSpec, delta: StreamDelta) -> None:
        request = self.request
        chunk = ResponseChunk(
            id=request.id,
            tenant=request.tenant,
            serving=self.serving,
            seq=self.seq,
            delta=delta.text,
            tool_calls=[
                ToolCallPiece(index=t.index, id=t.id, name=t.name, arguments=t.arguments)
                for t in delta.tool_calls
            ]
            or None,
            model=model.name,
            provider=model.provider,
            created_at=datetime.now(UTC),
        )
        self.seq += 1
        try:
            ack = await self.producer.send(self.topic, encode(chunk), key=request.id.encode())
        except KafkaError as exc:
            log.warning("chunk %d of %s not sent: %s", chunk.seq, request.id, exc)
            return
        self._acks.append(ack)

    async def flushed(self) -> None:
        """Every chunk sent so far is on the broker (or known lost)."""
        acks, self._acks = self._acks, []
        for result in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("a chunk of %s was not delivered: %s", self.request.id, result)
