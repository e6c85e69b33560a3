"""The API routes the console needs: history newest first (snapshot paging backwards), a
device's events, events without a device, a device's LwM2M registration with its object tree."""

from __future__ import annotations

import time

import pytest

from tests._lwm2m_server_helpers import registered_client
from tests.api_support import start_api
from tests.conftest import make_config, sim
from tests.test_api_inspector import message, payload_id, store_messages

DEVICE = sim(10)


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), [DEVICE, sim(11)], roles=("User",))


async def test_history_newest_first_pages_each_message_once(api):
    now = int(time.time() * 1000)
    # equal times for three of them: the order within a millisecond is the sequence number's
    times = [now - 5000, now - 4000, now - 3000, now - 3000, now - 3000, now - 1000, now]
    await store_messages(api.gateway, [message(n, t, device=DEVICE) for n, t in enumerate(times)])
    client = api.client("User")
    seen, token = [], None
    for _ in range(5):
        answer = await client.get(f"/v1/inspect/devices/{DEVICE.iccid}/history",
                                  params={"pageSize": 3, "order": "desc", **({"nextToken": token} if token else {})})
        assert answer.status == 200
        seen += [payload_id(i) for i in answer.body["items"]]
        token = answer.body.get("nextToken")
        if token is None:
            break
        if len(seen) == 3:  # a message arriving now belongs to the next query, not to this snapshot
            await store_messages(api.gateway, [message(99, now + 10, device=DEVICE)])
    assert seen == ["m000006", "m000005", "m000004", "m000003", "m000002", "m000001", "m000000"]
    answer = await client.get(f"/v1/inspect/devices/{DEVICE.iccid}/history",
                              params={"pageSize": 3, "order": "asc", "nextToken": token or _first_token(api)})
    assert answer.status == 400 and answer.body["errors"][0]["message"] == "order: differs from the query of nextToken"


def _first_token(api) -> str:
    import base64
    import json
    state = {"v": 1, "h": 10, "s": 0, "e": None, "p": None, "d": DEVICE.iccid, "o": None, "a": None, "r": 1}
    return base64.urlsafe_b64encode(json.dumps(state).encode()).rstrip(b"=").decode()


async def test_device_events_and_registration(api):
    client = api.client("User")
    answer = await client.get(f"/v1/integrate/devices/{DEVICE.iccid}/registration")
    assert answer.status == 404
    assert answer.body["errors"][0]["message"] == f"device {DEVICE.iccid} has no LwM2M registration"
    lwm2m = await registered_client(api.gateway, DEVICE)
    try:
        answer = await client.get(f"/v1/integrate/devices/{DEVICE.iccid}/registration")
        assert answer.status == 200
        body = answer.body
        assert (body["endpoint"], body["transport"], body["ip"]) == (DEVICE.iccid, "coap", DEVICE.ip_address)
        device = next(o for o in body["objects"] if o["objectId"] == 3)
        assert device["name"] == "Device" and device["instances"] == [0]
        assert {"id": 0, "name": "Manufacturer", "operations": "R", "type": "String", "units": "",
                "multiple": False} in device["resources"]
        reboot = next(r for r in device["resources"] if r["id"] == 4)
        assert (reboot["name"], reboot["operations"], "type" in reboot) == ("Reboot", "E", False)
    finally:
        await lwm2m.close()
    for _ in range(100):
        answer = await client.get(f"/v1/inspect/devices/{DEVICE.iccid}/events")
        if answer.body["items"]:
            break
        await _sleep()
    assert [(i["type"], i["event"]["lifecycle"]["type"]) for i in answer.body["items"]] == [
        ("LIFECYCLE", "DEVICE_FIRST_TIME_REGISTERED")]
    assert (await client.get(f"/v1/inspect/devices/{DEVICE.iccid}/events", params={"type": "ERROR"})).body == {"items": []}
    assert (await client.get("/v1/inspect/devices/8988280660000000099/events")).status == 404
    answer = await client.get("/v1/inspect/events")
    assert answer.status == 200 and answer.body == {"items": []}


async def _sleep() -> None:
    import asyncio
    await asyncio.sleep(0.05)
