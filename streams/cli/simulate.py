"""`tierline simulate`: run the provider simulator on a local port until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tierline.processors.simulator import RunningSimulator


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8900, show_default=True, type=int, help="Port (0 = any free).")
@click.option("--seed", type=int, default=None, help="Seed of every draw.  [default: 0]")
@click.option("--latency-ms", type=float, default=None, help="Median latency in ms.  [default: 0]")
@click.option(
    "--latency-jitter",
    type=float,
    default=None,
    help="Lognormal sigma of the latency; 0 = always the median.  [default: 0]",
)
@click.option(
    "--error-rate",
    type=float,
    default=None,
    help="Share of 5xx answers (OpenAI 500/502/503, Anthropic 500/529, Gemini 500/503).",
)
@click.option(
    "--rate-limit-rate", type=float, default=None, help="Share of 429 answers with Retry-After."
)
@click.option(
    "--retry-after-s",
    type=float,
    default=None,
    help="Retry-After of a 429, may be fractional.  [default: 1]",
)
@click.option(
    "--hang-rate",
    type=float,
    default=None,
    help="Share of requests accepted and never answered.",
)
@click.option(
    "--set",
    "fields",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Any other profile field, repeatable (VALUE read as JSON when it parses), e.g. "
    "--set batch_delay_s=5 --set batch_expire_rate=0.1 --set stream_cut_rate=0.05 "
    "--set garbage_rate=0.01.",
)
@click.option(
    "--profile",
    "profile_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A SimulatorProfile JSON file; the options above override its fields.",
)
def command(
    host: str,
    port: int,
    seed: int | None,
    latency_ms: float | None,
    latency_jitter: float | None,
    error_rate: float | None,
    rate_limit_rate: float | None,
    retry_after_s: float | None,
    hang_rate: float | None,
    fields: tuple[str, ...],
    profile_file: Path | None,
) -> None:
    """Run a fake OpenAI / Anthropic / Gemini API on a local port, until Ctrl-C.

    It answers in each provider's real wire format (bodies, error bodies, status
    codes, rate-limit headers), with seeded latency and faults, so adapters,
    retries, billing, the demo and benchmarks run with no network and no API key.
    Any API key works except "sim-invalid-key", which gets the auth error.

    \b
    Examples:
      tierline simulate
      tierline simulate --latency-ms 500 --latency-jitter 0.3 --error-rate 0.02
      tierline simulate --port 0 --profile slow-premium.json --seed 7
      tierline simulate --set batch_delay_s=5 --set stream_chunk_ms=40

    \b
    Then, in another shell:
      curl -s localhost:8900/v1/chat/completions -H 'Authorization: Bearer x' \\
        -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

    \b
    A profile file sets any SimulatorProfile field, per-model overrides too:
      {"latency_ms": 300, "rate_limit_rate": 0.05, "retry_after_s": 0.5,
       "models": {"claude-opus-4-1": {"latency_ms": 2000, "context_window": 200000}}}

    \b
    Force an outcome from a prompt: put a directive in the last user message,
    e.g. [sim:error=503], [sim:rate_limit=0.2], [sim:hang], [sim:garbage],
    [sim:refusal], [sim:latency=50], [sim:fail_first=2], [sim:output_tokens=7].
    """
    from tierline.processors.simulator import SimulatorProfile, run_simulator_forever

    profile = (
        SimulatorProfile.from_json_file(profile_file)
        if profile_file is not None
        else SimulatorProfile()
    )
    given: dict[str, Any] = {
        "seed": seed,
        "latency_ms": latency_ms,
        "latency_jitter": latency_jitter,
        "error_rate": error_rate,
        "rate_limit_rate": rate_limit_rate,
        "retry_after_s": retry_after_s,
        "hang_rate": hang_rate,
    }
    # the named options win over a --set of the same field
    changes = {
        **set_fields(fields, frozenset(SimulatorProfile.model_fields)),
        **{k: v for k, v in given.items() if v is not None},
    }
    if changes:
        try:
            profile = profile.with_overrides(**changes)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc

    run_simulator_forever(profile, host, port, on_ready=_announce)
    click.echo("Simulator stopped.")


def set_fields(pairs: tuple[str, ...], known: frozenset[str]) -> dict[str, Any]:
    """`--set FIELD=VALUE` pairs as profile changes: VALUE as JSON when it parses (numbers,
    true/false, lists, objects), else as the string it is; an unknown FIELD is an error
    that lists the known ones."""
    import orjson

    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="--set")
        if name not in known:
            raise click.BadParameter(
                f"no profile field {name!r}; the fields: {', '.join(sorted(known))}",
                param_hint="--set",
            )
        try:
            changes[name] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            changes[name] = raw
    return changes


def _announce(sim: RunningSimulator) -> None:
    """What the operator needs to point a client at it: URLs, routes, the faults in force."""
    from tierline.processors.simulator import ROUTES

    p = sim.profile
    click.echo(f"Provider simulator serving {sim.url}")
    click.echo(
        f"  seed {p.seed}, latency {p.latency_ms:g} ms (jitter {p.latency_jitter:g}), "
        f"errors {p.error_rate:.1%}, 429s {p.rate_limit_rate:.1%} "
        f"(Retry-After {p.retry_after_s:g} s), hangs {p.hang_rate:.1%}"
    )
    if p.models:
        click.echo(f"  per-model overrides: {', '.join(sorted(p.models))}")
    for name, method, path in ROUTES:
        click.echo(f"  {name:<10} {method:<4} {sim.url}{path}")
    click.echo(f"  base URLs: OpenAI {sim.url}/v1   Anthropic {sim.url}   Gemini {sim.url}/v1beta")
    click.echo("Press Ctrl-C to stop.")
