"""`python -m processors.simulator`: run the provider simulator in this process.

Used by `spawn_simulator()` so a benchmark gets the simulator on its own core.
Prints one line, ``SIMULATOR_READY http://HOST:PORT``, once it listens, then
nothing more; SIGTERM or Ctrl-C stops it, and so does the end of the parent
process with `--exit-with-parent` (so a crashed benchmark leaves no orphan).
For humans, `tierline simulate` is the friendlier front end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from tierline.processors.simulator.knobs import SimulatorProfile
from tierline.processors.simulator.launch import (
    READY_PREFIX,
    RunningSimulator,
    run_simulator_forever,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m processors.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one is gone",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--profile", metavar="FILE", help="a SimulatorProfile JSON file")
    source.add_argument("--profile-json", metavar="JSON", help="a SimulatorProfile as JSON text")
    args = parser.parse_args(argv)
    if args.profile:
        profile = SimulatorProfile.from_json_file(args.profile)
    elif args.profile_json:
        profile = SimulatorProfile.model_validate_json(args.profile_json)
    else:
        profile = SimulatorProfile()

    parent = os.getppid()
    watchers: list[asyncio.Task[None]] = []

    async def watch_parent() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event tells of a parent's exit; poll
            await asyncio.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)  # the graceful path of run_simulator_forever

    def ready(sim: RunningSimulator) -> None:
        if args.exit_with_parent:
            watchers.append(asyncio.get_running_loop().create_task(watch_parent()))
        sys.stdout.write(f"{READY_PREFIX}{sim.url}\n")
        sys.stdout.flush()

    run_simulator_forever(profile, args.host, args.port, on_ready=ready)


if __name__ == "__main__":
    main()
