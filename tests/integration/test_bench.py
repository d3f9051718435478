"""`tierline bench` on a real broker: every request answered once at each rate, and every
figure the issue asks for is there and adds up. Speed is measured by the bench, never
asserted here."""

from __future__ import annotations

from typing import Any

from tierline.streams.bench import run_bench


async def test_the_bench_answers_every_request_once_and_reports_each_floor(
    kafka_bootstrap: str,
) -> None:
    said: list[str] = []
    result = await run_bench(kafka_bootstrap, 40, [20.0, 40.0], 20.0, say=said.append)
    runs: list[dict[str, Any]] = result["runs"]
    print(result)
    assert [run["rate"] for run in runs] == [20.0, 40.0]
    for run in runs:
        assert "note" not in run  # real Kafka: no "not representative" warning
        assert (run["requests"], run["lost"], run["duplicates"], run["errors"]) == (40, 0, 0, 0)
        assert run["baseline"]["lost"] == 0 and run["floor"]["lost"] == 0
        assert run["floor_transactional"]["lost"] == 0
        cpu = run["cpu_ms_per_request"]
        assert {"router", "workers", "sink"} <= set(cpu)
        assert cpu["total"] == round(sum(cpu[r] for r in ("router", "workers", "sink")), 3)
        assert run["broker_cpu_ms_per_request"] is not None  # the broker runs here
        # the same-work floor: the transactional floor plus one direct call's client CPU
        call = run["baseline"]["cpu_ms_per_call"]
        assert call is not None and call > 0
        txn = run["floor_transactional"]["cpu_ms_per_message"]["total"]
        same = run["floor_same_work"]
        assert same["of"] == "floor_transactional + baseline call"
        assert same["cpu_ms_per_request"] == round(txn + call, 3)
        assert run["vs_floor_same_work"]["cpu"] == round(
            cpu["total"] / same["cpu_ms_per_request"], 2
        )
        assert run["vs_floor"]["cpu"] is not None and run["vs_floor_transactional"]["cpu"]
    figures = result["overload"]
    assert figures["peak_rps"] == max(run["throughput_rps"] for run in runs)
    assert (figures["top_rate"], figures["top_rps"]) == (40.0, runs[1]["throughput_rps"])
    assert 0 < figures["top_vs_peak"] <= 1
    assert any("transactional floor" in line for line in said)
