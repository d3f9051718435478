"""`Outgoing`: one Kafka send as plain data, and the pure rules about sends (no Kafka here).

The router step, the tier worker's step and the sinks say what to publish as a
list of `Outgoing`; `streams.sender` (or, in the router, faust) sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tierline.schemas import DeadLetter, ErrorInfo, ErrorType, RouteResponse, encode

if TYPE_CHECKING:  # only the type: `streams.topics` imports aiokafka
    from tierline.streams.topics import Topics

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce; `partition` None lets the producer pick it from the key."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | None = None
    partition: int | None = None
    #: a delete marker for a compacted topic: sent with no value at all
    tombstone: bool = False

    @property
    def payload(self) -> bytes | None:
        """The value as produced: None for a tombstone."""
        return None if self.tombstone else self.value

    def header_list(self) -> list[tuple[str, bytes]] | None:
        """The headers the way Kafka clients take them."""
        return None if self.headers is None else list(self.headers)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a consumed message came from, and its value as read (kept for the DLQ)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


def dead_letter(
    dlq: str,
    source: Source,
    reason: str,
    error_type: ErrorType | str,
    *,
    key: bytes | None = None,
    request_id: str = "",
    tenant: str = "",
) -> Outgoing:
    """The message as it was read, byte for byte, to the DLQ; the headers say why."""
    letter = DeadLetter(
        reason=reason,
        error_type=str(error_type),
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
        request_id=request_id,
        tenant=tenant,
    )
    return Outgoing(dlq, key, source.value or b"", tuple(letter.to_headers()))


def unreadable(dlq: str, source: Source, what: str, error: Exception) -> Outgoing:
    """The dead letter of a message that does not parse as the `what` its topic carries."""
    return dead_letter(dlq, source, f"unreadable {what}: {error}"[:1000], ErrorType.INVALID_REQUEST)


def reroute(send: Outgoing, tries: int, too_large: bool, topics: Topics) -> Outgoing:
    """What to send instead of `send` after its `tries`-th failure (`too_large`: refused for size).

    A response too large for its topic can never land: it becomes an error
    response that can. A client's reply_to topic that keeps refusing (say, it does
    not exist and topics are not auto-created) gets the response on the shared
    response topic instead. A response-cache answer too large for its topic becomes a
    tombstone of its key: the cache misses it, and the answer it rode with still lands.
    Anything else is sent again as it was.
    """
    if too_large and send.topic == topics.cache:
        return replace(send, value=b"", headers=None, tombstone=True)
    internal = frozenset(topics.all())
    is_response = send.topic == topics.responses or send.topic not in internal
    if too_large and is_response:
        return replace(send, value=too_large_response(send.value))
    if tries >= 3 and send.topic not in internal:
        return replace(send, topic=topics.responses)
    return send


def too_large_response(response: bytes) -> bytes:
    """An error response in place of a response its topic refuses for its size."""
    original = RouteResponse.model_validate_json(response)
    error = ErrorInfo(
        type=ErrorType.INTERNAL,
        message=f"the response ({len(response):,} bytes) is larger than its "
        "topic accepts (max.message.bytes); it was billed",
    )
    return encode(
        RouteResponse.from_error(
            original.id,
            original.tenant,
            error,
            model=original.model,
            provider=original.provider,
            tier=original.tier,
            usage=original.usage,
            cost_usd=original.cost_usd,
            latency_ms=original.latency_ms,
            attempts=original.attempts,
            decision=original.decision,
            created_at=original.created_at,
        )
    )
