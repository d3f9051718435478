"""`tierline run`: start tierline's roles and keep them running."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import click

from tierline.streams.cli.common import config_option, load, log_level_option, say, setup_logging
from tierline.streams.runtime import ROLES, StartupError, start_pipeline
from tierline.streams.supervisor import child_commands, supervise


@click.command("run")
@config_option
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice([*ROLES, "all"]),
    default=("all",),
    show_default=True,
    help="Which roles this process runs; repeat for several. Scale each role separately.",
)
@click.option(
    "--status-every", default=10.0, show_default=True, help="Seconds between status lines."
)
@log_level_option
@click.option(
    "--debug-kafka",
    is_flag=True,
    envvar="TIERLINE_DEBUG_KAFKA",
    help="Let aiokafka and faust log at --log-level too (their DEBUG lines print whole "
    "records, prompts included); otherwise they are held to warnings.",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Run the roles in this many processes (one per core; the sink runs once). "
    "Needs real Kafka.",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics, /healthz and /readyz here for every role of the process "
    "[default: 9464, or TIERLINE_METRICS_PORT / metrics_port; 0 = any free port; "
    "TIERLINE_METRICS_PORT=off disables]. With --processes N, process i uses the port + i.",
)
@click.option(
    "--http-port",
    default=None,
    type=click.IntRange(0, 65535),
    envvar="TIERLINE_HTTP_PORT",
    help="The gateway's OpenAI-compatible HTTP API listens here [default: 8080, or "
    "[gateway] http_port; 0 = any free port, logged].",
)
def command(
    config_path: Path | None,
    roles: tuple[str, ...],
    status_every: float,
    log_level: str,
    debug_kafka: bool,
    processes: int,
    metrics_port: int | None,
    http_port: int | None,
) -> None:
    """Run the router, the tier workers, the cost sink and the gateway until Ctrl-C.

    \b
    With nothing configured this starts the embedded broker, chDB under
    ./.tierline/ and the provider simulator, and says so. Point it at real
    services with a config file or environment variables:
      TIERLINE_KAFKA_BOOTSTRAP=kafka:9092 \\
      TIERLINE_CLICKHOUSE_URL=http://default:@clickhouse:8123/default \\
      OPENAI_API_KEY=... tierline run
    \b
    Run one role per process to scale them apart, or several processes of one:
      tierline run --role router
      tierline run --role workers --processes 2
      tierline run --role sink
      tierline run --role gateway --http-port 8080
    \b
    The gateway (an OpenAI-compatible HTTP API) needs API keys ([gateway.keys]);
    without them `--role all` starts the other roles and says so.
    """
    setup_logging(log_level, debug_kafka)
    settings = load(config_path)
    if metrics_port is not None:
        settings.metrics_port = metrics_port
    if http_port is not None:
        settings.gateway.http_port = http_port
    chosen = ROLES if "all" in roles else tuple(r for r in ROLES if r in roles)
    if "all" in roles and not settings.gateway.configured:
        chosen = tuple(r for r in chosen if r != "gateway")
        say(
            "tierline: not starting the gateway: it has no API keys ([gateway.keys], or "
            "[gateway] allow_anonymous_tenant); the other roles start"
        )
    if processes > 1:
        if settings.embedded_kafka:
            raise click.ClickException(
                "--processes needs real Kafka (TIERLINE_KAFKA_BOOTSTRAP): each process "
                "would otherwise start an embedded broker of its own"
            )
        passthrough = ["--status-every", str(status_every), "--log-level", log_level]
        if config_path is not None:
            passthrough += ["--config", str(config_path)]
        if debug_kafka:
            passthrough.append("--debug-kafka")
        if http_port is not None:
            passthrough += ["--http-port", str(http_port)]
        commands = child_commands(chosen, processes, passthrough)
        port = settings.metrics_port
        if port != "off":
            for index, child in enumerate(commands):
                child += ["--metrics-port", str(port + index if port else 0)]
        code = supervise(commands, say)
        raise SystemExit(code)
    asyncio.run(_run(settings, chosen, status_every))


async def _run(settings: object, roles: tuple[str, ...], status_every: float) -> None:
    from tierline.streams.config import Settings

    assert isinstance(settings, Settings)
    say(f"tierline: starting {', '.join(roles)} (config: {settings.source})")
    try:
        pipeline = await start_pipeline(settings, roles, say=say)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    say(
        f"tierline: running on Kafka {pipeline.bootstrap}; "
        f"requests go to {pipeline.topics.requests}. Ctrl-C stops."
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=status_every)
            failed = pipeline.failed_roles()
            if failed:
                raise click.ClickException(
                    f"role(s) failed: {', '.join(failed)}; see the log above"
                )
            parts = [f"up {time.monotonic() - started:.0f}s"]
            if pipeline.router:
                s = pipeline.router.stats
                parts.append(f"router {s.routed} routed/{s.rejected} rejected")
            for tier, worker in pipeline.workers.items():
                w = worker.stats[tier]
                if w.received:
                    parts.append(
                        f"{tier} {w.answered} ok/{w.errors} err/{worker.in_flight(tier)} in flight"
                    )
            if pipeline.sink:
                parts.append(f"sink {pipeline.sink.stats.inserted} rows")
            if pipeline.gateway:
                parts.append(f"gateway {len(pipeline.gateway.waiters)} waiting")
            say(" | ".join(parts))
    finally:
        say("tierline: stopping (finishing in-flight requests)")
        await pipeline.stop()
