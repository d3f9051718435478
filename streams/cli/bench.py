"""`tierline bench`: throughput and added latency, against a direct-call baseline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from tierline.streams.cli.common import config_option, echo_json, load, say


@click.command("bench")
@config_option
@click.option("--requests", "n", default=5000, show_default=True, help="Requests in the timed run.")
@click.option(
    "--rate",
    "rates",
    multiple=True,
    type=float,
    default=(500.0,),
    show_default=True,
    help="Requests per second to offer; repeat for a sweep (--rate 250 --rate 500 ...).",
)
@click.option(
    "--workers-processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Tier-worker processes to run (scale-out figure).",
)
@click.option(
    "--provider-latency-ms", default=500.0, show_default=True, help="Simulated provider latency."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def command(
    config_path: Path | None,
    n: int,
    rates: tuple[float, ...],
    workers_processes: int,
    provider_latency_ms: float,
    as_json: bool,
) -> None:
    """Measure tierline's throughput and the latency it adds over a direct provider call.

    \b
    Starts the simulator (fixed latency), calls it directly at --rate for the
    baseline, then starts the router, workers and sink as separate processes
    and sends the same requests through Kafka. In the same run it measures the
    floor: two bare aiokafka consume->produce stages of the same shape, in
    their own processes. Reports throughput, overhead (end-to-end latency
    minus the provider's) p50/p95/p99, lost and duplicated responses, CPU
    milliseconds per answered request for each role process, and tierline's
    overhead and CPU as ratios to the floor (`vs_floor`).
    \b
    Use real Kafka for real figures (the embedded broker slows as it fills):
      bash deploy/kafka/kafka.sh start --port 9092 --dir /tmp/kafka
      TIERLINE_KAFKA_BOOTSTRAP=127.0.0.1:9092 tierline bench --requests 20000 --rate 1000 \\
          --provider-latency-ms 500 --json
    """
    settings = load(config_path)
    result = asyncio.run(_bench(settings, n, list(rates), provider_latency_ms, workers_processes))
    if as_json:
        echo_json(result)
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")


async def _bench(
    settings: object, n: int, rates: list[float], latency: float, workers_processes: int
) -> dict[str, object]:
    from tierline.streams.bench import run_bench
    from tierline.streams.config import Settings
    from tierline.streams.embedded import EmbeddedBroker

    assert isinstance(settings, Settings)
    broker = None
    bootstrap = settings.kafka.bootstrap
    if not bootstrap:
        broker = EmbeddedBroker(settings.state_dir)
        bootstrap = await broker.start()
        say(
            f"warning: no Kafka configured; benchmarking the EMBEDDED broker at {bootstrap}, "
            "which is not representative. Set TIERLINE_KAFKA_BOOTSTRAP."
        )
    try:
        return await run_bench(
            bootstrap,
            n,
            rates,
            latency,
            workers_processes=workers_processes,
            embedded=broker is not None,
            say=say,
        )
    finally:
        if broker is not None:
            broker.stop()
