"""``POST /v1/optimize/messages/test`` is bounded (issue 19, item 4): templates are compiled in a
child process with a time limit, their size is capped, the compile cache of the gateway does
not grow, and the API's 1 MB body limit applies."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest

from bcl import compile as bcl_compile
from gateway.templates import MAX_TEMPLATE_CHARS
from tests.api_support import start_api
from tests.conftest import make_config

TEST = "/v1/optimize/messages/test"


def template_with(fields: int) -> str:
    """A valid template of ``fields`` one-byte unsigned integers."""
    return json.dumps({"sense": [{"asset": f"f{i}", "value": {"byte": i, "bytelength": 1, "type": "uint"}}
                                 for i in range(fields)]})


def body(template: str, payload: bytes = b"\x01") -> dict:
    return {"template": template, "payload": base64.b64encode(payload).decode()}


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), roles=("API",))


async def test_a_test_compiles_in_a_child_process(api):
    client = api.client("API")
    template = template_with(3)
    cached = set(bcl_compile._by_text.data) | set(bcl_compile._by_canonical.data)
    answer = await client.post(TEST, json=body(template, b"\x01\x02\x03"))
    assert answer.status == 200, answer.body
    assert json.loads(answer.body["translatedPayload"]) == {"f0": 1, "f1": 2, "f2": 3}
    # nothing of it was compiled (or cached) in the gateway's process
    assert set(bcl_compile._by_text.data) | set(bcl_compile._by_canonical.data) == cached
    # the two kinds of errors still name their field
    bad = await client.post(TEST, json=body('{"sense": 3}'))
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "template"
    short = await client.post(TEST, json=body(template, b""))
    assert short.status == 400 and short.body["errors"][0]["field"] == "payload"


async def test_the_event_loop_keeps_serving_during_a_large_test(api):
    client = api.client("API")
    fields = 800
    template = template_with(fields)
    assert len(template) < MAX_TEMPLATE_CHARS
    health = f"http://127.0.0.1:{api.gateway.api_port}/health"
    gaps: list[float] = []

    async def probe(stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                started = time.perf_counter()
                async with session.get(health) as response:
                    assert response.status == 200
                gaps.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)

    stop = asyncio.Event()
    prober = asyncio.ensure_future(probe(stop))
    for _ in range(3):  # distinct templates: none is a cache hit
        template = template_with(fields := fields + 1)
        answer = await client.post(TEST, json=body(template, bytes(fields)))
        assert answer.status == 200, answer.body
    stop.set()
    await prober
    assert len(gaps) > 5 and max(gaps) < 0.25, (len(gaps), max(gaps))


async def test_too_large_and_too_slow(api):
    client = api.client("API")
    big = template_with(MAX_TEMPLATE_CHARS // 30)
    assert MAX_TEMPLATE_CHARS < len(big) < 1024 * 1024
    answer = await client.post(TEST, json=body(big))
    assert answer.status == 400 and answer.body["errors"][0]["field"] == "template"
    assert str(MAX_TEMPLATE_CHARS) in answer.body["errors"][0]["message"]
    # a test that takes longer than the limit is cut off and its child replaced
    tester = api.gateway.template_tester
    tester.timeout = 0.001
    slow = await client.post(TEST, json=body(template_with(3)))
    assert slow.status == 400 and slow.body["errors"][0]["field"] == "template"
    assert "took longer than 0.001 s" in slow.body["errors"][0]["message"]
    tester.timeout = 30
    again = await client.post(TEST, json=body(template_with(1)))
    assert again.status == 200 and json.loads(again.body["translatedPayload"]) == {"f0": 1}


async def test_the_api_body_limit_applies(api):
    client = api.client("API")
    huge = "x" * (2 * 1024 * 1024)
    answer = await client.post(TEST, json=body(huge))
    assert answer.status == 413


async def test_waiting_tests_are_bounded(api):
    client = api.client("API")
    api.gateway.template_tester.max_waiting = 1
    answers = await asyncio.gather(*(client.post(TEST, json=body(template_with(n))) for n in range(1, 5)))
    statuses = sorted(a.status for a in answers)
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status == 429)


def test_the_compile_cache_is_bounded_by_template_size():
    lru = bcl_compile._LRU(size=100, max_chars=1000)
    for i in range(10):
        lru.put(f"{i}" * 300, object())  # type: ignore[arg-type]
    assert lru.chars <= 1000 and len(lru.data) == 3
    lru.put("x" * 1001, object())  # type: ignore[arg-type]
    assert "x" * 1001 not in lru.data and len(lru.data) == 3
