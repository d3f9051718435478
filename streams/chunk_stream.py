"""Publishing a streamed answer's pieces: one `ResponseChunk` record per piece, in order.

A tier worker serving a request that streams hands the walk a `ChunkStream` for it.
Each piece the provider writes becomes the next chunk (`seq` 0, 1, 2, ...) on the
request's reply topic, keyed by request id like its response, sent on the process's
plain producer at once: not in the answers' transaction, which would hold every chunk
back until the whole answer is in (see `schemas.chunk` for what a reader sees).
Pieces that come close together share a chunk (`COALESCE_S`). The producer keeps one
key's records in order. Before the response is published the
worker waits for every chunk to be acknowledged (`flushed`), so a reader never sees the
response before a chunk of the same serving. A chunk that cannot be sent is logged and
skipped: the response, which carries the whole answer, is what must land.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.providers.streaming import StreamDelta
from tierline.schemas import ResponseChunk, RouteRequest, ToolCallPiece, encode

log = logging.getLogger("tierline.worker")


#: pieces that come within this long of the last chunk sent ride in the next one
COALESCE_S = 0.02


class ChunkStream:
    """The chunks of one serving of one request.

    The first piece goes out at once (it is the time to first token). Pieces that
    follow within `coalesce_s` of the last chunk sent are gathered into the next one:
    providers write a piece every few tokens, and a record per piece would multiply the
    broker's and every reader's work for no visible gain. What is still gathered when
    the answer ends goes out with `flushed`.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        request: RouteRequest,
        *,
        coalesce_s: float = COALESCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.request = request
        self.coalesce_s = coalesce_s
        self._clock = clock
        #: this serving's id: a request served again after a crash streams under a new one
        self.serving = uuid.uuid4().hex[:16]
        self.seq = 0
        self._acks: list[asyncio.Future[object]] = []
        self._sent_at = 0.0
        self._model: ModelSpec | None = None
        self._text: list[str] = []
        self._tools: list[ToolCallPiece] = []

    async def __call__(self, model: ModelSpec, delta: StreamDelta) -> None:
        if self._model is not None and self._model.name != model.name:
            await self._send()  # never mix two models' pieces in one chunk
        self._model = model
        self._text.append(delta.text)
        for piece in delta.tool_calls:
            self._add_tool(ToolCallPiece(
                index=piece.index, id=piece.id, name=piece.name, arguments=piece.arguments
            ))  # fmt: skip
        if self.seq == 0 or self._clock() - self._sent_at >= self.coalesce_s:
            await self._send()

    def _add_tool(self, piece: ToolCallPiece) -> None:
        """Gather a tool-call piece: the arguments of a call's consecutive pieces join."""
        last = self._tools[-1] if self._tools else None
        if last is not None and last.index == piece.index and piece.id is None:
            joined = last.model_copy(update={"arguments": last.arguments + piece.arguments})
            self._tools[-1] = joined
        else:
            self._tools.append(piece)

    async def _send(self) -> None:
        model, text, tools = self._model, "".join(self._text), self._tools
        if model is None or (not text and not tools):
            return
        self._text, self._tools = [], []
        request = self.request
        chunk = ResponseChunk(
            id=request.id,
            tenant=request.tenant,
            serving=self.serving,
            seq=self.seq,
            delta=text,
            tool_calls=tools or None,
            model=model.name,
            provider=model.provider,
            created_at=datetime.now(UTC),
        )
        self.seq += 1
        self._sent_at = self._clock()
        try:
            ack = await self.producer.send(self.topic, encode(chunk), key=request.id.encode())
        except KafkaError as exc:
            log.warning("chunk %d of %s not sent: %s", chunk.seq, request.id, exc)
            return
        self._acks.append(ack)

    async def flushed(self) -> None:
        """What is gathered is sent, and every chunk is on the broker (or known lost)."""
        await self._send()
        acks, self._acks = self._acks, []
        for result in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("a chunk of %s was not delivered: %s", self.request.id, result)
