"""The floor: bare aiokafka stages of tierline's shape, for the bench to measure against.

tierline moves a request over three topics with two consume→produce stages in between
(router: requests → tier; worker: tier → responses). The floor is the same shape with
no work in it: each stage, in its own process, reads a batch, produces every record
unchanged to the next topic, waits for the acks and commits. Whatever tierline costs
above this (latency, CPU per message) is tierline's own; the broker, the clients and
the machine cost the rest. `python -m tierline.streams.bench_floor SRC DST` runs a stage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(
    bootstrap: str,
    source: str,
    target: str,
    group: str,
    *,
    fetch_max_wait_ms: int,
    linger_ms: int,
    stop: asyncio.Event,
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
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all")
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            futures = [
                await producer.send(target, record.value, key=record.key)
                for records in batch.values()
                for record in records
            ]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
                copied += len(futures)
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
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
