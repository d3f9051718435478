"""What one outbox transaction costs on a real Kafka, the way tierline runs it and the way it did.

    python bench/transactions.py --bootstrap HOST:PORT [--transactions 200] [--sends 50]
        [--block 50] [--json]

Each transaction is an outbox's: `--sends` records to two topics, the commit point of
four input partitions, the commit; the next begins right after, on the same producer.
Three ways, taken in turn in blocks of `--block` transactions (each way's block, then
the next round), so the machine's noise falls on all of them alike:

    20 ms retry      the sends' acks awaited, then the commit point, then the commit
                     (`partition_outbox.transact`); a transaction begun while the last
                     commit's markers are written retried after aiokafka's own 20 ms
                     (tierline before 310a49e)
    2 ms retry       the same, retried after `kafka.transaction_retry_ms` (2 ms): what
                     the outboxes do now
    overlapped       the commit point sent while the sends are in flight (2 ms retry):
                     tried and dropped, its TxnOffsetCommit now and then meets the last
                     transaction's markers and waits aiokafka's 100 ms retry backoff

It prints each way's p50/p90/p99 in ms and its ratio to the first (same run). Needs a
Kafka broker with transactions (`deploy/kafka/kafka.sh start`); it creates its own
topics under a random prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import SendsFailed, transact
from tierline.streams.sender import send_one
from tierline.streams.txn_turnaround import set_concurrent_transaction_retry

Offsets = dict[TopicPartition, OffsetAndMetadata]
Way = Callable[[AIOKafkaProducer, list[Outgoing], Callable[[], Offsets], str], Awaitable[None]]


async def overlapped(
    producer: AIOKafkaProducer, sends: list[Outgoing], offsets: Callable[[], Offsets], group: str
) -> None:
    """The commit point on its way while the sends are in flight, then the commit."""
    await producer.begin_transaction()
    acks = asyncio.gather(*(send_one(producer, s) for s in sends))
    try:
        await producer.send_offsets_to_transaction(offsets(), group)
    finally:
        results = await acks
    if any(r is not None for r in results):
        raise SendsFailed({i: r for i, r in enumerate(results) if r is not None})
    await producer.commit_transaction()


WAYS: list[tuple[str, int, Way]] = [
    ("20 ms retry", 20, transact),
    ("2 ms retry", 2, transact),
    ("overlapped", 2, overlapped),
]


async def _leaders_elected(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Wait (up to 30 s) until every partition of `names` has a leader."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        ready = [p for t in described if t.get("error_code") == 0 for p in t["partitions"]]
        if len(ready) == 4 * len(names) and all(p["leader"] >= 0 for p in ready):
            return
        await asyncio.sleep(0.2)


async def run(bootstrap: str, transactions: int, sends: int, block: int = 10) -> dict[str, Any]:
    prefix = f"txbench{uuid.uuid4().hex[:6]}."
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    names = [f"{prefix}{t}" for t in ("a", "b", "in")]
    try:
        await admin.create_topics([NewTopic(name, 4, 1) for name in names])
        await _leaders_elected(admin, names)
    finally:
        await admin.close()
    producers = []
    for n in range(len(WAYS)):
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"{prefix}way{n}",
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
        )
        await producer.start()
        producers.append(producer)
    payload = b"x" * 300
    records = [Outgoing(f"{prefix}{'ab'[i % 2]}", str(i).encode(), payload) for i in range(sends)]
    taken: list[list[float]] = [[] for _ in WAYS]
    committed = [0] * len(WAYS)
    try:
        for round_ in range(-(-transactions // block) + 1):  # the first round warms up
            for n, (_name, retry_ms, way) in enumerate(WAYS):
                set_concurrent_transaction_retry(retry_ms)
                for _ in range(block):
                    committed[n] += 1
                    point = {
                        TopicPartition(f"{prefix}in", p): OffsetAndMetadata(committed[n], "")
                        for p in range(4)
                    }
                    started = time.perf_counter()
                    await way(producers[n], records, lambda at=point: at, f"{prefix}group{n}")
                    if round_ > 0:
                        taken[n].append((time.perf_counter() - started) * 1000)
    finally:
        for producer in producers:
            await producer.stop()
    base = _quantile(taken[0], 0.5)
    return {
        "transactions": transactions,
        "sends": sends,
        "ways": [
            {
                "way": name,
                "p50_ms": round(_quantile(ms, 0.5), 2),
                "p90_ms": round(_quantile(ms, 0.9), 2),
                "p99_ms": round(_quantile(ms, 0.99), 2),
                "vs_first": round(_quantile(ms, 0.5) / base, 3),
            }
            for (name, _, _), ms in zip(WAYS, taken, strict=True)
        ],
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("TIERLINE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--transactions", type=int, default=200)
    parser.add_argument("--sends", type=int, default=50)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.bootstrap:
        sys.exit("bench/transactions.py needs --bootstrap or TIERLINE_KAFKA_BOOTSTRAP")
    result = asyncio.run(run(args.bootstrap, args.transactions, args.sends, args.block))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['transactions']} transactions of {result['sends']} sends each, per way")
    for way in result["ways"]:
        print(
            f"  {way['way']:<12} p50 {way['p50_ms']:7.2f} ms  p90 {way['p90_ms']:7.2f} ms  "
            f"p99 {way['p99_ms']:7.2f} ms  {way['vs_first']:.3f}x"
        )


if __name__ == "__main__":
    main()
