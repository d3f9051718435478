"""The ways to run the simulator: in this event loop, blocking until a signal, or in a child.

* `start_simulator()` in the current event loop (tests): returns a
  `RunningSimulator` with `.url`, `.port`, `.stats`, `await .down()` /
  `await .up()` and `await .stop()`;
* `run_simulator_forever()` blocking until SIGINT/SIGTERM (the CLI);
* `spawn_simulator()` in a child process (`python -m processors.simulator`) so a
  benchmark does not share the simulator's event loop or core; its
  `SimulatorProcess` reaches the same switches over the admin routes
  (`fetch_stats()`, `down()`, `up()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from tierline.processors.simulator.knobs import ModelOverride, SimulatorProfile
from tierline.processors.simulator.server import OutageMode, SimulatorServer, SimulatorStats

__all__ = [
    "READY_PREFIX",
    "RunningSimulator",
    "SimulatorProcess",
    "run_simulator_forever",
    "spawn_simulator",
    "start_simulator",
]

READY_PREFIX = "SIMULATOR_READY "
"""The line `python -m processors.simulator` prints once it listens: prefix + URL."""


class RunningSimulator:
    """A simulator listening in the current event loop. Stop it with `await .stop()`."""

    def __init__(self, sim: SimulatorServer, runner: web.AppRunner, host: str, port: int) -> None:
        self._sim = sim
        self._runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        """The base URL, e.g. "http://127.0.0.1:8900" (OpenAI SDKs want url + "/v1")."""

    @property
    def profile(self) -> SimulatorProfile:
        return self._sim.profile

    @property
    def stats(self) -> SimulatorStats:
        """A snapshot of the counts so far."""
        return self._sim.snapshot()

    async def down(self, seconds: float | None = None, mode: OutageMode = "reset") -> None:
        """Start an outage: every provider request is refused for `seconds` (None = until
        `up()`); mode "reset" drops the connection unanswered, "503" answers the wire
        format's 503. `/health` and `/_sim/*` keep answering."""
        self._sim.go_down(seconds, mode)

    async def up(self) -> None:
        """End the outage, if one is on."""
        self._sim.go_up()

    async def set_models(self, overrides: dict[str, ModelOverride]) -> None:
        """Change models' knobs from now on (see `SimulatorServer.set_models`)."""
        self._sim.set_models(overrides)

    async def stop(self) -> None:
        """Release hung requests, stop listening and close every connection."""
        self._sim.stopping.set()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_simulator(
    profile: SimulatorProfile | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = 1.0,
) -> RunningSimulator:
    """Start the simulator in the running event loop; port 0 picks a free port."""
    sim = SimulatorServer(profile or SimulatorProfile())
    runner = web.AppRunner(
        sim.app(),
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return RunningSimulator(sim, runner, host, int(bound))


def run_simulator_forever(
    profile: SimulatorProfile | None = None,
    host: str = "127.0.0.1",
    port: int = 8900,
    *,
    on_ready: Callable[[RunningSimulator], None] | None = None,
) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM; `on_ready` runs once the port is bound."""

    async def serve() -> None:
        sim = await start_simulator(profile, host, port)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, done.set)
        try:
            if on_ready is not None:
                on_ready(sim)
            await done.wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# --------------------------------------------------------------------------- child process


class SimulatorProcess:
    """A simulator in a child process (`python -m processors.simulator`)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self._proc = proc
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self._proc.pid

    def fetch_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The child's counts, read from `GET /_sim/stats`."""
        with urllib.request.urlopen(f"{self.url}/_sim/stats", timeout=timeout) as r:
            data: dict[str, Any] = orjson.loads(r.read())
            return data

    def down(
        self, seconds: float | None = None, mode: OutageMode = "reset", timeout: float = 5.0
    ) -> None:
        """Start an outage in the child (`POST /_sim/down`); see `RunningSimulator.down`."""
        self._post("/_sim/down", {"seconds": seconds, "mode": mode}, timeout)

    def up(self, timeout: float = 5.0) -> None:
        """End the child's outage (`POST /_sim/up`)."""
        self._post("/_sim/up", {}, timeout)

    def set_models(self, overrides: dict[str, dict[str, Any]], timeout: float = 5.0) -> None:
        """Change models' knobs in the child (`POST /_sim/models`), e.g.
        `{"gpt-4.1-nano": {"latency_ms": 20}}`."""
        self._post("/_sim/models", overrides, timeout)

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> None:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as r:
            r.read()

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the child, wait for it (SIGKILL after `timeout`), return its exit code."""
        proc = self._proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spawn_simulator(
    profile: SimulatorProfile | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 15.0,
) -> SimulatorProcess:
    """Start the simulator in its own process and wait until it listens (POSIX only)."""
    profile = profile or SimulatorProfile()
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [
        sys.executable,
        "-m",
        "tierline.processors.simulator",
        "--host",
        host,
        "--port",
        str(port),
        "--profile-json",
        profile.model_dump_json(),
        "--exit-with-parent",
    ]
    # its own session: a Ctrl-C meant for the parent must not stop the simulator before the
    # parent has finished its in-flight calls; the parent stops it (and --exit-with-parent)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    loop_deadline = time.monotonic() + startup_timeout
    buf = b""
    while b"\n" not in buf:
        remaining = loop_deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"simulator did not start within {startup_timeout} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                code = proc.wait()
                raise RuntimeError(f"simulator exited with code {code} before it was ready")
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode().strip()
    if not line.startswith(READY_PREFIX):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"unexpected first line from the simulator: {line!r}")
    return SimulatorProcess(proc, line[len(READY_PREFIX) :])
