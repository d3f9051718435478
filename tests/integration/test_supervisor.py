"""`tierline run --processes N`: N processes join the group; a dead one stops them all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tierline.processors.simulator import RunningSimulator
from tierline.streams.supervisor import child_commands


def test_the_sink_runs_once_and_the_other_roles_n_times() -> None:
    commands = child_commands(["router", "workers", "sink"], 3, ["--log-level", "info"])
    roles = [c[c.index("--role") :] for c in commands]
    assert roles == [["--role", "router", "--role", "workers"]] * 3 + [["--role", "sink"]]
    assert all(c[:4] == [sys.executable, "-m", "tierline.streams.cli", "run"] for c in commands)


def test_the_gateway_runs_once_like_the_sink() -> None:
    commands = child_commands(["router", "workers", "sink", "gateway"], 2, [])
    roles = [c[c.index("--role") :] for c in commands]
    assert roles == [["--role", "router", "--role", "workers"]] * 2 + [
        ["--role", "sink"],
        ["--role", "gateway"],
    ]


def test_processes_need_real_kafka(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIERLINE_KAFKA_BOOTSTRAP"}
    done = subprocess.run(
        [sys.executable, "-m", "tierline.streams.cli", "run", "--processes", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "--processes needs real Kafka" in done.stderr


def members(bootstrap: str, group: str) -> int:
    """Members of `group` now (0 while its coordinator is not elected yet)."""

    async def ask() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_consumer_groups([group])
            return len(described.groups[0][5]) if described.groups else 0
        except KafkaError:
            return 0
        finally:
            await admin.close()

    return asyncio.run(ask())


def test_two_worker_processes_share_a_tier_and_one_dying_stops_both(
    kafka_bootstrap: str, topic_prefix: str, simulator: RunningSimulator, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TIERLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TIERLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "TIERLINE_SIMULATOR_URL": simulator.url,
        "TIERLINE_WORKER_TIERS": "economy",
        "TIERLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    command = [sys.executable, "-m", "tierline.streams.cli", "run", "--role", "workers"]
    parent = subprocess.Popen(
        [*command, "--processes", "2"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert parent.stderr is not None
        line = parent.stderr.readline()
        while "supervising" not in line:
            line = parent.stderr.readline()
        pids = [int(p) for p in re.findall(r"\d+", line.split("(")[1])]
        assert len(pids) == 2
        group = f"{topic_prefix}worker.economy"
        deadline = time.monotonic() + 90
        while members(kafka_bootstrap, group) < 2 and time.monotonic() < deadline:
            time.sleep(1)
        assert members(kafka_bootstrap, group) == 2  # both share the tier
        os.kill(pids[0], signal.SIGKILL)  # one dies on its own
        assert parent.wait(timeout=90) == 1  # the parent stops the other and says so
        assert not _alive(pids[1])
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive: its parent has not reaped it yet
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"
