"""The tier worker's pure step: what to publish for one served request (no Kafka here)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import ErrorType, RoutedRequest, Settlement, Tier, encode
from tierline.streams.outgoing import Outgoing, Source, dead_letter

if TYPE_CHECKING:  # only the type: `streams.topics` imports aiokafka
    from tierline.streams.topics import Topics


def respond(
    routed: RoutedRequest,
    outcome: ServeOutcome,
    source: Source,
    topics: Topics,
) -> list[Outgoing]:
    """The response, the bills, the settled attempts, and a dead letter if unanswered.

    The response goes to the request's reply_to, else the shared response topic,
    keyed by request id; each billed attempt to the cost topic keyed by tenant; a
    request a budget holds a reservation for settles it (`Settlement`, on the
    router's partition).
    When every candidate failed, the routed request as it was read goes to the
    DLQ too (after its error response, which the client gets either way).
    """
    request = routed.request
    key = request.id.encode()
    sends = [Outgoing(request.reply_to or topics.responses, key, encode(outcome.response))]
    tenant = request.tenant.encode()
    sends += [Outgoing(topics.costs, tenant, encode(c)) for c in outcome.costs]
    sends += [Outgoing(topics.attempts, tenant, encode(a)) for a in outcome.attempts]
    if routed.budget_partition is not None:
        # what the request cost, to the router partition holding its reservation
        settlement = Settlement(
            request_id=request.id,
            tenant=request.tenant,
            feature=request.metadata.feature or "",
            cost_usd=outcome.response.cost_usd,
            created_at=outcome.response.created_at or datetime.now(UTC),
        )
        sends.append(
            Outgoing(
                topics.settlements,
                tenant,
                encode(settlement),
                partition=routed.budget_partition,
            )
        )
    if outcome.failed:
        error = outcome.response.error
        sends.append(
            dead_letter(
                topics.dlq,
                source,
                error.message if error else "unanswered",
                error.type if error else ErrorType.INTERNAL,
                key=key,
                request_id=request.id,
                tenant=request.tenant,
            )
        )
    return sends


def done_record(
    request_key: str, source: Source, topics: Topics, tier: Tier, done_partitions: Collection[int]
) -> Outgoing:
    """The record saying the request (`RouteRequest.key`: tenant and id) is answered.

    Only without transactions (the embedded broker): on the transactional path the
    commit point says which messages are answered (`streams.offset_ledger`).

    It goes out with the answer and the bills, in the same produce batch, not
    after their acks: sent after, a crash between the two (measured: one in 400
    requests under SIGKILL) answered a request twice. Sent together, a crash
    loses the answer only if the broker took the done record yet refused the
    answer, and the worker died before its retry landed.

    The done log is partitioned like the tier topic, so a worker handed a
    partition reads only that partition's done records; when the done topic lacks
    the partition (fewer partitions), the producer picks one by key.
    """
    partition = source.partition if source.partition in done_partitions else None
    return Outgoing(topics.done(tier), request_key.encode(), b"", partition=partition)
