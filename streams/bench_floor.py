"""The floor: bare aiokafka stages of tierline's shape, for the bench to measure against.

tierline moves a request over three topics with two consume→produce stages in between
(router: requests → tier; worker: tier → responses). The floor is the same shape with
no work in it: each stage, in its own process, reads a batch, produces every record
unchanged to the next topic, waits for the acks and commits. Whatever tierline costs
above this (latency, CPU per message) is tierline's own; the broker, the clients and
the machine cost the rest. `python -m tierline.streams.bench_floor SRC DST` runs a stage.

`--transactional` runs the stage exactly once, as tierline does on Kafka: each polled
batch is produced and its offsets committed in one transaction
(`partition_outbox.transact`, with tierline's transaction settings), and the stage
reads `read_committed`. That floor says what exactly once on Kafka costs by itself,
so tierline's overhead can be put against a floor of the same guarantee.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata

from tierline.streams.config import KafkaSettings
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import transact, transactional_producers


async def relay(
    bootstrap: str,
    source: str,
    target: str,
    group: str,
    *,
    fetch_max_wait_ms: int,
    linger_ms: int,
    stop: asyncio.Event,
    transactional: bool = False,
) -> int:
    """Copy `source` to `target` until `stop`; return how many records it copied."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=6000,
        isolation_level="read_committed" if transactional else "read_uncommitted",
    )
    if transactional:
        kafka = KafkaSettings(linger_ms=linger_ms)
        producer = transactional_producers(bootstrap, kafka)(f"{group}.{os.getpid()}")
    else:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all")
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            records = [record for polled in batch.values() for record in polled]
            if not records:
                continue
            if transactional:
                sends = [Outgoing(target, r.key, r.value) for r in records]
                ends = {
                    tp: OffsetAndMetadata(polled[-1].offset + 1, "") for tp, polled in batch.items()
                }
                await transact(producer, sends, ends.copy, group)
            else:
                futures = [await producer.send(target, r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
                await consumer.commit()
            copied += len(records)
    finally:
        await producer.stop()
        await consumer.stop()
    return copied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--bootstrap", default=os.environ.get("TIERLINE_KAFKA_BOOTSTRAP", ""))
    parser.add_argument("--group", default="tierline-bench-floor")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=100)
    parser.add_argument("--linger-ms", type=int, default=2)
    parser.add_argument(
        "--transactional", action="store_true", help="exactly once, on Kafka transactions"
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await relay(
            args.bootstrap,
            args.source,
            args.target,
            args.group,
            fetch_max_wait_ms=args.fetch_max_wait_ms,
            linger_ms=args.linger_ms,
            stop=stop,
            transactional=args.transactional,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
