"""Several `tierline run` processes under one parent: one per core, since a Python process uses one.

`tierline run --processes N` starts N children with the same roles (the sink once: more
sink processes gain nothing and embedded chDB admits one; the gateway once too: its
event loop holds thousands of waiting calls, and N of them could not share one HTTP
port; scale it with replicas, each a `--role gateway` of its own), forwards Ctrl-C and SIGTERM
to them, and waits for them to finish their in-flight work. A child that dies on its own
stops the others, and the parent exits non-zero: a half-running deployment is worse
than a stopped one, and the service manager restarts the whole.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

#: roles that run in one child of their own whatever N is
ONCE = ("sink", "gateway")


def child_commands(
    roles: Sequence[str], processes: int, passthrough: Sequence[str]
) -> list[list[str]]:
    """The command line of each child: `processes` of the scaled roles; the sink and the
    gateway once each."""
    base = [sys.executable, "-m", "tierline.streams.cli", "run", *passthrough]
    scaled = [r for r in roles if r not in ONCE]
    commands = []
    if scaled:
        role_args = [arg for r in scaled for arg in ("--role", r)]
        commands += [[*base, *role_args] for _ in range(processes)]
    for role in ONCE:
        if role in roles:
            commands.append([*base, "--role", role])
    return commands


def supervise(
    commands: list[list[str]],
    say: Callable[[str], None],
    grace_s: float = 60.0,
) -> int:
    """Run `commands` until they end or a signal asks; the exit code the parent should use."""
    children = [subprocess.Popen(command) for command in commands]
    say(f"tierline: supervising {len(children)} processes ({', '.join(_pids(children))})")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            ended = [c for c in children if c.poll() is not None]
            if ended:
                for child in ended:
                    say(f"tierline: process {child.pid} exited with {child.returncode}")
                break
            time.sleep(0.2)
        _stop_all(children, grace_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        return 0
    return 1


def _stop_all(children: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _pids(children: list[subprocess.Popen[bytes]]) -> list[str]:
    return [str(c.pid) for c in children]
