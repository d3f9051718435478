"""What each cost lever saves on the demo's workload, from ClickHouse.

    python bench/cost_levers.py [--requests 600] [--seed 1] [--json]

Runs the demo's mixed workload (its `latency=batch` share included) through the
whole pipeline on embedded defaults (the embedded broker, chDB, the simulator) once
per configuration, each in a fresh state directory, and reads what ClickHouse billed:

    all levers          routing, the batch APIs, the response cache, context trimming
    no batch API        [batch] enabled = false: the batch lane called synchronously
    no response cache   [cache] enabled = false
    no trimming         [trimming] enabled = false
    no routing          [routing] thresholds 0: every request on the premium tier

The cache applies to requests at temperature 0 here (`[cache] temperature_zero =
true`): two thirds of the workload, asked again on the second pass over it (600
requests walk the workload's 302 entries about twice). The figures depend on the
seed and the simulator's draws: compare them within one run. The first pass over the
workload is answered before the second is sent (a repeat asked while its first copy is
still in flight is no hit, here as in any traffic).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tierline.processors.store.clickhouse import connect
from tierline.streams.config import Settings
from tierline.streams.demo import run_demo
from tierline.streams.runtime import start_pipeline
from tierline.streams.workload import demo_requests, load_workload

POLICY = """version = 1
{routing}
[cache]
enabled = {cache}
temperature_zero = true

[trimming]
enabled = {trimming}
"""


@dataclass(frozen=True)
class Lever:
    name: str
    batch: bool = True
    cache: bool = True
    trimming: bool = True
    routing: bool = True


#: every score at or above 0 goes premium: no request is routed to a cheaper tier
ALL_PREMIUM = """
[routing]
standard_threshold = 0.0
premium_threshold = 0.0
"""

LEVERS = [
    Lever("all levers"),
    Lever("no batch API", batch=False),
    Lever("no response cache", cache=False),
    Lever("no trimming", trimming=False),
    Lever("no routing (all premium)", routing=False),
]


async def run_one(lever: Lever, n: int, seed: int, root: Path) -> dict[str, Any]:
    state = root / lever.name.replace(" ", "-")
    state.mkdir(parents=True)
    policy = state / "policy.toml"
    policy.write_text(
        POLICY.format(
            routing="" if lever.routing else ALL_PREMIUM,
            cache=str(lever.cache).lower(),
            trimming=str(lever.trimming).lower(),
        )
    )
    settings = Settings.model_validate(
        {
            "state_dir": state,
            "metrics_port": 0,
            "router": {"policy": str(policy)},
            "batch": {"enabled": lever.batch, "max_wait_s": 1.0, "poll_s": 0.5},
        }
    )
    requests = demo_requests(n, seed)
    # one pass over the workload, answered, then the rest: a repeat asked while its first
    # copy is still in flight could not be a cache hit, as in any real traffic
    passes = [requests[: len(load_workload())], requests[len(load_workload()) :]]
    pipeline = await start_pipeline(settings, say=lambda text: None)
    try:
        reports = [await run_demo(pipeline, part, timeout_s=600) for part in passes if part]
    finally:
        await pipeline.stop()
    client = connect(settings.clickhouse_url)
    runs = " OR ".join(f"request_id LIKE 'demo-{r.run_id}-%'" for r in reports)
    billed, rows, saved, hits, batched = client.query(
        "SELECT sum(cost_usd), count(), sum(saved_usd), countIf(saved_usd > 0), "
        f"countIf(tier = 'batch') FROM costs FINAL WHERE {runs}"
    ).result_rows[0]
    return {
        "lever": lever.name,
        "requests": sum(r.requests for r in reports),
        "responses": sum(r.responses for r in reports),
        "errors": sum(r.errors for r in reports),
        "billed_usd": str(Decimal(billed or 0)),
        "billed_rows": int(rows),
        "cache_saved_usd": str(Decimal(saved or 0)),
        "cache_hits": int(hits),
        "batch_tier_rows": int(batched),
    }


def main(n: int, seed: int) -> list[dict[str, Any]]:
    """Each configuration in a process of its own (chDB keeps one data path per process)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="tierline-levers-") as tmp:
        for lever in LEVERS:
            print(f"running: {lever.name} ({n} requests)", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, __file__, "--one", lever.name, "--root", tmp]
                + ["--requests", str(n), "--seed", str(seed)],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base = Decimal(rows[0]["billed_usd"])
    lines = [
        "| configuration | answered | billed (ClickHouse) | vs all levers | cache hits "
        "| cache saved |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        billed = Decimal(row["billed_usd"])
        ratio = f"{billed / base:.3f}x" if base else "-"
        lines.append(
            f"| {row['lever']} | {row['responses']}/{row['requests']} | ${billed:.6f} | {ratio} "
            f"| {row['cache_hits']} | ${Decimal(row['cache_saved_usd']):.6f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one configuration, in this process
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        lever = next(lever for lever in LEVERS if lever.name == args.one)
        print(json.dumps(asyncio.run(run_one(lever, args.requests, args.seed, args.root))))
    else:
        results = main(args.requests, args.seed)
        print(json.dumps(results, indent=2) if args.json else table(results))
