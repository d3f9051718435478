"""Roles start from nothing, and say in one line why when they cannot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.support import make_settings
from tierline.processors.simulator import RunningSimulator
from tierline.streams.runtime import start_pipeline


async def test_the_router_starts_with_a_state_directory_that_does_not_exist(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    state = tmp_path / "not" / "yet" / "there"
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, state)
    pipeline = await start_pipeline(settings, roles=("router",))
    try:
        assert state.is_dir()
        assert pipeline.router is not None and pipeline.failed_roles() == []
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)


def run_router(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierline.streams.cli", "run", "--role", "router"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unreachable_broker_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    done = run_router(tmp_path, TIERLINE_KAFKA_BOOTSTRAP="127.0.0.1:1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: could not start router (Kafka: 127.0.0.1:1)")
    assert "Unable to bootstrap" in last


def test_a_state_directory_that_cannot_be_made_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = run_router(tmp_path, TIERLINE_STATE_DIR=str(tmp_path / "file" / "state"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot create the state directory" in done.stderr.strip().splitlines()[-1]


def test_a_gateway_without_api_keys_refuses_to_start_in_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tierline.streams.cli", "run", "--role", "gateway"],
        cwd=tmp_path,
        env={**os.environ, "TIERLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "the gateway has no API keys" in last and "allow_anonymous_tenant" in last
