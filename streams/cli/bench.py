"""`tierline bench`: throughput and added latency, against a direct-call baseline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from tierline.streams.cli.common import config_option, echo_json, load, say

#: what each mode offers when neither --rate nor --rates is given
DEFAULT_RATES = (500.0,)
DEFAULT_GATEWAY_RATES = (50.0, 200.0)
#: requests per rate when --requests is not given
DEFAULT_REQUESTS = 5000
DEFAULT_GATEWAY_REQUESTS = 1000


def _rate_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...]:
    """`--rates 50,200` as (50.0, 200.0); each rate must be a positive number."""
    if not value:
        return ()
    try:
        rates = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give rates as numbers, e.g. 50,200") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise click.BadParameter(f"{value!r}: every rate must be > 0")
    return rates


@click.command("bench")
@config_option
@click.option(
    "--requests",
    "n",
    default=None,
    type=click.IntRange(1),
    help=f"Requests per rate [default: {DEFAULT_REQUESTS}; with --gateway "
    f"{DEFAULT_GATEWAY_REQUESTS} each way].",
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Requests per second to offer; repeat for a sweep (--rate 250 --rate 500 ...) "
    "[default: 500; with --gateway 50 and 200].",
)
@click.option(
    "--rates",
    "rate_list",
    default=None,
    callback=_rate_list,
    help="The same as comma-separated values: --rates 50,200.",
)
@click.option(
    "--gateway",
    is_flag=True,
    help="Measure the OpenAI-compatible gateway instead: the same chat-completions calls "
    "straight to the simulator and through `tierline run --role gateway`, side by side.",
)
@click.option(
    "--stream-requests",
    default=None,
    type=click.IntRange(0),
    help="With --gateway: streamed calls (stream: true) per rate each way, for the time "
    "to first token; 0 sends none [default: the smaller of --requests and 300].",
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
    n: int | None,
    rates: tuple[float, ...],
    rate_list: tuple[float, ...],
    gateway: bool,
    stream_requests: int | None,
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
    overhead and CPU as ratios to the floor (`vs_floor`). On real Kafka a second
    floor runs each stage exactly once on transactions, as tierline does
    (`floor_transactional`, `vs_floor_transactional`): what the guarantee
    costs by itself. The floors call no provider: `floor_same_work` adds the
    direct baseline's client CPU per call to the floor of the guarantee, and
    `vs_floor_same_work` is tierline's CPU over that. With several rates,
    `overload` is the peak throughput and the highest rate's share of it.
    \b
    With --gateway it measures the gateway instead: the same roles plus
    `tierline run --role gateway`, and at each rate the same chat-completions
    calls straight to the simulator, then through the gateway, then the same
    both ways streamed (stream: true, --stream-requests of them). Reports sent,
    ok, errors and p50/p95/p99 of each, and the gateway's overhead (gateway -
    direct, at p50 and p99, in ms and as a ratio); for the streamed calls, the
    time to first token (the first event with content) and to [DONE] each way,
    and the gateway's TTFT overhead, the same way.
    \b
    Use real Kafka for real figures (the embedded broker slows as it fills):
      bash deploy/kafka/kafka.sh start --port 9092 --dir /tmp/kafka
      TIERLINE_KAFKA_BOOTSTRAP=127.0.0.1:9092 tierline bench --requests 20000 --rate 1000 \\
          --provider-latency-ms 500 --json
      TIERLINE_KAFKA_BOOTSTRAP=127.0.0.1:9092 tierline bench --gateway --rates 50,200 \\
          --provider-latency-ms 200
    """
    if stream_requests is not None and not gateway:
        raise click.UsageError("--stream-requests goes with --gateway")
    settings = load(config_path)
    chosen = [*rates, *rate_list] or list(DEFAULT_GATEWAY_RATES if gateway else DEFAULT_RATES)
    if n is None:
        n = DEFAULT_GATEWAY_REQUESTS if gateway else DEFAULT_REQUESTS
    result = asyncio.run(
        _bench(
            settings, n, chosen, provider_latency_ms, workers_processes, gateway, stream_requests
        )
    )
    if as_json:
        echo_json(result)
    elif gateway:
        from tierline.streams.bench_gateway import describe

        for line in describe(result):
            click.echo(line)
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")


async def _bench(
    settings: object,
    n: int,
    rates: list[float],
    latency: float,
    workers_processes: int,
    gateway: bool = False,
    stream_requests: int | None = None,
) -> dict[str, object]:
    from tierline.streams.bench import run_bench
    from tierline.streams.bench_gateway import run_gateway_bench
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
        if gateway:
            return await run_gateway_bench(
                bootstrap,
                n,
                rates,
                latency,
                workers_processes=workers_processes,
                stream_requests=stream_requests,
                embedded=broker is not None,
                say=say,
            )
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
