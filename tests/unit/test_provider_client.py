"""The provider client's fast path returns what httpx's normal path returns."""

from __future__ import annotations

import orjson

from tierline.processors.providers.http_client import provider_client
from tierline.processors.simulator import SimulatorProfile, start_simulator


async def test_fast_path_and_normal_path_agree() -> None:
    sim = await start_simulator(SimulatorProfile(seed=2))
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    headers = {"authorization": "Bearer k", "content-type": "application/json"}
    url = f"{sim.url}/v1/chat/completions"
    try:
        async with provider_client(10, 5.0) as client:
            fast = await client.post_bytes(url, body, headers)
            normal = await client.post(url, content=body, headers=headers)
            missing = await client.post_bytes(f"{sim.url}/nope", body, headers)
    finally:
        await sim.stop()
    assert fast.status_code == normal.status_code == 200
    assert orjson.loads(fast.content)["choices"][0]["message"]["content"]
    assert fast.headers["x-request-id"].startswith("req_")
    assert missing.status_code == 404
