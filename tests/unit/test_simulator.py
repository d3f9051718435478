"""The provider simulator, driven over real HTTP with httpx against an in-process server."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.simulator import (
    RunningSimulator,
    SimulatorProfile,
    parse_directives,
    spawn_simulator,
    start_simulator,
)
from tierline.processors.simulator.directives import DirectiveError

StartSim = Callable[..., Awaitable[RunningSimulator]]


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
async def sim(start: StartSim) -> RunningSimulator:
    return await start()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # plain-HTTP loopback: skip loading CA certificates and proxy settings
    async with httpx.AsyncClient(timeout=10.0, verify=False, trust_env=False) as c:
        yield c


# ----------------------------------------------------------------------------- providers


@dataclass(frozen=True)
class Provider:
    """How to build a request for one wire format and read its answer."""

    name: str
    build: Callable[..., tuple[str, dict[str, str], dict[str, Any]]]
    finish_ok: str
    finish_length: str

    def finish(self, body: dict[str, Any]) -> str:
        if self.name == "openai":
            return str(body["choices"][0]["finish_reason"])
        if self.name == "anthropic":
            return str(body["stop_reason"])
        return str(body["candidates"][0]["finishReason"])

    def text(self, body: dict[str, Any]) -> str:
        if self.name == "openai":
            return str(body["choices"][0]["message"]["content"])
        if self.name == "anthropic":
            return "".join(b["text"] for b in body["content"])
        return "".join(p["text"] for p in body["candidates"][0]["content"]["parts"])

    def usage(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(total prompt tokens including cached, output tokens, cached tokens)."""
        if self.name == "openai":
            u = body["usage"]
            return (
                u["prompt_tokens"],
                u["completion_tokens"],
                u["prompt_tokens_details"]["cached_tokens"],
            )
        if self.name == "anthropic":
            u = body["usage"]
            total = (
                u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
            )
            return total, u["output_tokens"], u["cache_read_input_tokens"]
        u = body["usageMetadata"]
        return u["promptTokenCount"], u["candidatesTokenCount"], u.get("cachedContentTokenCount", 0)


def _openai(
    text: str,
    *,
    model: str = "gpt-4o-mini",
    system: str | None = None,
    max_tokens: int | None = None,
    key: str = "sk-test",
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_completion_tokens"] = max_tokens
    body.update(extra or {})
    return "/v1/chat/completions", {"Authorization": f"Bearer {key}"}, body


def _anthropic(
    text: str,
    *,
    model: str = "claude-haiku",
    system: str | None = None,
    max_tokens: int | None = None,
    key: str = "sk-ant-test",
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens or 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }
    if system:
        body["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    body.update(extra or {})
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return "/v1/messages", headers, body


def _gemini(
    text: str,
    *,
    model: str = "gemini-2.0-flash",
    system: str | None = None,
    max_tokens: int | None = None,
    key: str = "AIza-test",
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if max_tokens is not None:
        body["generationConfig"] = {"maxOutputTokens": max_tokens}
    body.update(extra or {})
    return f"/v1beta/models/{model}:generateContent", {"x-goog-api-key": key}, body


OPENAI = Provider("openai", _openai, "stop", "length")
ANTHROPIC = Provider("anthropic", _anthropic, "end_turn", "max_tokens")
GEMINI = Provider("gemini", _gemini, "STOP", "MAX_TOKENS")
PROVIDERS = [OPENAI, ANTHROPIC, GEMINI]
by_name = pytest.mark.parametrize("p", PROVIDERS, ids=lambda p: p.name)


async def call(
    client: httpx.AsyncClient, sim: RunningSimulator, p: Provider, text: str, **kw: Any
) -> httpx.Response:
    path, headers, body = p.build(text, **kw)
    return await client.post(sim.url + path, headers=headers, json=body)


# ----------------------------------------------------------------------------- success


async def test_openai_success_is_a_chat_completion(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, OPENAI, "Say hello", system="Be brief.")
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert r.headers["openai-version"] == "2020-10-01"
    # no rate limit in the profile, so none is announced (see test_simulator_limits)
    assert not [k for k in r.headers if k.startswith("x-ratelimit-")]
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert "gpt-4o-mini" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    chars = len("Say hello") + len("Be brief.")
    assert usage["prompt_tokens"] == math.ceil(chars / 4) + 3 * 2
    assert 16 <= usage["completion_tokens"] <= 256
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    # the text is about as long as the tokens it claims
    assert abs(len(choice["message"]["content"]) - 4 * usage["completion_tokens"]) <= 2


async def test_openai_base_url_without_v1(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    _, headers, body = _openai("hi")
    r = await client.post(f"{sim.url}/chat/completions", headers=headers, json=body)
    assert r.status_code == 200
    assert r.json()["object"] == "chat.completion"


async def test_anthropic_success_is_a_message(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, ANTHROPIC, "Say hello")
    assert r.status_code == 200
    assert r.headers["request-id"].startswith("req_")
    assert not [k for k in r.headers if k.startswith("anthropic-ratelimit-")]
    body = r.json()
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["content"][0]["type"] == "text"
    assert "claude-haiku" in body["content"][0]["text"]
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    usage = body["usage"]
    assert usage["input_tokens"] == math.ceil(len("Say hello") / 4) + 3
    assert usage["cache_creation_input_tokens"] == 0
    assert usage["cache_read_input_tokens"] == 0
    assert 16 <= usage["output_tokens"] <= 256


async def test_gemini_success_is_a_generate_content_response(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, GEMINI, "Say hello")
    assert r.status_code == 200
    body = r.json()
    cand = body["candidates"][0]
    assert cand["content"]["role"] == "model"
    assert "gemini-2.0-flash" in cand["content"]["parts"][0]["text"]
    assert cand["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["promptTokenCount"] == math.ceil(len("Say hello") / 4) + 3
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert "cachedContentTokenCount" not in usage  # proto3 JSON omits zeros
    assert body["modelVersion"] == "gemini-2.0-flash"
    # the key may also come as a query parameter
    path, _, payload = _gemini("Say hello")
    r2 = await client.post(f"{sim.url}{path}?key=AIza-test", json=payload)
    assert r2.status_code == 200


@by_name
async def test_max_tokens_caps_output_with_length_finish(
    p: Provider, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, p, "Write an essay [sim:output_tokens=300]", max_tokens=10)
    assert r.status_code == 200
    body = r.json()
    assert p.finish(body) == p.finish_length
    assert p.usage(body)[1] == 10
    assert len(p.text(body)) <= 40


@by_name
async def test_output_under_max_tokens_finishes_normally(
    p: Provider, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, p, "Short please [sim:output_tokens=7]", max_tokens=10)
    body = r.json()
    assert p.finish(body) == p.finish_ok
    assert p.usage(body)[1] == 7


# ----------------------------------------------------------------------------- faults


@by_name
async def test_forced_rate_limit_carries_retry_after(
    p: Provider, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, p, "hi [sim:rate_limit=0.25]")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "0.25"
    assert r.headers["x-simulator-outcome"] == "rate_limit"
    body = r.json()
    if p is OPENAI:
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["error"]["type"] == "requests"
        assert r.headers["retry-after-ms"] == "250"
        assert "x-ratelimit-remaining-requests" not in r.headers  # no limit, none announced
    elif p is ANTHROPIC:
        assert body["type"] == "error"
        assert body["error"]["type"] == "rate_limit_error"
        assert "anthropic-ratelimit-requests-remaining" not in r.headers
    else:
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert body["error"]["code"] == 429
        retry = [d for d in body["error"]["details"] if d["@type"].endswith("RetryInfo")]
        assert retry[0]["retryDelay"] == "0.25s"


async def test_rate_limit_uses_profile_retry_after(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(rate_limit_rate=1.0, retry_after_s=2)
    r = await call(client, sim, ANTHROPIC, "hi")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"


@by_name
async def test_forced_server_error_uses_the_provider_error_body(
    p: Provider, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, p, "hi [sim:error=503]")
    assert r.status_code == 503
    body = r.json()
    if p is OPENAI:
        assert body["error"]["type"] == "server_error"
    elif p is ANTHROPIC:
        assert body["error"]["type"] == "api_error"
    else:
        assert body["error"]["status"] == "UNAVAILABLE"


async def test_anthropic_overloaded_is_529(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(client, sim, ANTHROPIC, "hi [sim:error=529]")
    assert r.status_code == 529
    assert r.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}


@pytest.mark.parametrize(
    ("p", "allowed"),
    [(OPENAI, {500, 502, 503}), (ANTHROPIC, {500, 529}), (GEMINI, {500, 503})],
    ids=["openai", "anthropic", "gemini"],
)
async def test_random_errors_draw_provider_statuses(
    p: Provider, allowed: set[int], start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(error_rate=1.0)
    statuses = {(await call(client, sim, p, f"question {i}")).status_code for i in range(30)}
    assert statuses <= allowed
    assert len(statuses) >= 2


async def test_fail_first_fails_then_succeeds(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    results = [await call(client, sim, OPENAI, "retry me [sim:fail_first=2]") for _ in range(4)]
    assert [r.status_code for r in results] == [503, 503, 200, 200]
    assert [r.headers["x-simulator-attempt"] for r in results] == ["0", "1", "2", "3"]
    # another body has its own count
    other = await call(client, sim, OPENAI, "me too [sim:fail_first=1, error=529]")
    assert other.status_code == 529


async def test_hang_is_detected_by_a_client_timeout(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    path, headers, body = _openai("never [sim:hang]")
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await client.post(sim.url + path, headers=headers, json=body, timeout=0.3)
    assert time.monotonic() - t0 < 2.0
    assert sim.stats.by_outcome["hang"] == 1
    assert 200 not in sim.stats.by_status


async def test_stop_releases_hung_requests(start: StartSim, client: httpx.AsyncClient) -> None:
    sim = await start(hang_rate=1.0)
    path, headers, body = _anthropic("hi")
    pending = asyncio.ensure_future(client.post(sim.url + path, headers=headers, json=body))
    for _ in range(100):
        if sim.stats.hanging:
            break
        await asyncio.sleep(0.01)
    assert sim.stats.hanging == 1
    t0 = time.monotonic()
    await sim.stop()
    assert time.monotonic() - t0 < 2.0
    r = await pending
    assert r.status_code == 504


@by_name
async def test_garbage_is_a_200_with_an_unparseable_body(
    p: Provider, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    for kind in ("empty", "truncated", "html"):
        r = await call(client, sim, p, f"hi [sim:garbage={kind}]")
        assert r.status_code == 200
        assert r.headers["x-simulator-outcome"] == "garbage"
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(r.content)


async def test_refusal_maps_to_each_provider(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    assert OPENAI.finish((await call(client, sim, OPENAI, "x [sim:refusal]")).json()) == (
        "content_filter"
    )
    assert (await call(client, sim, ANTHROPIC, "x [sim:refusal]")).json()["stop_reason"] == (
        "refusal"
    )
    g = (await call(client, sim, GEMINI, "x [sim:refusal]")).json()
    assert g["candidates"][0]["finishReason"] == "SAFETY"
    assert "content" not in g["candidates"][0]


async def test_latency_directive_and_per_model_override(
    start: StartSim, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    profile_file = tmp_path / "profile.json"
    profile_file.write_text(
        '{"latency_ms": 0, "models": {"gpt-premium": {"latency_ms": 200, "output_tokens": [5, 5]}}}'
    )
    sim = await start(SimulatorProfile.from_json_file(profile_file))
    t0 = time.monotonic()
    fast = await call(client, sim, OPENAI, "hi")
    fast_s = time.monotonic() - t0
    t0 = time.monotonic()
    slow = await call(client, sim, OPENAI, "hi", model="gpt-premium")
    slow_s = time.monotonic() - t0
    assert fast.headers["x-simulator-latency-ms"] == "0.000"
    assert slow.headers["x-simulator-latency-ms"] == "200.000"
    assert slow_s >= 0.2 > fast_s
    assert slow.json()["usage"]["completion_tokens"] == 5
    forced = await call(client, sim, OPENAI, "hi [sim:latency=50]", model="gpt-premium")
    assert forced.headers["x-simulator-latency-ms"] == "50.000"


# ----------------------------------------------------------------------------- determinism


async def _run_sequence(
    sim: RunningSimulator, client: httpx.AsyncClient, texts: list[str]
) -> list[tuple[int, str, str, str | None]]:
    out = []
    for text in texts:
        r = await call(client, sim, ANTHROPIC, text)
        usage = orjson.dumps(r.json()["usage"]).decode() if r.status_code == 200 else None
        out.append(
            (
                r.status_code,
                r.headers["x-simulator-outcome"],
                r.headers["x-simulator-latency-ms"],
                usage,
            )
        )
    return out


async def test_same_seed_same_outcomes_other_seed_differs(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    knobs = {
        "latency_ms": 2.0,
        "latency_jitter": 0.8,
        "error_rate": 0.2,
        "rate_limit_rate": 0.2,
        "retry_after_s": 0.1,
    }
    # 15 distinct bodies, each sent twice: a retry of a body draws afresh
    texts = [f"question {i % 15}" for i in range(30)]
    a = await _run_sequence(await start(seed=11, **knobs), client, texts)
    b = await _run_sequence(await start(seed=11, **knobs), client, texts)
    c = await _run_sequence(await start(seed=12, **knobs), client, texts)
    assert a == b
    assert a != c
    outcomes = {row[1] for row in a}
    assert {"ok", "error", "rate_limit"} <= outcomes
    latencies = {row[2] for row in a if row[1] != "rate_limit"}
    assert len(latencies) > 10  # jitter is drawn per request, not fixed


async def test_outcome_does_not_depend_on_arrival_order(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    knobs = {"latency_ms": 1.0, "latency_jitter": 0.5, "error_rate": 0.3, "seed": 5}
    texts = [f"q{i}" for i in range(12)]
    forward = await _run_sequence(await start(**knobs), client, texts)
    sim = await start(**knobs)
    # the same bodies, all at once and in reverse order
    rev = await asyncio.gather(*(_run_sequence(sim, client, [t]) for t in reversed(texts)))
    backward = [row[0] for row in reversed(rev)]
    assert forward == backward


# ----------------------------------------------------------------------------- auth and validation


async def test_openai_auth_errors(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    path, _, body = _openai("hi")
    r = await client.post(sim.url + path, json=body)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["code"] is None
    r = await call(client, sim, OPENAI, "hi", key="sim-invalid-key")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


async def test_anthropic_auth_errors(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    path, _, body = _anthropic("hi")
    r = await client.post(sim.url + path, json=body, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    r = await client.post(sim.url + path, json=body, headers={"x-api-key": "k"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in r.json()["error"]["message"]
    r = await call(client, sim, ANTHROPIC, "hi", key="sim-invalid-key")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


async def test_gemini_auth_errors(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    path, _, body = _gemini("hi")
    r = await client.post(sim.url + path, json=body)
    assert r.status_code == 403
    assert r.json()["error"]["status"] == "PERMISSION_DENIED"
    r = await call(client, sim, GEMINI, "hi", key="sim-invalid-key")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    assert err["details"][0]["reason"] == "API_KEY_INVALID"


async def test_validation_errors(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    _, oa_headers, _ = _openai("hi")
    r = await client.post(f"{sim.url}/v1/chat/completions", headers=oa_headers, json={"model": "m"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages"
    assert r.json()["error"]["code"] == "missing_required_parameter"
    r = await client.post(
        f"{sim.url}/v1/chat/completions",
        headers=oa_headers,
        json={"messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400
    assert "model" in r.json()["error"]["message"]
    r = await client.post(f"{sim.url}/v1/chat/completions", headers=oa_headers, content=b"{nope")
    assert r.status_code == 400

    path, an_headers, body = _anthropic("hi")
    del body["max_tokens"]
    r = await client.post(sim.url + path, headers=an_headers, json=body)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }

    path, g_headers, _ = _gemini("hi")
    r = await client.post(sim.url + path, headers=g_headers, json={"contents": []})
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"

    r = await call(client, sim, OPENAI, "hi [sim:explode]")
    assert r.status_code == 400
    assert "unknown simulator directive" in r.json()["error"]["message"]
    assert sim.stats.by_outcome["rejected"] == 6


@by_name
async def test_context_window_gives_the_provider_context_error(
    p: Provider, start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(models={"small": {"context_window": 100}})
    ok = await call(client, sim, p, "x" * 300, model="small")
    assert ok.status_code == 200
    r = await call(client, sim, p, "x" * 400, model="small")
    assert r.status_code == 400
    body = r.json()
    if p is OPENAI:
        assert body["error"]["code"] == "context_length_exceeded"
    elif p is ANTHROPIC:
        assert body["error"]["message"] == "prompt is too long: 103 tokens > 100 maximum"
    else:
        assert body["error"]["status"] == "INVALID_ARGUMENT"
        assert "exceeds the maximum number of tokens allowed (100)" in body["error"]["message"]
    # other models have no window
    assert (await call(client, sim, p, "x" * 400)).status_code == 200


async def test_unknown_model_when_models_are_listed(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(known_models=frozenset({"gpt-4o-mini", "claude-haiku", "gemini-2.0-flash"}))
    assert (await call(client, sim, OPENAI, "hi")).status_code == 200
    r = await call(client, sim, OPENAI, "hi", model="gpt-9")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert (await call(client, sim, ANTHROPIC, "hi", model="claude-9")).json()["error"][
        "type"
    ] == "not_found_error"
    assert (await call(client, sim, GEMINI, "hi", model="gemini-9")).json()["error"][
        "status"
    ] == "NOT_FOUND"


# ----------------------------------------------------------------------------- caching and JSON


@by_name
async def test_prompt_caching_reports_the_repeated_system_prompt(
    p: Provider, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    system = "You are a careful assistant. " * 160  # 4640 chars -> 1160 + 3 tokens
    system_tokens = math.ceil(len(system) / 4) + 3
    first = (await call(client, sim, p, "first question", system=system)).json()
    second = (await call(client, sim, p, "second question", system=system)).json()
    total1, _, cached1 = p.usage(first)
    total2, _, cached2 = p.usage(second)
    assert cached1 == 0
    assert cached2 == system_tokens
    assert total2 == math.ceil((len(system) + len("second question")) / 4) + 6
    if p is ANTHROPIC:
        assert first["usage"]["cache_creation_input_tokens"] == system_tokens
        assert second["usage"]["input_tokens"] == total2 - system_tokens
    # a short prompt is never cached
    short = (await call(client, sim, p, "q", system="short")).json()
    again = (await call(client, sim, p, "q2", system="short")).json()
    assert p.usage(short)[2] == p.usage(again)[2] == 0


@pytest.mark.parametrize(("ttl", "one_hour"), [(None, False), ("5m", False), ("1h", True)])
async def test_anthropic_cache_writes_are_split_by_the_ttl_asked_for(
    ttl: str | None, one_hour: bool, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    system = f"Standing instructions, ttl {ttl}. " * 160
    system_tokens = math.ceil(len(system) / 4) + 3
    marker = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    blocks = [{"type": "text", "text": system, "cache_control": marker}]
    first = (await call(client, sim, ANTHROPIC, "q1", extra={"system": blocks})).json()
    second = (await call(client, sim, ANTHROPIC, "q2", extra={"system": blocks})).json()
    assert first["usage"]["cache_creation_input_tokens"] == system_tokens
    assert first["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0 if one_hour else system_tokens,
        "ephemeral_1h_input_tokens": system_tokens if one_hour else 0,
    }
    assert second["usage"]["cache_read_input_tokens"] == system_tokens
    assert second["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }


@pytest.mark.parametrize(("model", "writes"), [("gpt-5.6-sol", True), ("gpt-4o-mini", False)])
async def test_openai_reports_cache_writes_for_the_models_that_bill_them(
    model: str, writes: bool, sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    system = f"Standing instructions for {model}. " * 160
    system_tokens = math.ceil(len(system) / 4) + 3
    first = (await call(client, sim, OPENAI, "q1", model=model, system=system)).json()
    second = (await call(client, sim, OPENAI, "q2", model=model, system=system)).json()
    details1 = first["usage"]["prompt_tokens_details"]
    details2 = second["usage"]["prompt_tokens_details"]
    assert (details1["cached_tokens"], details2["cached_tokens"]) == (0, system_tokens)
    if writes:  # GPT-5.6 and later: the prefix is written once, then read
        assert (details1["cache_write_tokens"], details2["cache_write_tokens"]) == (
            system_tokens,
            0,
        )
    else:
        assert "cache_write_tokens" not in details1 and "cache_write_tokens" not in details2


async def test_gemini_reports_implicit_cache_hits_by_modality(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    system = "Standing instructions for Gemini. " * 160
    system_tokens = math.ceil(len(system) / 4) + 3
    await call(client, sim, GEMINI, "q1", system=system)
    usage = (await call(client, sim, GEMINI, "q2", system=system)).json()["usageMetadata"]
    assert usage["cachedContentTokenCount"] == system_tokens
    assert usage["cacheTokensDetails"] == [{"modality": "TEXT", "tokenCount": system_tokens}]


async def test_openai_json_modes_return_valid_json(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    r = await call(
        client, sim, OPENAI, "Give JSON", extra={"response_format": {"type": "json_object"}}
    )
    doc = orjson.loads(r.json()["choices"][0]["message"]["content"])
    assert doc["model"] == "gpt-4o-mini"
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"type": "string", "enum": ["town", "city"]},
        },
        "required": ["city", "population", "tags", "kind"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    r = await call(client, sim, OPENAI, "Give JSON", extra={"response_format": fmt})
    body = r.json()
    doc = orjson.loads(body["choices"][0]["message"]["content"])
    assert set(doc) == {"city", "population", "tags", "kind"}
    assert isinstance(doc["population"], int)
    assert doc["kind"] == "town"
    assert body["usage"]["completion_tokens"] == math.ceil(
        len(body["choices"][0]["message"]["content"]) / 4
    )


async def test_gemini_json_mime_type_returns_valid_json(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    config = {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"answer": {"type": "STRING"}}},
    }
    r = await call(client, sim, GEMINI, "Give JSON", extra={"generationConfig": config})
    text = r.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert orjson.loads(text) == {"answer": "answer from gemini-2.0-flash"}


# ----------------------------------------------------------------------------- plumbing


async def test_health_and_stats(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{sim.url}/health")).json() == {"status": "ok"}
    await call(client, sim, OPENAI, "a")
    await call(client, sim, ANTHROPIC, "b [sim:error=500]")
    await call(client, sim, GEMINI, "c")
    stats = sim.stats
    assert stats.requests == 3
    assert stats.by_route == {"openai": 1, "anthropic": 1, "gemini": 1}
    assert stats.by_status == {200: 2, 500: 1}
    served = (await client.get(f"{sim.url}/_sim/stats")).json()
    assert served["by_status"] == {"200": 2, "500": 1}


def test_parse_directives() -> None:
    d = parse_directives("please [sim:fail_first=2, error=529] and [sim:latency=12.5]")
    assert (d.fail_first, d.error_status, d.latency_ms) == (2, 529, 12.5)
    assert parse_directives("no tags here") == parse_directives("")
    with pytest.raises(DirectiveError):
        parse_directives("[sim:error=200]")
    with pytest.raises(DirectiveError):
        parse_directives("[sim:garbage=yaml]")


def test_profile_rejects_impossible_rates() -> None:
    with pytest.raises(ValueError, match="add up to more than 1"):
        SimulatorProfile(error_rate=0.6, rate_limit_rate=0.6)
    with pytest.raises(ValueError):
        SimulatorProfile.model_validate({"latency": 5})  # typo: unknown keys are an error


def test_spawned_simulator_serves_from_its_own_process() -> None:
    with spawn_simulator(SimulatorProfile(seed=3)) as proc:
        _, headers, body = _openai("hi from the parent")
        r = httpx.post(f"{proc.url}/v1/chat/completions", headers=headers, json=body)
        assert r.status_code == 200
        assert proc.fetch_stats()["by_route"] == {"openai": 1}
    assert proc.stop() == 0
