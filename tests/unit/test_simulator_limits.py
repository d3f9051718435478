"""The simulator's rate limits, their announcing headers, per-model counts and the outage switch.

Driven over real HTTP with httpx against an in-process simulator; the announced
headers are read back with the adapters' own `announced_limits`, so the two ends
are checked against each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.unit.test_simulator import ANTHROPIC, GEMINI, OPENAI, PROVIDERS, Provider, call
from tierline.processors.providers.rate_headers import announced_limits
from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    spawn_simulator,
    start_simulator,
)
from tierline.processors.simulator.limits import RateWindow

StartSim = Callable[..., Awaitable[RunningSimulator]]
by_name = pytest.mark.parametrize("p", PROVIDERS, ids=lambda p: p.name)

OPENAI_NAMES = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
OPENAI_TOKEN_NAMES = (
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
ANTHROPIC_NAMES = (
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
)
ANTHROPIC_TOKEN_NAMES = (
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
)


@pytest.fixture
async def start() -> AsyncIterator[StartSim]:
    """Start simulators on free ports; all are stopped at teardown."""
    running: list[RunningSimulator] = []

    async def _start(profile: SimulatorProfile | None = None, **fields: Any) -> RunningSimulator:
        sim = await start_simulator(profile or SimulatorProfile(**fields))
        running.append(sim)
        return sim

    yield _start
    for sim in running:
        await sim.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, verify=False, trust_env=False) as c:
        yield c


def _model(p: Provider) -> str:
    return {"openai": "gpt-4o-mini", "anthropic": "claude-haiku", "gemini": "gemini-2.0-flash"}[
        p.name
    ]


def _limited(p: Provider, **knobs: Any) -> SimulatorProfile:
    return SimulatorProfile(models={_model(p): ModelOverride(**knobs)})


def _rate_names(r: httpx.Response) -> list[str]:
    return [k for k in r.headers if "ratelimit" in k.lower()]


# ----------------------------------------------------------------------------- requests a minute


@by_name
async def test_rpm_limit_refuses_the_request_past_it(
    p: Provider, start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(_limited(p, rpm_limit=5))
    remaining: list[int] = []
    for i in range(5):
        r = await call(client, sim, p, f"request {i}")
        assert r.status_code == 200, r.text
        if p is not GEMINI:
            seen = announced_limits(r.headers)
            assert seen is not None and seen.requests_limit == 5
            assert seen.requests_remaining is not None
            remaining.append(seen.requests_remaining)
    r = await call(client, sim, p, "request 5")
    assert r.status_code == 429
    assert r.headers["x-simulator-outcome"] == "over_limit"
    retry = float(r.headers["retry-after"])
    assert 0 < retry <= 60.0
    assert round(retry * 10) == retry * 10  # rounded to 0.1 s
    body = r.json()
    if p is OPENAI:
        assert remaining == [4, 3, 2, 1, 0]
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["error"]["type"] == "requests"
        assert "(RPM): Limit 5, Used 5, Requested 1" in body["error"]["message"]
        assert float(r.headers["retry-after-ms"]) == pytest.approx(retry * 1000)
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
    elif p is ANTHROPIC:
        assert remaining == [4, 3, 2, 1, 0]
        assert body["error"]["type"] == "rate_limit_error"
        assert "of 5 requests per minute" in body["error"]["message"]
        assert r.headers["anthropic-ratelimit-requests-remaining"] == "0"
    else:
        assert _rate_names(r) == []
        info = [d for d in body["error"]["details"] if d["@type"].endswith("RetryInfo")]
        assert info[0]["retryDelay"] == f"{r.headers['retry-after']}s"
        quota = [d for d in body["error"]["details"] if d["@type"].endswith("QuotaFailure")]
        assert quota[0]["violations"][0]["quotaValue"] == "5"
    seen = announced_limits(r.headers)
    assert seen is not None and seen.retry_after_s == pytest.approx(retry)
    stats = sim.stats
    assert stats.by_outcome["over_limit"] == 1
    assert "rate_limit" not in stats.by_outcome
    assert stats.by_status == {200: 5, 429: 1}


async def test_limit_is_per_model(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start(rpm_limit=1)  # set on the profile: each model has its own budget
    assert (await call(client, sim, OPENAI, "a", model="m-one")).status_code == 200
    assert (await call(client, sim, OPENAI, "b", model="m-two")).status_code == 200
    assert (await call(client, sim, OPENAI, "c", model="m-one")).status_code == 429
    assert sim.stats.by_model == {"m-one": 2, "m-two": 1}


async def test_over_limit_takes_no_attempt(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start(_limited(OPENAI, rpm_limit=1))
    first = await call(client, sim, OPENAI, "same body")
    refused = await call(client, sim, OPENAI, "same body")
    assert refused.status_code == 429
    assert first.headers["x-simulator-attempt"] == "0"
    assert refused.headers["x-simulator-attempt"] == "1"  # the try it would have been
    assert sim.stats.by_outcome == {"ok": 1, "over_limit": 1}


# ----------------------------------------------------------------------------- tokens a minute


async def test_tpm_limit_counts_input_and_max_output(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(_limited(OPENAI, tpm_limit=100))
    # "hi": 1 token + 3 for the message, + 40 max output = 44 per request
    r1 = await call(client, sim, OPENAI, "hi", max_tokens=40)
    assert r1.status_code == 200
    assert r1.headers["x-ratelimit-limit-tokens"] == "100"
    assert r1.headers["x-ratelimit-remaining-tokens"] == "56"
    assert "x-ratelimit-limit-requests" not in r1.headers  # no RPM budget, none announced
    r2 = await call(client, sim, OPENAI, "hi", max_tokens=40)
    assert r2.headers["x-ratelimit-remaining-tokens"] == "12"
    r3 = await call(client, sim, OPENAI, "hi", max_tokens=40)
    assert r3.status_code == 429
    error = r3.json()["error"]
    assert error["type"] == "tokens"
    assert "(TPM): Limit 100, Used 88, Requested 44" in error["message"]
    # a request bigger than the whole budget can never pass: told the full window
    too_big = await call(client, sim, OPENAI, "hi", max_tokens=500)
    assert too_big.status_code == 429
    assert "Request too large" in too_big.json()["error"]["message"]
    assert too_big.headers["retry-after"] == "60"


async def test_anthropic_announces_both_budgets(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start(_limited(ANTHROPIC, rpm_limit=10, tpm_limit=10_000))
    r = await call(client, sim, ANTHROPIC, "hi", max_tokens=96)
    assert r.status_code == 200
    for name in ANTHROPIC_NAMES + ANTHROPIC_TOKEN_NAMES:
        assert name in r.headers
    reset = datetime.fromisoformat(r.headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None
    seen = announced_limits(r.headers, now=datetime.now(UTC))
    assert seen is not None
    assert (seen.requests_limit, seen.requests_remaining) == (10, 9)
    assert (seen.tokens_limit, seen.tokens_remaining) == (10_000, 10_000 - 100)
    assert seen.requests_reset_s is not None and 58.0 <= seen.requests_reset_s <= 61.0
    assert seen.retry_after_s is None


async def test_openai_announces_both_budgets(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start(_limited(OPENAI, rpm_limit=10, tpm_limit=10_000))
    r = await call(client, sim, OPENAI, "hi", max_tokens=96)
    for name in OPENAI_NAMES + OPENAI_TOKEN_NAMES:
        assert name in r.headers
    assert r.headers["x-ratelimit-reset-requests"] in ("1m0s", "59.999s", "59.998s")
    seen = announced_limits(r.headers)
    assert seen is not None
    assert (seen.requests_remaining, seen.tokens_remaining) == (9, 9_900)
    assert seen.tokens_reset_s is not None and 59.0 <= seen.tokens_reset_s <= 60.0


@by_name
async def test_model_without_limits_announces_none(
    p: Provider, start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(_limited(p, rpm_limit=5))
    r = await call(client, sim, p, "hi", model="unlimited-model")
    assert r.status_code == 200
    assert _rate_names(r) == []
    assert announced_limits(r.headers) is None
    # a drawn or forced 429 of an unlimited model says when to retry, and nothing more
    forced = await call(client, sim, p, "hi [sim:rate_limit=0.5]", model="unlimited-model")
    assert forced.status_code == 429
    assert _rate_names(forced) == []
    seen = announced_limits(forced.headers)
    assert seen is not None and seen.retry_after_s == 0.5
    assert seen.requests_limit is None


async def test_limited_model_announces_on_errors_too(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(_limited(OPENAI, rpm_limit=3))
    r = await call(client, sim, OPENAI, "boom [sim:error=500]")
    assert r.status_code == 500
    assert r.headers["x-ratelimit-remaining-requests"] == "2"
    forced = await call(client, sim, OPENAI, "hi [sim:rate_limit=0.2]")
    assert forced.status_code == 429
    assert forced.headers["x-simulator-outcome"] == "rate_limit"
    assert forced.headers["x-ratelimit-remaining-requests"] == "1"


def test_profile_validates_limits() -> None:
    with pytest.raises(ValueError):
        SimulatorProfile(rpm_limit=0)
    with pytest.raises(ValueError):
        ModelOverride(tpm_limit=-1)
    p = SimulatorProfile(rpm_limit=7, models={"m": ModelOverride(tpm_limit=9)})
    b = p.resolve("m")
    assert (b.rpm_limit, b.tpm_limit) == (7, 9)
    assert p.resolve("other").tpm_limit is None


# ----------------------------------------------------------------------------- the window


def test_window_frees_the_oldest_slot_first() -> None:
    w = RateWindow(rpm=2, tpm=None)
    assert w.admit(0.0, 1).requests_remaining == 1
    assert w.admit(10.0, 1).requests_remaining == 0
    refused = w.admit(30.0, 1)
    assert not refused.admitted
    assert refused.retry_after_s == 30.0  # the request at 0.0 leaves at 60.0
    assert refused.reset_at == 70.0  # and the window is empty at 70.0
    assert refused.breach is not None and refused.breach.kind == "requests"
    assert w.admit(60.0, 1).admitted
    assert not w.admit(60.05, 1).admitted


def test_window_retry_after_rounds_up_to_a_tenth() -> None:
    w = RateWindow(rpm=1, tpm=None)
    w.admit(0.0, 1)
    assert w.admit(59.97, 1).retry_after_s == 0.1  # 0.03 s rounds up, at least 0.1
    assert w.admit(59.75, 1).retry_after_s == 0.3
    assert w.admit(29.7, 1).retry_after_s == 30.3


def test_window_tokens_wait_for_enough_to_leave() -> None:
    w = RateWindow(rpm=None, tpm=100)
    w.admit(0.0, 40)
    w.admit(5.0, 40)
    w.admit(10.0, 20)
    refused = w.admit(20.0, 50)  # needs the first two gone (40 freed is not enough)
    assert not refused.admitted
    assert refused.retry_after_s == 45.0
    assert refused.tokens_remaining == 0
    assert refused.breach is not None and refused.breach.kind == "tokens"
    assert w.admit(65.0, 50).tokens_remaining == 30


# ----------------------------------------------------------------------------- the outage


@by_name
async def test_reset_outage_drops_the_connection(
    p: Provider, start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    assert (await call(client, sim, p, "before")).status_code == 200
    await sim.down()
    for i in range(3):
        with pytest.raises(httpx.TransportError):
            await call(client, sim, p, f"during {i}")
    assert (await client.get(f"{sim.url}/health")).status_code == 200
    served = (await client.get(f"{sim.url}/_sim/stats")).json()
    assert served["down"] is True
    assert served["during_outage"] == 3
    stats = sim.stats
    assert stats.down and stats.during_outage == 3
    assert stats.by_outcome["outage"] == 3
    assert stats.by_status == {200: 1}
    await sim.up()
    assert (await call(client, sim, p, "after")).status_code == 200
    assert not sim.stats.down
    assert sim.stats.during_outage == 3


@by_name
async def test_503_outage_answers_the_wire_format(
    p: Provider, start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    await sim.down(mode="503")
    r = await call(client, sim, p, "during")
    assert r.status_code == 503
    assert r.headers["x-simulator-outcome"] == "outage"
    body = r.json()
    if p is OPENAI:
        assert body["error"]["type"] == "server_error"
    elif p is ANTHROPIC:
        assert body["type"] == "error"
    else:
        assert body["error"]["status"] == "UNAVAILABLE"
    assert sim.stats.during_outage == 1
    assert sim.stats.by_status == {503: 1}
    await sim.up()
    assert (await call(client, sim, p, "after")).status_code == 200


async def test_outage_ends_by_itself(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start()
    await sim.down(seconds=0.3)
    with pytest.raises(httpx.TransportError):
        await call(client, sim, OPENAI, "during")
    assert sim.stats.down
    await asyncio.sleep(0.4)
    assert not sim.stats.down
    assert (await call(client, sim, OPENAI, "after")).status_code == 200
    assert sim.stats.during_outage == 1


async def test_outage_admin_routes(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start()
    r = await client.post(f"{sim.url}/_sim/down", json={"seconds": None, "mode": "503"})
    assert r.json() == {"down": True, "mode": "503", "seconds": None}
    assert (await call(client, sim, GEMINI, "x")).status_code == 503
    assert (await client.post(f"{sim.url}/_sim/up")).json() == {"down": False}
    assert (await call(client, sim, GEMINI, "x")).status_code == 200
    # an empty body means "reset until /_sim/up"
    assert (await client.post(f"{sim.url}/_sim/down")).status_code == 200
    assert (await client.get(f"{sim.url}/_sim/stats")).json()["down"] is True
    for bad in ({"mode": "teapot"}, {"seconds": "soon"}, {"seconds": -1}, [1]):
        r = await client.post(f"{sim.url}/_sim/down", json=bad)
        assert r.status_code == 400, bad
    with pytest.raises(ValueError):
        await sim.down(mode="teapot")  # type: ignore[arg-type]


async def test_hung_request_before_an_outage_is_not_dropped(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(hang_s=0.5)
    hung = asyncio.create_task(call(client, sim, OPENAI, "wait [sim:hang]"))
    await asyncio.sleep(0.1)
    await sim.down(mode="503")
    r = await hung
    assert r.status_code == 504  # admitted before the outage: answered as it would be
    assert sim.stats.during_outage == 0


def test_spawned_simulator_goes_down_and_up() -> None:
    with spawn_simulator(SimulatorProfile(seed=3)) as proc:
        _, headers, body = OPENAI.build("hi from the parent")
        url = f"{proc.url}/v1/chat/completions"
        proc.down(mode="503")
        assert proc.fetch_stats()["down"] is True
        assert httpx.post(url, headers=headers, json=body).status_code == 503
        proc.up()
        assert httpx.post(url, headers=headers, json=body).status_code == 200
        stats = proc.fetch_stats()
        assert (stats["down"], stats["during_outage"]) == (False, 1)
        assert stats["by_model"] == {"gpt-4o-mini": 1}


async def test_a_models_knobs_change_while_it_runs() -> None:
    from tierline.processors.simulator import ModelOverride

    sim = await start_simulator(
        SimulatorProfile(seed=1, models={"m": ModelOverride(latency_ms=300)})
    )
    try:
        async with httpx.AsyncClient() as client:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            headers = {"authorization": "Bearer k"}
            slow = await client.post(f"{sim.url}/v1/chat/completions", json=body, headers=headers)
            assert float(slow.headers["x-simulator-latency-ms"]) >= 300
            reply = await client.post(f"{sim.url}/_sim/models", json={"m": {"latency_ms": 5}})
            assert reply.status_code == 200
            fast = await client.post(f"{sim.url}/v1/chat/completions", json=body, headers=headers)
            assert float(fast.headers["x-simulator-latency-ms"]) < 50
            bad = await client.post(f"{sim.url}/_sim/models", json={"m": {"nope": 1}})
            assert bad.status_code == 400
    finally:
        await sim.stop()
