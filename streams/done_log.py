"""The done log: which requests a tier worker already answered, so a redelivery is dropped.

A worker commits offsets only up to the oldest unfinished message, so after a
crash or a rebalance some finished messages are delivered again; the router,
after its own crash, may forward a request twice. Each finished request's key
(tenant and id: ids are unique per tenant only) is therefore written to
`tierline.tier.<tier>.done`, partition for partition with the tier topic, and
remembered in memory. When a worker is handed partitions it
reads their recent done records first, and skips any request it finds there.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from tierline.streams.topics import partition_ids

#: how far back a worker reads the done log at least when it is handed partitions
DONE_LOOKBACK_S = 600.0


class DoneSet:
    """A bounded set of finished requests (`RouteRequest.key`); the oldest are forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, request_id: str) -> None:
        self._ids[request_id] = None
        self._ids.move_to_end(request_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


async def load_done(
    bootstrap: str,
    done_topic: str,
    partitions: Iterable[int],
    into: DoneSet,
    since_ms: dict[int, int],
) -> int:
    """Read the done log's `partitions` from `since_ms[partition]` (epoch ms) into `into`."""
    wanted = [TopicPartition(done_topic, p) for p in partitions]
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    loaded = 0
    try:
        available = set(await partition_ids(bootstrap, done_topic))
        wanted = [tp for tp in wanted if tp.partition in available]
        if not wanted:
            return 0
        consumer.assign(wanted)
        default_ms = int((time.time() - DONE_LOOKBACK_S) * 1000)
        starts = await consumer.offsets_for_times(
            {tp: since_ms.get(tp.partition, default_ms) for tp in wanted}
        )
        ends = await consumer.end_offsets(wanted)
        remaining = set()
        for tp in wanted:
            found = starts.get(tp)
            if found is None:
                consumer.seek(tp, ends[tp])
            else:
                consumer.seek(tp, found.offset)
                if found.offset < ends[tp]:
                    remaining.add(tp)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key:
                        into.add(record.key.decode())
                        loaded += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return loaded


async def since_ms_for(
    bootstrap: str,
    group: AIOKafkaConsumer | None,
    assigned: Iterable[TopicPartition],
    lookback_s: float = DONE_LOOKBACK_S,
) -> dict[int, int]:
    """Per assigned partition, from when (epoch ms) its done log must be read.

    A done record of a message that is not committed yet was written after that
    message was produced, so reading from the produce time of the message at the
    committed offset (less a minute of clock skew) finds them all; and at least the
    last `lookback_s`, for requests the router forwarded twice. `group` is the
    worker's consumer, whose committed offsets are read.
    """
    partitions = list(assigned)
    floor_ms = int((time.time() - lookback_s) * 1000)
    since = {tp.partition: floor_ms for tp in partitions}
    if group is None or not partitions:
        return since
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await reader.start()
    try:
        positions = {tp: await group.committed(tp) for tp in partitions}
        wanted = {tp: o for tp, o in positions.items() if o is not None}
        if not wanted:
            return since
        reader.assign(list(wanted))
        for tp, committed in wanted.items():
            reader.seek(tp, committed)
        ends = await reader.end_offsets(list(wanted))
        pending = {tp for tp, o in wanted.items() if o < ends[tp]}
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            batch = await reader.getmany(*pending, timeout_ms=500, max_records=len(pending))
            for tp, records in batch.items():
                if records and tp in pending:
                    since[tp.partition] = min(floor_ms, records[0].timestamp - 60_000)
                    pending.discard(tp)
        for tp in pending:  # could not read it: read the whole retained log
            since[tp.partition] = 0
    finally:
        await reader.stop()
    return since
