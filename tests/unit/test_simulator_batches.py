"""The simulator's batch APIs (OpenAI Batch + Files, Anthropic Message Batches, Gemini
batchGenerateContent), driven over real HTTP with httpx against an in-process server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    start_simulator,
)

StartSim = Callable[..., Awaitable[RunningSimulator]]
Json = dict[str, Any]

OPENAI_AUTH = {"Authorization": "Bearer sk-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": "AIza-test"}
FAST = 0.05
"""The batch delay of most tests: a batch ends 50 ms after it was created."""


@pytest.fixture
async def start() -> AsyncIterator[StartSim]:
    running: list[RunningSimulator] = []

    async def _start(profile: SimulatorProfile | None = None, **fields: Any) -> RunningSimulator:
        fields.setdefault("batch_delay_s", FAST)
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


# ----------------------------------------------------------------------------- bodies


def openai_body(text: str, model: str = "gpt-4o-mini") -> Json:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def anthropic_body(text: str, model: str = "claude-haiku") -> Json:
    return {"model": model, "max_tokens": 512, "messages": [{"role": "user", "content": text}]}


def gemini_body(text: str) -> Json:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


PROMPTS = {
    "q-1": "What is a batch?",
    "q-2": "Name three colours.",
    "q-3": "Fail please [sim:error=500]",
    "q-4": "Summarise the weather.",
    "q-5": "Count to five.",
}
FAILING = "q-3"


async def until(
    fetch: Callable[[], Awaitable[httpx.Response]], done: Callable[[Json], bool]
) -> Json:
    """Poll `fetch` until its JSON satisfies `done` (or fail after 5 s)."""
    deadline = time.monotonic() + 5.0
    while True:
        r = await fetch()
        assert r.status_code == 200, r.text
        body: Json = r.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"never done: {body}"
        await asyncio.sleep(0.02)


async def sync_answer(
    client: httpx.AsyncClient, sim: RunningSimulator, path: str, headers: dict[str, str], body: Any
) -> httpx.Response:
    """The synchronous route's answer to exactly the bytes a batch item's identity is."""
    h = {**headers, "Content-Type": "application/json"}
    return await client.post(sim.url + path, headers=h, content=orjson.dumps(body))


def jsonl(raw: bytes) -> list[Json]:
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- OpenAI


def openai_input(bodies: dict[str, Any], url: str = "/v1/chat/completions") -> bytes:
    return b"".join(
        orjson.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body}) + b"\n"
        for cid, body in bodies.items()
    )


async def openai_upload(
    client: httpx.AsyncClient, sim: RunningSimulator, data: bytes, name: str = "in.jsonl"
) -> httpx.Response:
    return await client.post(
        f"{sim.url}/v1/files",
        headers=OPENAI_AUTH,
        data={"purpose": "batch"},
        files={"file": (name, data, "application/jsonl")},
    )


async def openai_create(client: httpx.AsyncClient, sim: RunningSimulator, data: bytes) -> Json:
    up = await openai_upload(client, sim, data)
    assert up.status_code == 200, up.text
    r = await client.post(
        f"{sim.url}/v1/batches",
        headers=OPENAI_AUTH,
        json={
            "input_file_id": up.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"run": "test"},
        },
    )
    assert r.status_code == 200, r.text
    created: Json = r.json()
    assert created["status"] == "validating"
    return created


async def openai_final(client: httpx.AsyncClient, sim: RunningSimulator, batch_id: str) -> Json:
    return await until(
        lambda: client.get(f"{sim.url}/v1/batches/{batch_id}", headers=OPENAI_AUTH),
        lambda b: b["status"] not in ("validating", "in_progress", "finalizing", "cancelling"),
    )


async def openai_file(client: httpx.AsyncClient, sim: RunningSimulator, file_id: str) -> list[Json]:
    r = await client.get(f"{sim.url}/v1/files/{file_id}/content", headers=OPENAI_AUTH)
    assert r.status_code == 200
    return jsonl(r.content)


async def test_openai_batch_answers_each_item_once_as_the_sync_route_would(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(seed=3)
    bodies = {cid: openai_body(text) for cid, text in PROMPTS.items()}
    created = await openai_create(client, sim, openai_input(bodies))
    assert created["id"].startswith("batch_") and created["object"] == "batch"
    assert created["output_file_id"] is None and created["error_file_id"] is None
    assert created["metadata"] == {"run": "test"}

    batch = await openai_final(client, sim, created["id"])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 5, "completed": 4, "failed": 1}
    assert batch["completed_at"] is not None and batch["errors"] is None
    output = await openai_file(client, sim, batch["output_file_id"])
    errors = await openai_file(client, sim, batch["error_file_id"])
    assert sorted(line["custom_id"] for line in output + errors) == sorted(PROMPTS)
    assert [line["custom_id"] for line in errors] == [FAILING]
    failed = errors[0]
    assert failed["id"].startswith("batch_req_") and failed["error"] is None
    assert failed["response"]["status_code"] == 500
    assert set(failed["response"]["body"]["error"]) == {"message", "type", "param", "code"}

    # every answer is what /v1/chat/completions answers for that body, on the same seed
    twin = await start(seed=3)
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        answer = line["response"]["body"]
        r = await sync_answer(
            client, twin, "/v1/chat/completions", OPENAI_AUTH, bodies[line["custom_id"]]
        )
        expected = r.json()
        assert answer.keys() == expected.keys()
        assert answer["object"] == "chat.completion"
        assert {**answer, "created": 0} == {**expected, "created": 0}

    stats = sim.stats
    assert stats.batches == {"openai": 1} and stats.batch_items == 5
    assert stats.requests == 5 and stats.by_model == {"gpt-4o-mini": 5}
    assert stats.by_route == {"openai": 5} and stats.by_status == {200: 4, 500: 1}
    assert stats.by_outcome == {"ok": 4, "error": 1}
    assert stats.batch_polls >= 1 and stats.batch_items_resubmitted == 0


async def test_openai_file_uploads_are_checked_as_openai_checks_them(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    up = await openai_upload(client, sim, openai_input({"a": openai_body("x")}))
    stored = up.json()
    assert stored["object"] == "file" and stored["purpose"] == "batch"
    assert stored["id"].startswith("file-") and stored["filename"] == "in.jsonl"
    assert stored["bytes"] == len(openai_input({"a": openai_body("x")}))
    meta = await client.get(f"{sim.url}/v1/files/{stored['id']}", headers=OPENAI_AUTH)
    assert meta.json() == stored

    wrong_name = await openai_upload(client, sim, b"{}\n", name="notes.txt")
    assert wrong_name.status_code == 400
    assert (
        wrong_name.json()["error"]["message"] == "Invalid file format for Batch API. Must be .jsonl"
    )
    wrong_purpose = await client.post(
        f"{sim.url}/v1/files",
        headers=OPENAI_AUTH,
        data={"purpose": "fine-tune"},
        files={"file": ("in.jsonl", b"{}\n", "application/jsonl")},
    )
    assert wrong_purpose.status_code == 400
    assert wrong_purpose.json()["error"]["param"] == "purpose"

    bad_window = await client.post(
        f"{sim.url}/v1/batches",
        headers=OPENAI_AUTH,
        json={
            "input_file_id": stored["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "1h",
        },
    )
    assert bad_window.status_code == 400
    assert bad_window.json()["error"]["code"] == "invalid_value"
    unknown = await client.post(
        f"{sim.url}/v1/batches",
        headers=OPENAI_AUTH,
        json={
            "input_file_id": "file-nope",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert unknown.status_code == 404


async def test_openai_bad_lines_fail_the_batch_with_the_documented_codes(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    # OpenAI takes the create call and fails the batch once it has read the file
    duplicate = openai_input({"same": openai_body("a")}) + openai_input({"same": openai_body("b")})
    created = await openai_create(client, sim, duplicate + b"not json\n")
    batch = await openai_final(client, sim, created["id"])
    assert batch["status"] == "failed" and batch["failed_at"] is not None
    errors = batch["errors"]["data"]
    assert [(e["code"], e["line"]) for e in errors] == [
        ("duplicate_custom_id", 2),
        ("invalid_json_line", 3),
    ]
    assert batch["output_file_id"] is None and batch["request_counts"]["total"] == 0

    mixed = openai_input({"a": openai_body("a", "gpt-4o-mini"), "b": openai_body("b", "gpt-4o")})
    other = await openai_final(client, sim, (await openai_create(client, sim, mixed))["id"])
    assert [e["code"] for e in other["errors"]["data"]] == ["model_mismatch"]
    wrong_url = openai_input({"a": openai_body("a")}, url="/v1/embeddings")
    third = await openai_final(client, sim, (await openai_create(client, sim, wrong_url))["id"])
    assert [e["code"] for e in third["errors"]["data"]] == ["url_mismatch"]
    assert sim.stats.batches == {"openai": 3} and sim.stats.batch_items == 0


# ----------------------------------------------------------------------------- Anthropic


async def anthropic_create(
    client: httpx.AsyncClient, sim: RunningSimulator, bodies: dict[str, Any]
) -> httpx.Response:
    requests = [{"custom_id": cid, "params": body} for cid, body in bodies.items()]
    return await client.post(
        f"{sim.url}/v1/messages/batches", headers=ANTHROPIC_AUTH, json={"requests": requests}
    )


async def anthropic_final(client: httpx.AsyncClient, sim: RunningSimulator, batch_id: str) -> Json:
    return await until(
        lambda: client.get(f"{sim.url}/v1/messages/batches/{batch_id}", headers=ANTHROPIC_AUTH),
        lambda b: b["processing_status"] == "ended",
    )


async def test_anthropic_batch_answers_each_item_once_as_the_sync_route_would(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(seed=5)
    bodies = {cid: anthropic_body(text) for cid, text in PROMPTS.items()}
    r = await anthropic_create(client, sim, bodies)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["id"].startswith("msgbatch_") and created["type"] == "message_batch"
    assert created["processing_status"] == "in_progress"
    assert created["request_counts"] == {
        "processing": 5,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert created["results_url"] is None and created["ended_at"] is None
    assert created["created_at"].endswith("Z") and created["archived_at"] is None

    batch = await anthropic_final(client, sim, created["id"])
    assert batch["request_counts"] == {
        "processing": 0,
        "succeeded": 4,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert batch["ended_at"] is not None
    url = f"{sim.url}/v1/messages/batches/{created['id']}/results"
    assert batch["results_url"] == url
    results = await client.get(url, headers=ANTHROPIC_AUTH)
    assert results.status_code == 200
    assert results.headers["content-type"].startswith("application/binary")
    lines = jsonl(results.content)
    assert [line["custom_id"] for line in lines] == list(PROMPTS)
    by_id = {line["custom_id"]: line["result"] for line in lines}
    errored = by_id.pop(FAILING)
    assert errored["type"] == "errored"
    assert errored["error"]["type"] == "error"
    assert errored["error"]["error"] == {"type": "api_error", "message": "Internal server error"}

    twin = await start(seed=5)
    for custom_id, result in by_id.items():
        assert result["type"] == "succeeded"
        r = await sync_answer(client, twin, "/v1/messages", ANTHROPIC_AUTH, bodies[custom_id])
        assert result["message"].keys() == r.json().keys()
        assert result["message"] == r.json()
    assert sim.stats.by_model == {"claude-haiku": 5}


async def test_anthropic_batch_refuses_what_anthropic_refuses(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    duplicate = [
        {"custom_id": "same", "params": anthropic_body("a")},
        {"custom_id": "same", "params": anthropic_body("b")},
    ]
    r = await client.post(
        f"{sim.url}/v1/messages/batches", headers=ANTHROPIC_AUTH, json={"requests": duplicate}
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    bad_id = await anthropic_create(client, sim, {"has space": anthropic_body("a")})
    assert bad_id.status_code == 400 and "custom_id" in bad_id.json()["error"]["message"]
    empty = await client.post(
        f"{sim.url}/v1/messages/batches", headers=ANTHROPIC_AUTH, json={"requests": []}
    )
    assert empty.status_code == 400
    # a bad Messages body is that request's errored result, with the sync route's 400
    r = await anthropic_create(client, sim, {"no-max": {"model": "claude-haiku", "messages": []}})
    batch = await anthropic_final(client, sim, r.json()["id"])
    lines = jsonl((await client.get(batch["results_url"], headers=ANTHROPIC_AUTH)).content)
    error = lines[0]["result"]["error"]["error"]
    assert error == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert sim.stats.batches == {"anthropic": 1}


# ----------------------------------------------------------------------------- Gemini


async def gemini_create(
    client: httpx.AsyncClient,
    sim: RunningSimulator,
    bodies: dict[str, Any],
    *,
    version: str = "v1beta",
    model: str = "gemini-2.0-flash",
) -> httpx.Response:
    requests = [{"request": body, "metadata": {"key": key}} for key, body in bodies.items()]
    batch = {"display_name": "sim-test", "input_config": {"requests": {"requests": requests}}}
    return await client.post(
        f"{sim.url}/{version}/models/{model}:batchGenerateContent",
        headers=GEMINI_AUTH,
        json={"batch": batch},
    )


async def gemini_final(
    client: httpx.AsyncClient, sim: RunningSimulator, name: str, version: str = "v1beta"
) -> Json:
    return await until(
        lambda: client.get(f"{sim.url}/{version}/{name}", headers=GEMINI_AUTH),
        lambda op: op.get("done", False),
    )


async def test_gemini_batch_answers_each_item_once_as_the_sync_route_would(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(seed=9)
    bodies = {key: gemini_body(text) for key, text in PROMPTS.items()}
    r = await gemini_create(client, sim, bodies)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["name"].startswith("batches/") and "done" not in created
    meta = created["metadata"]
    assert meta["@type"] == (
        "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
    )
    assert meta["model"] == "models/gemini-2.0-flash" and meta["displayName"] == "sim-test"
    assert meta["state"] == "BATCH_STATE_PENDING" and meta["name"] == created["name"]
    assert meta["batchStats"] == {"requestCount": "5", "pendingRequestCount": "5"}

    op = await gemini_final(client, sim, created["name"])
    meta = op["metadata"]
    assert op["done"] is True and meta["state"] == "BATCH_STATE_SUCCEEDED"
    assert meta["batchStats"] == {
        "requestCount": "5",
        "successfulRequestCount": "4",
        "failedRequestCount": "1",
    }
    assert op["response"]["@type"].endswith("v1main.GenerateContentBatchOutput")
    answers = op["response"]["inlinedResponses"]["inlinedResponses"]
    assert meta["output"]["inlinedResponses"]["inlinedResponses"] == answers
    assert [a["metadata"] for a in answers] == [{"key": k} for k in PROMPTS]  # request order
    by_key = {a["metadata"]["key"]: a for a in answers}
    failed = by_key.pop(FAILING)
    assert "response" not in failed
    assert failed["error"]["code"] == 500 and failed["error"]["status"] == "INTERNAL"

    twin = await start(seed=9)
    path = "/v1beta/models/gemini-2.0-flash:generateContent"
    for key, answer in by_key.items():
        r = await sync_answer(client, twin, path, GEMINI_AUTH, bodies[key])
        assert answer["response"].keys() == r.json().keys()
        assert answer["response"] == r.json()
    assert sim.stats.by_model == {"gemini-2.0-flash": 5}


async def test_gemini_batch_under_v1_and_its_refusals(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    r = await gemini_create(client, sim, {"a": gemini_body("hi")}, version="v1")
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    op = await gemini_final(client, sim, name, version="v1")
    assert op["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    ended = await client.post(f"{sim.url}/v1/{name}:cancel", headers=GEMINI_AUTH)
    assert ended.status_code == 200 and ended.json() == {}  # too late: it stays succeeded
    again = (await client.get(f"{sim.url}/v1/{name}", headers=GEMINI_AUTH)).json()
    assert again["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    # an OpenAI batch on the same /v1/batches/{id} route still answers as OpenAI
    created = await openai_create(client, sim, openai_input({"a": openai_body("x")}))
    assert (await openai_final(client, sim, created["id"]))["status"] == "completed"

    no_requests = await client.post(
        f"{sim.url}/v1beta/models/gemini-2.0-flash:batchGenerateContent",
        headers=GEMINI_AUTH,
        json={"batch": {"input_config": {"requests": {"requests": []}}}},
    )
    assert no_requests.status_code == 400
    assert no_requests.json()["error"]["status"] == "INVALID_ARGUMENT"
    # metadata keys need not be unique: the answers come in request order
    same = [{"request": gemini_body(t), "metadata": {"key": "k"}} for t in ("a", "b")]
    r = await client.post(
        f"{sim.url}/v1beta/models/gemini-2.0-flash:batchGenerateContent",
        headers=GEMINI_AUTH,
        json={"batch": {"inputConfig": {"requests": {"requests": same}}}},
    )
    assert r.status_code == 200
    op = await gemini_final(client, sim, r.json()["name"])
    assert len(op["response"]["inlinedResponses"]["inlinedResponses"]) == 2


# ----------------------------------------------------------------------------- all formats


async def test_the_expire_knob_at_one_expires_every_item(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(batch_expire_rate=1.0)
    texts = {"e-1": "one", "e-2": "two"}

    created = await openai_create(
        client, sim, openai_input({k: openai_body(t) for k, t in texts.items()})
    )
    batch = await openai_final(client, sim, created["id"])
    assert batch["status"] == "expired" and batch["expired_at"] is not None
    assert batch["output_file_id"] is None
    assert batch["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    lines = await openai_file(client, sim, batch["error_file_id"])
    assert {line["custom_id"] for line in lines} == set(texts)
    assert all(line["response"] is None for line in lines)
    assert {line["error"]["code"] for line in lines} == {"batch_expired"}

    r = await anthropic_create(client, sim, {k: anthropic_body(t) for k, t in texts.items()})
    batch = await anthropic_final(client, sim, r.json()["id"])
    assert batch["request_counts"]["expired"] == 2
    results = jsonl((await client.get(batch["results_url"], headers=ANTHROPIC_AUTH)).content)
    assert [line["result"] for line in results] == [{"type": "expired"}] * 2

    r = await gemini_create(client, sim, {k: gemini_body(t) for k, t in texts.items()})
    op = await gemini_final(client, sim, r.json()["name"])
    assert op["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    assert op["error"]["code"] == 4 and "response" not in op
    assert sim.stats.by_outcome == {"expired": 6}


async def test_a_model_override_sets_its_batches_knobs(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    profile = SimulatorProfile(
        batch_delay_s=FAST,
        models={
            "claude-slow": ModelOverride(batch_delay_s=30.0),
            "claude-lossy": ModelOverride(batch_expire_rate=1.0),
        },
    )
    sim = await start(profile)
    slow = await anthropic_create(
        client,
        sim,
        {"a": anthropic_body("x", model="claude-slow"), "b": anthropic_body("y")},
    )
    lossy = await anthropic_create(
        client,
        sim,
        {"a": anthropic_body("x", model="claude-lossy"), "b": anthropic_body("y")},
    )
    batch = await anthropic_final(client, sim, lossy.json()["id"])
    assert batch["request_counts"]["expired"] == 1 and batch["request_counts"]["succeeded"] == 1
    r = await client.get(
        f"{sim.url}/v1/messages/batches/{slow.json()['id']}", headers=ANTHROPIC_AUTH
    )
    # a batch takes as long as its slowest model says
    assert r.json()["processing_status"] == "in_progress"


async def test_item_fates_are_the_sync_fates(start: StartSim, client: httpx.AsyncClient) -> None:
    # an enforced rpm limit throttles sync calls only; batches are queued apart
    sim = await start(rpm_limit=1)
    bodies = {
        "limited": openai_body("slow down [sim:rate_limit=2]"),
        "garbled": openai_body("break it [sim:garbage=html]"),
        "hung": openai_body("wait [sim:hang]"),
        "fine-1": openai_body("a"),
        "fine-2": openai_body("b"),
    }
    created = await openai_create(client, sim, openai_input(bodies))
    batch = await openai_final(client, sim, created["id"])
    assert batch["status"] == "expired"  # the hung item expired
    lines = await openai_file(client, sim, batch["output_file_id"])
    lines += await openai_file(client, sim, batch["error_file_id"])
    by_id = {line["custom_id"]: line for line in lines}
    limited = by_id["limited"]["response"]
    assert limited["status_code"] == 429
    assert limited["body"]["error"]["code"] == "rate_limit_exceeded"
    garbled = by_id["garbled"]["response"]
    assert garbled["status_code"] == 200 and garbled["body"].startswith("<html>")
    assert by_id["hung"]["error"]["code"] == "batch_expired"
    assert by_id["fine-1"]["response"]["status_code"] == 200
    assert by_id["fine-2"]["response"]["status_code"] == 200
    assert sim.stats.by_outcome == {"rate_limit": 1, "garbage": 1, "expired": 1, "ok": 2}


async def test_cancel_before_the_end_cancels_every_item(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start(batch_delay_s=30.0)
    created = await openai_create(client, sim, openai_input({"a": openai_body("x")}))
    running = await client.get(f"{sim.url}/v1/batches/{created['id']}", headers=OPENAI_AUTH)
    assert running.json()["status"] == "in_progress"
    assert running.json()["request_counts"] == {"total": 1, "completed": 0, "failed": 0}
    r = await client.post(f"{sim.url}/v1/batches/{created['id']}/cancel", headers=OPENAI_AUTH)
    assert r.json()["status"] == "cancelling"
    batch = await openai_final(client, sim, created["id"])
    assert batch["status"] == "cancelled" and batch["cancelled_at"] is not None
    lines = await openai_file(client, sim, batch["error_file_id"])
    assert [line["error"]["code"] for line in lines] == ["batch_cancelled"]
    again = await client.post(f"{sim.url}/v1/batches/{created['id']}/cancel", headers=OPENAI_AUTH)
    assert again.status_code == 400

    r = await anthropic_create(client, sim, {"a": anthropic_body("x")})
    msgbatch = r.json()["id"]
    early = await client.get(
        f"{sim.url}/v1/messages/batches/{msgbatch}/results", headers=ANTHROPIC_AUTH
    )
    assert early.status_code == 404
    r = await client.post(
        f"{sim.url}/v1/messages/batches/{msgbatch}/cancel", headers=ANTHROPIC_AUTH
    )
    assert r.json()["processing_status"] == "canceling"
    assert r.json()["cancel_initiated_at"] is not None
    batch = await anthropic_final(client, sim, msgbatch)
    assert batch["request_counts"]["canceled"] == 1
    results = jsonl((await client.get(batch["results_url"], headers=ANTHROPIC_AUTH)).content)
    assert results == [{"custom_id": "a", "result": {"type": "canceled"}}]

    r = await gemini_create(client, sim, {"a": gemini_body("x")})
    name = r.json()["name"]
    running_op = (await client.get(f"{sim.url}/v1beta/{name}", headers=GEMINI_AUTH)).json()
    assert running_op["metadata"]["state"] == "BATCH_STATE_RUNNING"
    r = await client.post(f"{sim.url}/v1beta/{name}:cancel", headers=GEMINI_AUTH)
    assert r.status_code == 200 and r.json() == {}
    op = await gemini_final(client, sim, name)
    assert op["metadata"]["state"] == "BATCH_STATE_CANCELLED" and op["error"]["code"] == 1
    assert sim.stats.requests == 0  # no canceled item reached a model


async def test_missing_auth_is_refused_in_each_formats_shape(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    r = await client.post(f"{sim.url}/v1/batches", json={})
    assert r.status_code == 401 and r.json()["error"]["code"] is None
    r = await client.post(f"{sim.url}/v1/files", data={"purpose": "batch"})
    assert r.status_code == 401
    r = await client.post(f"{sim.url}/v1/messages/batches", json={"requests": []})
    assert r.status_code == 401
    assert r.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    r = await client.post(f"{sim.url}/v1beta/models/gemini-2.0-flash:batchGenerateContent")
    # Gemini answers a call without a key as generateContent does: 403 PERMISSION_DENIED
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    r = await client.get(
        f"{sim.url}/v1/messages/batches/msgbatch_x",
        headers={"x-api-key": "sim-invalid-key", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid x-api-key"


async def test_unknown_ids_are_404_in_each_formats_shape(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    r = await client.get(f"{sim.url}/v1/batches/batch_nope", headers=OPENAI_AUTH)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.get(f"{sim.url}/v1/files/file-nope/content", headers=OPENAI_AUTH)
    assert r.status_code == 404
    r = await client.get(f"{sim.url}/v1/messages/batches/msgbatch_nope", headers=ANTHROPIC_AUTH)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    for version in ("v1beta", "v1"):
        r = await client.get(f"{sim.url}/{version}/batches/nope", headers=GEMINI_AUTH)
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    # an Anthropic batch is no OpenAI batch
    created = (await anthropic_create(client, sim, {"a": anthropic_body("x")})).json()
    r = await client.get(f"{sim.url}/v1/batches/{created['id']}", headers=OPENAI_AUTH)
    assert r.status_code == 404


async def test_a_custom_id_submitted_again_counts_as_resubmitted(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    await anthropic_create(client, sim, {"a": anthropic_body("1"), "b": anthropic_body("2")})
    await anthropic_create(client, sim, {"b": anthropic_body("2"), "c": anthropic_body("3")})
    assert sim.stats.batch_items_resubmitted == 1
    # the same id on another route is another request
    await openai_create(client, sim, openai_input({"b": openai_body("2")}))
    await gemini_create(client, sim, {"b": gemini_body("2")})
    stats = sim.stats
    assert stats.batch_items_resubmitted == 1
    assert stats.batches == {"anthropic": 2, "openai": 1, "gemini": 1}
    assert stats.batch_items == 6
    served = (await client.get(f"{sim.url}/_sim/stats")).json()
    assert served["batch_items_resubmitted"] == 1 and served["batch_items"] == 6
    assert served["batches"] == {"anthropic": 2, "openai": 1, "gemini": 1}
    assert served["batch_polls"] == 0


async def test_an_outage_refuses_batch_calls_too(
    start: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start()
    r = await anthropic_create(client, sim, {"a": anthropic_body("x")})
    await sim.down(mode="503")
    refused = await client.get(
        f"{sim.url}/v1/messages/batches/{r.json()['id']}", headers=ANTHROPIC_AUTH
    )
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "api_error"
    r = await gemini_create(client, sim, {"a": gemini_body("x")})
    assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
    await sim.down(mode="reset")
    with pytest.raises(httpx.TransportError):
        await client.post(f"{sim.url}/v1/batches", headers=OPENAI_AUTH, json={})
    await sim.up()
    stats = sim.stats
    assert stats.during_outage == 3 and stats.by_outcome == {"outage": 3}
    assert stats.requests == 0
