"""Prices refreshed from a URL while the pipeline runs: new bills use the new prices, no restart."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from importlib import resources
from pathlib import Path

import orjson
from aiohttp import web

from tests.integration.support import collect, make_settings, produce, request_body
from tierline.processors.pricing.cost import cost_of
from tierline.processors.simulator import RunningSimulator
from tierline.schemas import RouteResponse, Tier
from tierline.streams.config import PricesSettings
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer


async def test_a_price_refresh_reprices_without_a_restart(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    catalog: dict[str, object] = {}

    async def serve(_: web.Request) -> web.Response:
        return web.json_response(catalog)

    app = web.Application()
    app.router.add_get("/prices.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.prices = PricesSettings(
        refresh_url=f"http://127.0.0.1:{port}/prices.json", refresh_interval_s=10
    )
    from tierline.processors.pricing.prices import bundled_price_book

    # the same catalog with every model 1,000 times dearer than the bundled price
    raw = orjson.loads(
        resources.files("tierline.processors.pricing.prices")
        .joinpath("litellm_chat_prices.json")
        .read_bytes()
    )
    for entry in raw.values():
        for field in ("input_cost_per_token", "output_cost_per_token"):
            if isinstance(entry.get(field), float):
                entry[field] = float(Decimal(repr(entry[field])) * 1000)
    catalog.update(raw)

    pipeline = await start_pipeline(settings, roles=("router", "workers"))
    try:
        model = pipeline.catalog.model(pipeline.catalog.candidates(Tier.ECONOMY)[0])
        for _ in range(50):
            if model.price.input != bundled_price_book().get(model.price_key).price.input:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
            model = pipeline.catalog.model(pipeline.catalog.candidates(Tier.ECONOMY)[0])
        bundled = bundled_price_book().get(model.price_key)
        assert bundled is not None
        assert model.price.input == bundled.price.input * 1000
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        await produce(
            kafka_bootstrap,
            pipeline.topics.requests,
            [request_body(f"{topic_prefix}p1", "Say hi", hints={"max_tier": "economy"})],
        )
        got = await collect(responses, 1, timeout_s=60)
        response = RouteResponse.model_validate(orjson.loads(got[0].value))
        assert response.status == "ok"
        used = pipeline.catalog.model(response.model or "")
        assert used.price.input == bundled_price_book().get(used.price_key).price.input * 1000  # type: ignore[union-attr]
        assert response.cost_usd == cost_of(response.usage, used.price)
        await responses.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
        await runner.cleanup()
