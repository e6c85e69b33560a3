"""Values that used to answer 500 with a traceback (issue 19, item 12): each is a 400 naming the
field, and nothing is logged at ERROR."""

from __future__ import annotations

import base64
import json
import logging

import aiohttp
import pytest

from gateway.api.validation import SchemaError, check
from tests.api_support import EMAILS, basic, start_api
from tests.conftest import make_config, sim

BIG = 2**63


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), [sim(10)], roles=("Owner",))


def _token(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).rstrip(b"=").decode()


def _field(answer) -> str:
    return answer.body["errors"][0]["field"]


@pytest.mark.parametrize("path", ["/v1/sims", "/v1/inspect/devices"])
@pytest.mark.parametrize("page", [BIG - 1, BIG, 10**30, BIG // 10 + 2])
async def test_huge_page_numbers(api, caplog, path, page):
    answer = await api.client("Owner").get(f"{path}?page={page}&pageSize=10")
    assert answer.status == 400, answer.body
    assert _field(answer) == "page"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_last_reachable_page_still_answers(api):
    answer = await api.client("Owner").get(f"/v1/sims?page={(BIG - 1) // 100}&pageSize=100")
    assert answer.status == 200 and answer.body == []


STATE = {"v": 1, "h": 0, "s": 0, "e": None, "p": None, "d": None, "o": None, "a": None}


@pytest.mark.parametrize("changes", [
    {"h": BIG}, {"s": -BIG - 1}, {"e": 10**40}, {"a": [BIG, 1]}, {"a": [1, -BIG - 5]},
    {"o": 100000}, {"o": -1440}, {"h": True}, {"a": [True, 1]}, {"s": 10**20},
])
async def test_crafted_next_tokens(api, caplog, changes):
    token = _token({**STATE, **changes})
    answer = await api.client("Owner").get(f"/v1/inspect/devices/history?nextToken={token}")
    assert answer.status == 400, (changes, answer.body)
    assert _field(answer) == "nextToken"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_sound_token_still_pages(api):
    token = _token({**STATE, "o": 120, "s": 1, "a": [5, 7]})
    answer = await api.client("Owner").get(f"/v1/inspect/devices/history?nextToken={token}")
    assert answer.status == 200 and answer.body["items"] == []


NESTED = "[" * 100_000 + "]" * 100_000


async def test_deeply_nested_json_body(api, caplog):
    answer = await api.client("Owner").request(
        "PUT", f"/v1/sims/{sim(10).iccid}", data=NESTED, headers={"Content-Type": "application/json"})
    assert answer.status == 400 and _field(answer) == "body"
    assert "nested" in answer.body["errors"][0]["message"]
    # not so deep that the parser fails, but deeper than any request of the API
    medium = '{"label": ' + "[" * 500 + "]" * 500 + "}"
    answer = await api.client("Owner").request(
        "PUT", f"/v1/sims/{sim(10).iccid}", data=medium, headers={"Content-Type": "application/json"})
    assert answer.status == 400 and _field(answer) == "body", answer.body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_deeply_nested_json_on_the_token_endpoint(api, caplog):
    async with aiohttp.ClientSession() as session:
        for body in (NESTED, '{"grant_type": ' + "[" * 5000 + "]" * 5000 + "}"):
            async with session.post(f"{api.base}/oauth/token", data=body, headers={
                    "Content-Type": "application/json", **basic(EMAILS["Owner"])}) as response:
                assert response.status == 400
                answer = await response.json()
                assert answer["errorCode"] == "BodyValidationError" and "nested" in answer["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_integers_beyond_64_bits_are_refused_by_the_validator():
    for value in (BIG, -BIG - 1, 10**100):
        with pytest.raises(SchemaError, match="out of range"):
            check(value, {"type": "integer"}, lambda ref: {}, "keepalive")
    check(BIG - 1, {"type": "integer"}, lambda ref: {}, "keepalive")
    check(-BIG, {"type": "number"}, lambda ref: {}, "keepalive")
