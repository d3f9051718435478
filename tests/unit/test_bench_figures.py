"""The bench's arithmetic: CPU per answered message, and tierline's ratios to the floor."""

from __future__ import annotations

import os
import socket
from typing import Any

from tierline.streams.bench import (
    BrokerClock,
    Measurement,
    _per_answer,
    _per_call,
    _ratios,
    _same_work,
    overload,
)
from tierline.streams.cpu_clock import cpu_seconds, listening_pid


def test_cpu_seconds_of_this_process_grow_with_work() -> None:
    before = cpu_seconds(os.getpid())
    assert before is not None
    sum(i * i for i in range(2_000_000))
    after = cpu_seconds(os.getpid())
    assert after is not None and after > before
    assert cpu_seconds(2**22 + 12345) is None  # no such process


def test_cpu_per_answer_is_per_role_and_in_total() -> None:
    used = _per_answer({"router": 1.0, "workers": 2.0}, {"router": 1.5, "workers": 3.0}, 500)
    assert used == {"router": 1.0, "workers": 2.0, "total": 3.0}
    assert _per_answer({}, {"router": 1.0}, 0) == {}


def test_ratios_to_the_floor() -> None:
    result = {
        "overhead_ms": {"p50": 12.0, "p99": 40.0},
        "cpu_ms_per_request": {"total": 2.4},
        "floor": {"overhead_ms": {"p50": 6.0, "p99": 0.0}, "cpu_ms_per_message": {"total": 1.5}},
    }
    assert _ratios(result) == {"overhead_p50": 2.0, "overhead_p99": None, "cpu": 1.6}
    result["floor_transactional"] = {
        "overhead_ms": {"p50": 8.0, "p99": 20.0},
        "cpu_ms_per_message": {"total": 2.0},
    }
    assert _ratios(result, "floor_transactional") == {
        "overhead_p50": 1.5,
        "overhead_p99": 2.0,
        "cpu": 1.2,
    }


def test_the_same_work_floor_adds_one_direct_call_to_the_floor_of_the_guarantee() -> None:
    direct = Measurement(sent=3, cpu_s=0.0012)
    direct.ids.update(["a", "b", "c", "c"])  # a duplicate is not a second answered call
    assert _per_call(direct) == 0.4
    assert _per_call(Measurement(sent=1)) is None  # CPU not taken
    result: dict[str, Any] = {
        "cpu_ms_per_request": {"total": 3.0},
        "floor": {"cpu_ms_per_message": {"total": 1.0}},
        "baseline": {"cpu_ms_per_call": 0.5},
    }
    floor, ratio = _same_work(result) or ({}, {})
    assert floor == {"of": "floor + baseline call", "cpu_ms_per_request": 1.5}
    assert ratio == {"cpu": 2.0}
    result["floor_transactional"] = {"cpu_ms_per_message": {"total": 1.9}}
    floor, ratio = _same_work(result) or ({}, {})
    assert floor["of"] == "floor_transactional + baseline call"
    assert (floor["cpu_ms_per_request"], ratio) == (2.4, {"cpu": 1.25})
    result["baseline"]["cpu_ms_per_call"] = None
    assert _same_work(result) is None


def test_overload_is_the_top_rate_throughput_against_the_peak() -> None:
    runs = [
        {"rate": 250.0, "throughput_rps": 240.0},
        {"rate": 1000.0, "throughput_rps": 300.0},
        {"rate": 500.0, "throughput_rps": 400.0},
    ]
    assert overload(runs) == {
        "peak_rps": 400.0,
        "top_rate": 1000.0,
        "top_rps": 300.0,
        "top_vs_peak": 0.75,
    }
    assert overload(runs[:1]) is None


def test_the_local_broker_is_found_by_the_port_it_listens_on() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert listening_pid(port) is None  # bound, not yet listening
        listener.listen()
        assert listening_pid(port) == os.getpid()
        clock = BrokerClock.near(f"127.0.0.1:{port}", embedded=False)
        assert clock.pid == os.getpid()
        before = clock.seconds()
        sum(i * i for i in range(2_000_000))
        used = clock.per_answer(before, 10)
        assert used is not None and used > 0
    assert listening_pid(port) is None


def test_a_remote_or_embedded_broker_is_not_charged() -> None:
    assert BrokerClock.near("kafka-1.internal:9092", embedded=False).pid is None
    assert BrokerClock.near("127.0.0.1:9092", embedded=True).pid is None
    assert BrokerClock(None, "x").per_answer(1.0, 10) is None
