"""flows/03_getting_started_data_pipeline.yaml end to end, offline.

A local aiohttp server plays dummyjson.com; the Download, the Python transform (Process
runner) and DuckDB run for real, and the stored DuckDB result holds the averages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from daemon.sdk.state import State
from tests.harness import Harness, task_states

FLOW = (
    Path(__file__).resolve().parent.parent / "flows" / "03_getting_started_data_pipeline.yaml"
).read_text()

PRODUCTS = {
    "products": [
        {"id": 1, "title": "iPhone", "brand": "Apple", "price": 10, "rating": 4.5},
        {"id": 2, "title": "MacBook", "brand": "Apple", "price": 20.5, "rating": 4.1},
        {"id": 3, "title": "Mascara", "brand": "Essence", "price": 9.99, "rating": 4.9},
        {"id": 4, "title": "Galaxy", "brand": "Samsung", "price": 100, "rating": 3.2},
        {"id": 5, "title": "Galaxy S", "brand": "Samsung", "price": 200, "rating": 3.8},
        {"id": 6, "title": "Galaxy Z", "brand": "Samsung", "price": 301, "rating": 4.0},
        {"id": 7, "title": "Apple pie", "price": 5, "rating": 5.0},
    ],
    "total": 7,
    "skip": 0,
    "limit": 30,
}

AVERAGES = (
    '{"brand":"Samsung","avg_price":200.33e0}\n'
    '{"brand":"Apple","avg_price":15.25e0}\n'
    '{"brand":"Essence","avg_price":9.99e0}\n'
    '{"brand":"N/A","avg_price":5.0e0}\n'
)


@pytest.fixture
async def products_url() -> AsyncIterator[str]:
    async def products(request: web.Request) -> web.Response:
        return web.json_response(PRODUCTS)

    app = web.Application()
    app.router.add_get("/products", products)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/products"
    await runner.cleanup()


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def test_pipeline_stores_the_average_price_per_brand(h: Harness, products_url: str) -> None:
    ex = await h.run(FLOW, {"products_url": products_url})
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    assert task_states(ex) == {"extract": "SUCCESS", "transform": "SUCCESS", "query": "SUCCESS"}
    extract, transform, query = (tr.outputs for tr in ex.task_runs)
    assert extract["code"] == 200
    assert json.loads(await read(h, extract["uri"])) == PRODUCTS
    kept = json.loads(await read(h, transform["outputFiles"]["products.json"]))
    assert kept[0] == {"brand": "Apple", "price": 10}
    assert {tuple(product) for product in kept} == {("brand", "price")}
    [result] = query["outputs"]
    assert result["size"] == 4
    assert await read(h, result["uri"]) == AVERAGES


async def test_pipeline_keeps_the_columns_given_as_input(h: Harness, products_url: str) -> None:
    ex = await h.run(
        FLOW, {"products_url": products_url, "columns_to_keep": '["title", "brand", "price"]'}
    )
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    transform, query = ex.task_runs[1].outputs, ex.task_runs[2].outputs
    kept = json.loads(await read(h, transform["outputFiles"]["products.json"]))
    assert kept[0] == {"title": "iPhone", "brand": "Apple", "price": 10}
    assert await read(h, query["outputs"][0]["uri"]) == AVERAGES


async def test_pipeline_fails_at_extract_when_the_api_is_down(h: Harness) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_get("/products", down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/products"
    try:
        ex = await h.run(FLOW, {"products_url": url})
    finally:
        await runner.cleanup()
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"extract": "FAILED"}
    assert await h.logs(ex, "ERROR") == [
        f"GET {url} failed with response code 503 and body:\nmaintenance"
    ]
