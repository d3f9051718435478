"""`tierline bench --gateway`'s arithmetic: percentiles, the gateway's overhead, the pacing."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from click.testing import CliRunner

from tierline.streams.bench_gateway import (
    TTFT_NOT_MEASURED,
    PathResult,
    announced_url,
    chat_bodies,
    describe,
    gateway_env,
    overhead,
    paced,
    percentiles,
    rate_result,
    schedule,
)


def test_percentiles_pick_by_the_benchs_rule() -> None:
    values = [float(x) for x in range(100, 0, -1)]  # 1..100, unsorted
    assert percentiles(values) == {"p50": 51.0, "p95": 96.0, "p99": 100.0}
    assert percentiles([7.123]) == {"p50": 7.12, "p95": 7.12, "p99": 7.12}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_overhead_is_gateway_minus_direct_and_their_ratio() -> None:
    direct = {"p50": 20.0, "p95": 30.0, "p99": 40.0}
    gateway = {"p50": 35.0, "p95": 60.0, "p99": 100.0}
    assert overhead(direct, gateway) == {
        "p50_ms": 15.0,
        "p50_ratio": 1.75,
        "p99_ms": 60.0,
        "p99_ratio": 2.5,
    }
    # a side without figures gives none; a zero direct figure gives no ratio
    assert overhead({"p50": None, "p99": None}, gateway) == dict.fromkeys(
        ("p50_ms", "p50_ratio", "p99_ms", "p99_ratio")
    )
    assert overhead({"p50": 0.0, "p99": 1.0}, {"p50": 3.0, "p99": None}) == {
        "p50_ms": 3.0,
        "p50_ratio": None,
        "p99_ms": None,
        "p99_ratio": None,
    }


def test_the_schedule_is_open_loop_at_the_rate() -> None:
    assert schedule(5, 50) == [0.0, 0.02, 0.04, 0.06, 0.08]
    assert schedule(0, 10) == []
    times = schedule(200, 200)
    assert len(times) == 200 and times[-1] == pytest.approx(199 / 200)
    with pytest.raises(ValueError):
        schedule(3, 0)


async def test_paced_sends_each_call_at_its_time_and_catches_up_when_late() -> None:
    now = [100.0]
    sent: list[tuple[int, float]] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    def send(i: int) -> None:
        sent.append((i, round(now[0] - 100.0, 6)))
        if i == 1:
            now[0] += 0.25  # sending call 1 took long: calls 2 and 3 are late

    await paced(5, 10, send, clock=lambda: now[0], sleep=sleep)
    # 0 at once, 1 at 0.1; 2 and 3 late, sent at once (never skipped); 4 on time again
    assert sent == [(0, 0.0), (1, 0.1), (2, 0.35), (3, 0.35), (4, 0.4)]
    assert slept == [0.1, 0.05]


def test_a_path_summary_counts_ok_and_errors() -> None:
    path = PathResult(sent=4, latencies_ms=[10.0, 12.0, 30.0], started=1.0, finished=2.5)
    path.errors["503"] += 1
    summary = path.summary()
    assert summary["sent"] == 4 and summary["ok"] == 3 and summary["errors"] == 1
    assert summary["error_kinds"] == {"503": 1}
    assert summary["throughput_rps"] == 2.0
    assert summary["latency_ms"] == {"p50": 12.0, "p95": 30.0, "p99": 30.0}


def test_a_rate_result_has_both_paths_the_overhead_and_no_ttft() -> None:
    direct = PathResult(sent=2, latencies_ms=[20.0, 22.0], started=0, finished=1)
    through = PathResult(sent=2, latencies_ms=[30.0, 50.0], started=0, finished=1)
    run = rate_result(50, 2, 20.0, direct, through)
    assert run["overhead"]["p50_ms"] == 28.0 and run["overhead"]["p50_ratio"] == 2.27
    assert run["ttft_ms"] is None
    lines = describe({"runs": [run]})
    assert f"  TTFT: {TTFT_NOT_MEASURED}" in lines
    assert any(line.strip().startswith("gateway  sent 2 ok 2 errors 0") for line in lines)
    assert any("overhead p50 28.0 ms (2.27x)" in line for line in lines)


def test_the_gateway_url_is_read_from_its_log() -> None:
    log = (
        "tierline: starting gateway (config: defaults)\n"
        "gateway: OpenAI API at http://127.0.0.1:41234/v1 (1 API keys)\n"
    )
    assert announced_url(log) == "http://127.0.0.1:41234/v1"
    assert announced_url("tierline: starting gateway\n") is None


def test_the_gateway_env_holds_the_keys_digest_not_the_key_and_binds_loopback() -> None:
    env = gateway_env("sk-bench-secret")
    assert "sk-bench-secret" not in "".join(env.values())
    digest = hashlib.sha256(b"sk-bench-secret").hexdigest()
    assert orjson.loads(env["TIERLINE_GATEWAY_KEYS"]) == {f"sha256:{digest}": "bench"}
    assert env["TIERLINE_GATEWAY_HTTP_HOST"] == "127.0.0.1"
    assert env["TIERLINE_GATEWAY_HTTP_PORT"] == "0"


def test_both_paths_send_the_same_openai_body_for_an_openai_model() -> None:
    bodies = chat_bodies(3, seed=3)
    assert bodies == chat_bodies(3, seed=3)
    for body in bodies:
        data = orjson.loads(body)
        assert set(data) == {"model", "messages"} and data["model"] == "gpt-4.1-nano"


def test_the_cli_parses_rates_and_refuses_bad_ones() -> None:
    from tierline.streams.cli.bench import command

    runner = CliRunner()
    refused = runner.invoke(command, ["--gateway", "--rates", "50,zero"])
    assert refused.exit_code == 2 and "give rates as numbers" in refused.output
    refused = runner.invoke(command, ["--gateway", "--rates", "50,-1"])
    assert refused.exit_code == 2 and "every rate must be > 0" in refused.output
