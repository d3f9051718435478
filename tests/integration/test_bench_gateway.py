"""`tierline bench --gateway` on a real broker: every call answered on both paths, streamed
and not, and the figures are there. Speed is measured by the bench, never asserted here."""

from __future__ import annotations

from typing import Any

from tierline.streams.bench_gateway import TTFT_NOT_MEASURED, describe, run_gateway_bench


async def test_the_gateway_bench_answers_every_call_both_ways_and_reports_figures(
    kafka_bootstrap: str,
) -> None:
    said: list[str] = []
    result = await run_gateway_bench(kafka_bootstrap, 30, [20.0], 20.0, say=said.append)
    (run,) = result["runs"]
    print(run)
    assert run["rate"] == 20.0 and run["requests"] == 30 and "note" not in run
    for path in ("direct", "gateway"):
        figures: dict[str, Any] = run[path]
        assert (figures["sent"], figures["ok"], figures["errors"]) == (30, 30, 0), figures
        latency = figures["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"], latency
        assert figures["throughput_rps"] > 0
    # the simulator's latency is in both paths' figures
    assert run["direct"]["latency_ms"]["p50"] >= 20.0
    assert run["gateway"]["latency_ms"]["p50"] >= 20.0
    overhead = run["overhead"]
    assert all(isinstance(overhead[k], float) for k in ("p50_ms", "p99_ms"))
    assert overhead["p50_ratio"] > 0 and overhead["p99_ratio"] > 0
    assert {"router", "workers", "sink", "gateway", "total"} <= set(run["cpu_ms_per_request"])

    # the streamed calls (all 30 by default: fewer than 300): every one answered both ways,
    # a content event and [DONE], timed to each
    streamed = run["streamed"]
    assert streamed["requests"] == 30
    ttft = run["ttft_ms"]
    for path in ("direct", "gateway"):
        figures = streamed[path]
        assert (figures["sent"], figures["ok"], figures["errors"]) == (30, 30, 0), figures
        first, total = figures["ttft_ms"], figures["total_ms"]
        assert 0 < first["p50"] <= first["p95"] <= first["p99"], first
        assert 0 < total["p50"] <= total["p95"] <= total["p99"], total
        assert first["p50"] <= total["p50"] and first["p99"] <= total["p99"]
        assert ttft[path] == first
    # the first token comes after the provider's latency, both ways
    assert ttft["direct"]["p50"] >= 20.0 and ttft["gateway"]["p50"] >= 20.0
    assert all(isinstance(ttft["overhead"][k], float) for k in ("p50_ms", "p99_ms"))
    assert ttft["overhead"]["p50_ratio"] > 0 and ttft["overhead"]["p99_ratio"] > 0

    lines = describe(result)
    assert f"  TTFT: {TTFT_NOT_MEASURED}" not in lines
    assert any(line.startswith("  TTFT overhead p50 ") for line in lines)
    assert any(line.startswith("gateway at http://127.0.0.1:") for line in said)
