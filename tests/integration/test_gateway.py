"""The OpenAI-compatible gateway on a real broker, called with the official `openai` SDK.

Each test starts the pipeline (router, workers, sink) and the gateway in this process,
as `tierline run` starts them; the providers are the simulator, and bills land in chDB.
The late-answer test adds a second gateway replica on the same topics.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from clickhouse_connect.driver.client import Client
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.integration.support import make_settings, wait_until
from tierline.processors.simulator import RunningSimulator
from tierline.streams.config import GatewaySettings, Settings
from tierline.streams.runtime import Pipeline, start_pipeline

ACME_KEY = "sk-acme-test-0123456789abcdef"
GLOBEX_KEY = "sk-globex-test-fedcba9876543210"
MAX_BODY = 64 * 1024
HELLO: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Translate 'thank you' into Japanese."}
]


def gateway_settings(**more: Any) -> GatewaySettings:
    keys = {"sha256:" + hashlib.sha256(ACME_KEY.encode()).hexdigest(): "acme", GLOBEX_KEY: "globex"}
    return GatewaySettings(
        http_host="127.0.0.1", http_port=0, keys=keys, max_body_bytes=MAX_BODY, **more
    )


@dataclass
class Running:
    pipeline: Pipeline
    settings: Settings
    prefix: str
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.pipeline.gateway is not None
        return self.pipeline.gateway.url

    def client(self, key: str = ACME_KEY, url: str | None = None) -> openai.AsyncOpenAI:
        """The official SDK at the gateway, as an application would configure it."""
        client = openai.AsyncOpenAI(base_url=url or self.url, api_key=key, max_retries=0)
        self.clients.append(client)
        return client


@pytest.fixture
async def running(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> AsyncIterator[Running]:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.gateway = gateway_settings()
    pipeline = await start_pipeline(settings, roles=("router", "workers", "sink", "gateway"))
    running = Running(pipeline, settings, topic_prefix)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await asyncio.wait_for(pipeline.stop(), timeout=60)


def extension(completion: ChatCompletion) -> dict[str, Any]:
    extra = completion.model_extra or {}
    tierline: dict[str, Any] = extra["tierline"]
    return tierline


async def billed(clickhouse: Client, where: str, want: int) -> tuple[int, int, Decimal]:
    """(rows, distinct request ids, spend) of the cost rows `where` selects, once `want` are in."""

    async def arrived() -> bool:
        rows = clickhouse.query(f"SELECT count() FROM costs FINAL WHERE {where}").result_rows
        return int(rows[0][0]) >= want

    await wait_until(arrived, timeout_s=60)
    count, distinct, spent = clickhouse.query(
        f"SELECT count(), uniqExact(request_id), sum(cost_usd) FROM costs FINAL WHERE {where}"
    ).result_rows[0]
    return int(count), int(distinct), Decimal(spent)


async def test_the_openai_sdk_routes_pins_tiers_and_models_and_lists_models(
    running: Running, clickhouse: Client
) -> None:
    client = running.client()
    models = [m.id for m in (await client.models.list()).data]
    assert models[:5] == [
        "tierline/auto",
        "tierline/economy",
        "tierline/standard",
        "tierline/premium",
        "tierline/batch",
    ]
    pinned = {"gpt-4.1-nano": "openai", "claude-haiku-4-5": "anthropic"}
    pinned["gemini-2.5-flash-lite"] = "gemini"
    assert set(pinned) <= set(models)

    auto = await client.chat.completions.create(model="tierline/auto", messages=HELLO)
    assert isinstance(auto, ChatCompletion) and auto.object == "chat.completion"
    assert auto.choices[0].message.content and auto.choices[0].finish_reason == "stop"
    assert auto.usage is not None and auto.usage.total_tokens == (
        auto.usage.prompt_tokens + auto.usage.completion_tokens
    )
    assert auto.model in models and extension(auto)["tier"] in ("economy", "standard", "premium")
    assert Decimal(extension(auto)["cost_usd"]) > 0 and extension(auto)["attempts"] == 1

    premium = await client.chat.completions.create(model="tierline/premium", messages=HELLO)
    assert extension(premium)["tier"] == "premium"

    pinned_ids = []
    for model, family in pinned.items():
        answer = await client.chat.completions.create(
            model=model,
            messages=HELLO,
            max_completion_tokens=32,
            temperature=0,
            user="u-7",
            metadata={"feature": "gateway-tests"},
        )
        assert answer.model == model and extension(answer)["provider"] == family
        assert f"model pinned: {model}" in " ".join(extension(answer)["reasons"])
        assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 32
        pinned_ids.append(answer.id)

    one = await client.models.retrieve("claude-haiku-4-5")
    assert one.owned_by == "anthropic"

    where = f"request_id = '{auto.id}' AND tenant = 'acme'"
    assert (await billed(clickhouse, where, 1))[:2] == (1, 1)
    # the body's user and metadata.feature are the bill's dimensions
    ids = ", ".join(f"'{rid}'" for rid in pinned_ids)
    where = f"request_id IN ({ids}) AND feature = 'gateway-tests' AND user = 'u-7'"
    assert (await billed(clickhouse, where, 3))[:2] == (3, 3)


async def test_two_hundred_concurrent_calls_are_each_answered_and_billed_once(
    running: Running, clickhouse: Client, simulator: RunningSimulator
) -> None:
    clients = {"acme": running.client(ACME_KEY), "globex": running.client(GLOBEX_KEY)}
    ids = [f"{running.prefix}gw-{i}" for i in range(200)]

    async def ask(i: int, rid: str) -> ChatCompletion:
        client = clients["acme" if i % 2 else "globex"]
        return await client.chat.completions.create(
            model="tierline/auto",
            messages=[{"role": "user", "content": f"Say hello to visitor {i}."}],
            extra_headers={"Idempotency-Key": rid},
        )

    started = time.monotonic()
    answers = await asyncio.gather(*(ask(i, rid) for i, rid in enumerate(ids)))
    took = time.monotonic() - started
    assert sorted(a.id for a in answers) == sorted(ids), "lost or answered twice"
    assert all(a.choices[0].message.content for a in answers)
    total = sum((Decimal(extension(a)["cost_usd"]) for a in answers), Decimal(0))
    count, distinct, spent = await billed(
        clickhouse, f"request_id LIKE '{running.prefix}gw-%'", 200
    )
    assert (count, distinct) == (200, 200) and spent == total, took

    # the same Idempotency-Key from two tenants: two requests, each tenant its own answer
    shared = f"{running.prefix}shared"
    acme, globex = await asyncio.gather(
        clients["acme"].chat.completions.create(
            model="gpt-4.1-nano",
            messages=[{"role": "user", "content": "Say hi [sim:output_tokens=3]"}],
            extra_headers={"Idempotency-Key": shared},
        ),
        clients["globex"].chat.completions.create(
            model="gpt-4.1-nano",
            messages=[{"role": "user", "content": "Say hi [sim:output_tokens=9]"}],
            extra_headers={"Idempotency-Key": shared},
        ),
    )
    assert acme.id == globex.id == shared
    assert acme.usage is not None and globex.usage is not None
    assert (acme.usage.completion_tokens, globex.usage.completion_tokens) == (3, 9)
    assert (await billed(clickhouse, f"request_id = '{shared}'", 2))[:2] == (2, 1)
    rows = clickhouse.query(
        f"SELECT tenant, count() FROM costs FINAL WHERE request_id = '{shared}' "
        "GROUP BY tenant ORDER BY tenant"
    ).result_rows
    assert [(str(t), int(n)) for t, n in rows] == [("acme", 1), ("globex", 1)]

    # the same key twice at once from one tenant: one request, one provider call, one bill
    calls_before = simulator.stats.requests
    joined = f"{running.prefix}joined"
    first, second = await asyncio.gather(
        *(
            clients["acme"].chat.completions.create(
                model="gpt-4.1-nano",
                messages=HELLO,
                extra_headers={"X-Request-Id": joined},
            )
            for _ in range(2)
        )
    )
    assert first.id == second.id == joined
    assert first.choices[0].message.content == second.choices[0].message.content
    assert simulator.stats.requests == calls_before + 1
    assert (await billed(clickhouse, f"request_id = '{joined}'", 1))[:2] == (1, 1)


async def test_bad_calls_get_their_4xx_and_reach_no_provider(
    running: Running, simulator: RunningSimulator
) -> None:
    router = running.pipeline.router
    assert router is not None
    calls_before, received_before = simulator.stats.requests, router.stats.received
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    good = {"model": "tierline/auto", "messages": HELLO}

    async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:

        async def post(body: Any = None, *, content: Any = None, **more: Any) -> httpx.Response:
            sent = more.pop("headers", headers)
            if body is not None:
                return await http.post("/chat/completions", json=body, headers=sent, **more)
            return await http.post("/chat/completions", content=content, headers=sent, **more)

        def error(response: httpx.Response) -> dict[str, Any]:
            body: dict[str, Any] = response.json()["error"]
            assert set(body) == {"message", "type", "param", "code"}
            return body

        malformed = await post(content=b'{"model": "tierline/auto", "messages": [')
        assert malformed.status_code == 400 and "not valid JSON" in error(malformed)["message"]

        unknown = await post(good | {"model": "gpt-9000"})
        assert unknown.status_code == 400 and error(unknown)["code"] == "model_not_found"

        wrong = await post(good | {"temperature": "warm"})
        assert wrong.status_code == 400 and error(wrong)["param"] == "temperature"

        huge = {"model": "tierline/auto", "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
        too_big = await post(huge)
        assert too_big.status_code == 413 and error(too_big)["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"model": "tierline/auto", "messages": [{"role": "user", "content": "'
            for _ in range(MAX_BODY // 1024 + 1):
                yield b"x" * 1024
            yield b'"}]}'

        streamed = await post(content=chunks())  # no Content-Length: counted as it comes
        assert streamed.status_code == 413

        for bad_key in ({"Authorization": "Bearer sk-nobody"}, {}):
            refused = await post(good, headers=bad_key)
            assert refused.status_code == 401 and error(refused)["code"] == "invalid_api_key"
            assert "sk-nobody" not in refused.text

        smuggled = await post(good | {"reply_to": "globex.replies"})
        assert smuggled.status_code == 400 and error(smuggled)["param"] == "reply_to"
        posing = await post(good | {"tenant": "globex"})
        assert posing.status_code == 400 and error(posing)["param"] == "tenant"

        choices = await post(good | {"n": 2})
        assert choices.status_code == 400 and error(choices)["code"] == "unsupported"
        assert error(choices)["param"] == "n"
        usage_alone = await post(good | {"stream_options": {"include_usage": True}})
        assert usage_alone.status_code == 400 and error(usage_alone)["param"] == "stream_options"

        bad_id = await post(good, headers=headers | {"Idempotency-Key": "x" * 129})
        assert bad_id.status_code == 400 and error(bad_id)["code"] == "invalid_request_id"

        nowhere = await http.get("/nowhere", headers=headers)
        assert nowhere.status_code == 404 and error(nowhere)["code"] == "unknown_url"

    # the SDK raises its typed errors for the same refusals
    with pytest.raises(openai.AuthenticationError):
        await running.client("sk-nobody").models.list()
    with pytest.raises(openai.BadRequestError) as smuggled_by_sdk:
        await running.client().chat.completions.create(
            model="tierline/auto",
            messages=HELLO,
            extra_body={"reply_to": "globex.replies"},
        )
    assert smuggled_by_sdk.value.param == "reply_to"

    await asyncio.sleep(0.5)
    assert simulator.stats.requests == calls_before, "a refused call reached a provider"
    assert router.stats.received == received_before, "a refused call reached Kafka"

    server = running.pipeline.metrics_server
    assert server is not None
    async with httpx.AsyncClient(base_url=server.url) as http:
        ready = (await http.get("/readyz")).json()
        assert ready["components"]["gateway"] is True
        text = (await http.get("/metrics")).text
    assert 'tierline_gateway_requests_total{code="413",route="chat_completions"}' in text
    assert "tierline_gateway_in_flight" in text and "tierline_gateway_latency_seconds" in text


async def test_a_late_answer_is_a_504_then_collected_and_billed_once(
    running: Running, clickhouse: Client, simulator: RunningSimulator
) -> None:
    # a second gateway replica on the same topics, with a short timeout: the answer to its
    # call is read by it, from the shared response topic
    settings = running.settings.model_copy(deep=True)
    settings.gateway = gateway_settings(timeout_s=1.0)
    replica = await start_pipeline(settings, roles=("gateway",))
    try:
        assert replica.gateway is not None
        client = running.client(url=replica.gateway.url)
        rid = f"{running.prefix}late"
        slow: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": "Say hi [sim:latency=2500]"}
        ]
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as late:
            await client.chat.completions.create(
                model="gpt-4.1-nano",
                messages=slow,
                extra_headers={"Idempotency-Key": rid},
            )
        assert late.value.status_code == 504 and late.value.code == "gateway_timeout"
        assert late.value.response.headers["x-should-retry"] == "false"
        assert late.value.response.headers["x-request-id"] == rid
        assert time.monotonic() - started < 2.5
        assert (await billed(clickhouse, f"request_id = '{rid}'", 1))[:2] == (1, 1)
        calls = simulator.stats.requests
        again = await client.chat.completions.create(
            model="gpt-4.1-nano",
            messages=slow,
            extra_headers={"Idempotency-Key": rid},
        )
        assert again.id == rid and again.choices[0].message.content
        assert simulator.stats.requests == calls  # collected, not asked again

        # a provider failure of a pinned model is a 502 the SDK does not retry
        with pytest.raises(openai.InternalServerError) as failed:
            await running.client().chat.completions.create(
                model="gpt-4.1-nano",
                messages=[{"role": "user", "content": "Say hi [sim:garbage=html]"}],
            )
        assert failed.value.status_code == 502 and failed.value.code == "invalid_response"
    finally:
        await asyncio.wait_for(replica.stop(), timeout=60)
