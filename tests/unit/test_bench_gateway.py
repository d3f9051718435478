"""`tierline bench --gateway`'s arithmetic: percentiles, the gateway's overhead, the pacing,
and the reading of a streamed answer (time to the first content event, to `[DONE]`)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

import orjson
import pytest
from click.testing import CliRunner

from tierline.processors.providers.http_client import provider_client
from tierline.processors.simulator import SimulatorProfile, start_simulator
from tierline.streams.bench_gateway import (
    TTFT_NOT_MEASURED,
    EventScan,
    PathResult,
    StreamResult,
    announced_url,
    chat_bodies,
    describe,
    gateway_env,
    measure_stream,
    overhead,
    paced,
    percentiles,
    rate_result,
    schedule,
    stream_fault,
)


def _chunk(delta: Mapping[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


#: a streamed answer as the gateway writes it: the role-only opening (empty content),
#: two content chunks, the finishing chunk, `[DONE]`
OPENING = _chunk({"role": "assistant", "content": ""})
FIRST = _chunk({"content": "Hel"})
STREAM = OPENING + FIRST + _chunk({"content": "lo"}) + _chunk({}, "stop") + b"data: [DONE]\n\n"


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


def test_a_rate_result_without_streamed_calls_has_both_paths_the_overhead_and_no_ttft() -> None:
    direct = PathResult(sent=2, latencies_ms=[20.0, 22.0], started=0, finished=1)
    through = PathResult(sent=2, latencies_ms=[30.0, 50.0], started=0, finished=1)
    run = rate_result(50, 2, 20.0, direct, through)
    assert run["overhead"]["p50_ms"] == 28.0 and run["overhead"]["p50_ratio"] == 2.27
    assert run["ttft_ms"] is None and run["streamed"] is None
    lines = describe({"runs": [run]})
    assert f"  TTFT: {TTFT_NOT_MEASURED}" in lines
    assert any(line.strip().startswith("gateway  sent 2 ok 2 errors 0") for line in lines)
    assert any("overhead p50 28.0 ms (2.27x)" in line for line in lines)


def test_a_stream_summary_has_ttft_and_time_to_done_apart() -> None:
    path = StreamResult(
        sent=3, latencies_ms=[120.0, 150.0], ttfts_ms=[100.0, 104.0], started=0, finished=2
    )
    path.errors["no [DONE]"] += 1
    summary = path.summary()
    assert (summary["sent"], summary["ok"], summary["errors"]) == (3, 2, 1)
    assert summary["error_kinds"] == {"no [DONE]": 1}
    assert summary["throughput_rps"] == 1.0
    assert summary["ttft_ms"] == {"p50": 104.0, "p95": 104.0, "p99": 104.0}
    assert summary["total_ms"] == {"p50": 150.0, "p95": 150.0, "p99": 150.0}
    assert "latency_ms" not in summary  # a streamed call's two times, each named
    assert StreamResult(sent=1).summary()["ttft_ms"] == dict.fromkeys(("p50", "p95", "p99"))


def test_a_rate_result_with_streamed_calls_reports_ttft_both_ways_and_its_overhead() -> None:
    direct = PathResult(sent=2, latencies_ms=[20.0, 22.0], started=0, finished=1)
    through = PathResult(sent=2, latencies_ms=[30.0, 50.0], started=0, finished=1)
    direct_s = StreamResult(
        sent=4,
        ttfts_ms=[20.0, 21.0, 22.0, 40.0],
        latencies_ms=[60.0, 61.0, 62.0, 80.0],
        started=0,
        finished=2,
    )
    through_s = StreamResult(
        sent=4,
        ttfts_ms=[25.0, 30.0, 33.0, 50.0],
        latencies_ms=[70.0, 71.0, 72.0, 90.0],
        started=0,
        finished=2,
    )
    run = rate_result(50, 2, 20.0, direct, through, direct_s, through_s)
    ttft = run["ttft_ms"]
    assert ttft["direct"] == {"p50": 22.0, "p95": 40.0, "p99": 40.0}
    assert ttft["gateway"] == {"p50": 33.0, "p95": 50.0, "p99": 50.0}
    assert ttft["overhead"] == {"p50_ms": 11.0, "p50_ratio": 1.5, "p99_ms": 10.0, "p99_ratio": 1.25}
    streamed = run["streamed"]
    assert streamed["requests"] == 4
    assert streamed["direct"]["ok"] == streamed["gateway"]["ok"] == 4
    assert streamed["gateway"]["total_ms"]["p50"] == 72.0
    lines = describe({"runs": [run]})
    assert f"  TTFT: {TTFT_NOT_MEASURED}" not in lines
    assert any(line.startswith("  streamed: 4 calls each way") for line in lines)
    assert any(
        line.startswith("  gateway  sent 4 ok 4 errors 0  TTFT p50 33.0 p95 50.0 p99 50.0 ms")
        and "to [DONE] p50 72.0 p99 90.0 ms" in line
        for line in lines
    )
    assert "  TTFT overhead p50 11.0 ms (1.50x)  p99 10.0 ms (1.25x)" in lines
    # a streamed pass with no answer has no figures, and says so with dashes
    run = rate_result(50, 2, 20.0, direct, through, StreamResult(sent=1), through_s)
    assert run["ttft_ms"]["overhead"] == dict.fromkeys(
        ("p50_ms", "p50_ratio", "p99_ms", "p99_ratio")
    )
    assert "  TTFT overhead p50 - ms (-)  p99 - ms (-)" in describe({"runs": [run]})


def _feed_all(pieces: list[bytes]) -> tuple[EventScan, int | None]:
    """Feed `pieces`; the scan, and the index of the piece that brought the first content."""
    scan, at = EventScan(), None
    for i, piece in enumerate(pieces):
        if scan.feed(piece):
            assert at is None, "first content reported twice"
            at = i
    return scan, at


def test_the_first_content_event_is_found_wherever_the_bytes_are_split() -> None:
    # the event with content ends with the blank line after FIRST: that byte completes it
    completes = len(OPENING) + len(FIRST) - 1
    rng = random.Random(5)
    splits = [[], list(range(1, len(STREAM))), [completes, completes + 1], [completes - 1]]
    splits += [sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12))) for _ in range(300)]
    for cuts in splits:
        bounds = [0, *cuts, len(STREAM)]
        pieces = [STREAM[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        scan, at = _feed_all(pieces)
        assert at is not None, cuts
        # the piece that brought it is the one holding the completing byte
        assert bounds[at] <= completes < bounds[at + 1], (cuts, at)
        assert scan.content and scan.done and scan.failure is None and scan.answered
        assert scan.events == 5


def test_the_role_only_opening_is_no_content_and_crlf_lines_are_read() -> None:
    scan = EventScan()
    assert scan.feed(OPENING) is False and not scan.content
    assert scan.feed(b"data: " + FIRST[6:-2]) is False  # no blank line yet: not complete
    assert scan.feed(b"\n") is False
    assert scan.feed(b"\n") is True
    assert scan.feed(_chunk({"content": "more"})) is False  # only the first one counts
    crlf = STREAM.replace(b"\n", b"\r\n")
    scan, at = _feed_all([crlf[i : i + 7] for i in range(0, len(crlf), 7)])
    assert at is not None and scan.answered
    # comments, other fields and a data value without its space are read as SSE says
    scan = EventScan()
    assert scan.feed(b": keep-alive\n\nevent: x\nid: 3\ndata:" + FIRST[6:-2] + b"\n\n")
    # a tool call's delta, a null content and an empty choices list carry no text
    for delta in ({"tool_calls": [{"index": 0}]}, {"content": None}, {}):
        assert EventScan().feed(_chunk(delta)) is False
    assert EventScan().feed(b'data: {"choices": [], "usage": {}}\n\n') is False


def test_streams_that_are_not_whole_answers_say_why() -> None:
    cut = EventScan()
    cut.feed(OPENING + FIRST)  # ended after its first content chunk, as a cut stream does
    assert cut.content and not cut.done and not cut.answered
    assert stream_fault(cut) == "no [DONE]"
    failed = EventScan()
    failed.feed(OPENING + FIRST + b'data: {"error": {"message": "overloaded"}}\n\n')
    failed.feed(b"data: [DONE]\n\n")
    assert failed.done and not failed.answered and stream_fault(failed) == "error event"
    empty = EventScan()
    empty.feed(OPENING + _chunk({}, "stop") + b"data: [DONE]\n\n")
    assert not empty.answered and stream_fault(empty) == "no content"
    garbled = EventScan()
    garbled.feed(FIRST + b"data: {not json\n\ndata: [DONE]\n\n")
    assert not garbled.answered and stream_fault(garbled) == "malformed event"


async def test_streamed_calls_are_timed_to_first_content_and_to_done() -> None:
    # the simulator in this process: its first content chunk after the drawn latency
    sim = await start_simulator(
        SimulatorProfile(seed=2, latency_ms=30, output_tokens=(16, 32), stream_chunk_ms=2)
    )
    cutting = await start_simulator(SimulatorProfile(seed=2, stream_cut_rate=1.0))
    headers = {"authorization": "Bearer k", "content-type": "application/json"}
    bodies = chat_bodies(6, seed=3, stream=True)
    try:
        async with provider_client(10, 5.0) as client:
            whole = await measure_stream(
                client, f"{sim.url}/v1/chat/completions", bodies, 100, [headers] * 6
            )
            cut = await measure_stream(
                client, f"{cutting.url}/v1/chat/completions", bodies, 100, [headers] * 6
            )
            refused = await measure_stream(
                client, f"{sim.url}/v1/nope", bodies[:2], 100, [headers] * 2
            )
    finally:
        await sim.stop()
        await cutting.stop()
    assert (whole.sent, whole.ok, sum(whole.errors.values())) == (6, 6, 0), whole.errors
    assert len(whole.ttfts_ms) == len(whole.latencies_ms) == 6
    for ttft, total in zip(whole.ttfts_ms, whole.latencies_ms, strict=True):
        assert 30.0 <= ttft <= total  # the provider's latency comes before the first token
    assert (cut.ok, cut.errors) == (0, {"no [DONE]": 6})
    assert (refused.ok, refused.errors) == (0, {"404": 2})


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
    # the streamed calls are the same bodies, asking for a stream
    for body, streamed in zip(bodies, chat_bodies(3, seed=3, stream=True), strict=True):
        assert orjson.loads(streamed) == orjson.loads(body) | {"stream": True}


def test_the_cli_parses_rates_and_refuses_bad_ones() -> None:
    from tierline.streams.cli.bench import command

    runner = CliRunner()
    refused = runner.invoke(command, ["--gateway", "--rates", "50,zero"])
    assert refused.exit_code == 2 and "give rates as numbers" in refused.output
    refused = runner.invoke(command, ["--gateway", "--rates", "50,-1"])
    assert refused.exit_code == 2 and "every rate must be > 0" in refused.output
    refused = runner.invoke(command, ["--stream-requests", "10"])
    assert refused.exit_code == 2 and "--stream-requests goes with --gateway" in refused.output
    refused = runner.invoke(command, ["--gateway", "--stream-requests", "-1"])
    assert refused.exit_code == 2
