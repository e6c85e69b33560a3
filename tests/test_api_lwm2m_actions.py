"""LwM2M device actions through the management API (with a token, answers checked against the
gateway's OpenAPI document), against the emulated LwM2M client registered with the gateway."""

from __future__ import annotations

import asyncio

import pytest

from tests._lwm2m_server_helpers import registered_client, wait_action
from tests.api_support import ROLES, ApiClient, document, start_api
from tests.conftest import make_config, sim

DEVICE, IDLE = sim(23), sim(26)
UNKNOWN = "8988280660000009999"
REQUESTS = "/v1/integrate/devices/actions/requests"


def action_path(iccid: str = DEVICE.iccid) -> str:
    return f"/v1/integrate/devices/{iccid}/actions/LWM2M"


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), [DEVICE, IDLE])


async def test_read_through_the_api(api):
    client = await registered_client(api.gateway, DEVICE)
    http = api.client("API")
    try:
        posted = await http.post(action_path(), json={"action": "read", "resourceAddress": "/3/0"})
        assert posted.status == 202, posted.body
        assert set(posted.body) == {"id", "message"} and "/3/0" in posted.body["message"]
        await wait_action(api.gateway, posted.body["id"])
        got = await http.get(f"{REQUESTS}/{posted.body['id']}")
        assert got.status == 200
        item = got.body
        assert item["status"] == "SUCCEEDED" and item["deviceId"] == DEVICE.iccid and item["protocol"] == "LWM2M"
        assert item["ip"] == DEVICE.ip_address and item["mode"] == "SEND_NOW"
        assert item["resultData"]["code"] == "2.05"
        assert item["resultData"]["value"]["/3/0/0"] == "nce-gateway"
        assert item["resultData"]["value"]["/3/0/1"] == "lwm2m-emulator"
        assert item["requestData"] == {"action": "read", "resourceAddress": "/3/0"}
        assert item["sendAttempts"] == 1 and item["sendAttemptsLeft"] == 0

        # one resource, the decoded value; and a write the device applies
        posted = await http.post(action_path(), json={"action": "read", "resourceAddress": "/3303/0/5700"})
        await wait_action(api.gateway, posted.body["id"])
        got = await http.get(f"{REQUESTS}/{posted.body['id']}")
        assert got.body["resultData"] == {"code": "2.05", "contentFormat": 11542, "value": {"/3303/0/5700": 21.5}}
        posted = await http.post(action_path(), json={"action": "write", "resourceAddress": "/3303/0/5750",
                                                      "data": "kitchen", "sendAttempts": 2})
        assert posted.status == 202
        done = await wait_action(api.gateway, posted.body["id"])
        assert done["status"] == "SUCCEEDED" and client.values["/3303/0/5750"] == "kitchen"
    finally:
        await client.close()


async def test_lists_cancel_and_bulk(api):
    client = await registered_client(api.gateway, DEVICE)
    http = api.client("User")
    try:
        first = await http.post(action_path(), json={"action": "read", "resourceAddress": "/3/0/0"})
        await wait_action(api.gateway, first.body["id"])
        waiting = (await http.post(action_path(), json={"action": "read", "resourceAddress": "/3/0/0",
                                                        "requestMode": "SEND_WHEN_ACTIVE"})).body["id"]
        active = await http.get(f"{REQUESTS}/active")
        assert [i["id"] for i in active.body["items"]] == [waiting] and active.body["page"] == 1
        everything = await http.get(REQUESTS, params={"deviceId": DEVICE.iccid})
        assert [i["id"] for i in everything.body["items"]] == [waiting, first.body["id"]]  # newest first
        oldest = await http.get(REQUESTS, params={"sort": "created"})
        assert [i["id"] for i in oldest.body["items"]] == [first.body["id"], waiting]
        assert (await http.get(REQUESTS, params={"protocol": "COAP"})).body["items"] == []

        cancelled = await http.delete(f"{REQUESTS}/{waiting}")
        assert cancelled.status == 200 and cancelled.body == {"id": waiting, "status": "CANCELLED"}
        again = await http.delete(f"{REQUESTS}/{waiting}")
        assert again.status == 409 and "CANCELLED" in again.body["errors"][0]["message"]
        assert (await http.delete(f"{REQUESTS}/nope")).status == 404
        archived = await http.get(f"{REQUESTS}/archived", params={"pageSize": "1"})
        assert archived.body["page"] == 1 and archived.body["pageAmount"] == 2 and len(archived.body["items"]) == 1
        only = await http.get(f"{REQUESTS}/archived", params={"status": "CANCELLED"})
        assert [i["id"] for i in only.body["items"]] == [waiting]
        bad = await http.get(f"{REQUESTS}/archived", params={"status": "SCHEDULED"})
        assert bad.status == 400 and bad.body["errors"][0]["field"] == "status"

        # sort by the last change: a request cancelled after a newer one was created comes first
        later = {"action": "read", "resourceAddress": "/3/0/0", "requestMode": "SEND_WHEN_ACTIVE"}
        older = (await http.post(action_path(), json=later)).body["id"]
        newer = (await http.post(action_path(), json=later)).body["id"]
        await asyncio.sleep(0.01)
        assert (await http.delete(f"{REQUESTS}/{older}")).status == 200
        assert (await http.get(REQUESTS, params={"sort": "-updated"})).body["items"][0]["id"] == older
        assert (await http.get(REQUESTS, params={"sort": "-created"})).body["items"][0]["id"] == newer

        # cancel all of a device's open requests
        open_ids = {newer} | {(await http.post(action_path(), json=later)).body["id"] for _ in range(2)}
        cancelled = await http.delete(f"/v1/integrate/devices/{DEVICE.iccid}/actions/requests")
        assert cancelled.status == 200 and {c["id"] for c in cancelled.body} == open_ids
        assert (await http.delete(f"/v1/integrate/devices/{DEVICE.iccid}/actions/requests")).body == []
        assert (await http.delete(f"/v1/integrate/devices/{UNKNOWN}/actions/requests")).status == 404

        bulk = await http.post("/v1/integrate/devices/actions/LWM2M",
                               json={"deviceIds": [DEVICE.iccid, UNKNOWN, IDLE.iccid], "action": "read",
                                     "resourceAddress": "/3/0/0"})
        assert bulk.status == 202 and bulk.body["rejectedDevices"] == [UNKNOWN, IDLE.iccid]
        assert [a["deviceId"] for a in bulk.body["acceptedRequests"]] == [DEVICE.iccid]
        done = await wait_action(api.gateway, bulk.body["acceptedRequests"][0]["requestId"])
        assert done["status"] == "SUCCEEDED"
        refused = await http.post("/v1/integrate/devices/actions/LWM2M",
                                  json={"deviceIds": [DEVICE.iccid], "action": "execute", "resourceAddress": "/3/0"})
        assert refused.status == 400 and refused.body["errors"][0]["field"] == "resourceAddress"
        too_many = await http.post("/v1/integrate/devices/actions/LWM2M",
                                   json={"deviceIds": [DEVICE.iccid] * 101, "action": "read",
                                         "resourceAddress": "/3/0/0"})
        assert too_many.status == 400 and too_many.body["errors"][0]["field"] == "deviceIds"
    finally:
        await client.close()


async def test_refusals(api):
    client = await registered_client(api.gateway, DEVICE)
    http = api.client("Admin")
    try:
        unknown = await http.post(action_path(UNKNOWN), json={"action": "read", "resourceAddress": "/3/0"})
        assert unknown.status == 404 and unknown.body["statusText"] == "Not Found"
        idle = await http.post(action_path(IDLE.iccid), json={"action": "read", "resourceAddress": "/3/0"})
        assert idle.status == 409 and "not registered" in idle.body["errors"][0]["message"]
        assert (await http.get(f"{REQUESTS}/nope")).status == 404
        cases = [
            ({"action": "write", "resourceAddress": "/3303/0/5750"}, "data"),            # write without data
            ({"action": "write", "resourceAddress": "/3311/0/5850", "data": "lots"}, "data"),  # not a boolean
            ({"action": "write", "resourceAddress": "/3/0/9", "data": "5"}, "resourceAddress"),  # read-only
            ({"action": "execute", "resourceAddress": "/3/0"}, "resourceAddress"),
            ({"action": "read", "resourceAddress": "3/0"}, "resourceAddress"),
            ({"action": "read", "resourceAddress": "/"}, "resourceAddress"),
            ({"action": "jump", "resourceAddress": "/3/0"}, "action"),
            ({"action": "read", "resourceAddress": "/3/0", "sendAttempts": 6}, "sendAttempts"),
            ({"action": "read", "resourceAddress": "/3/0", "sendAttempts": 1.5}, "sendAttempts"),
            ({"action": "read", "resourceAddress": "/3/0", "requestMode": "LATER"}, "requestMode"),
            ({"action": "read", "resourceAddress": "/3/0", "colour": "red"}, "colour"),
            ({"resourceAddress": "/3/0"}, "action"),
            ({"action": "read"}, "resourceAddress"),
        ]
        for body, field in cases:
            answer = await http.post(action_path(), json=body)
            assert answer.status == 400, (body, answer.body)
            assert answer.body["statusText"] == "Bad Request"
            assert answer.body["errors"][0]["field"] == field, (body, answer.body)
        not_json = await http.post(action_path(), data=b"not json", headers={"Content-Type": "application/json"})
        assert not_json.status == 400 and not_json.body["errors"][0]["field"] == "body"
        listed = await http.get(REQUESTS)
        assert listed.body["items"] == []  # nothing refused was stored
    finally:
        await client.close()


async def test_token_and_roles(api):
    anonymous = ApiClient(api.base)
    assert (await anonymous.post(action_path(), json={"action": "read", "resourceAddress": "/3/0"})).status == 401
    assert (await anonymous.get(REQUESTS)).status == 401
    assert (await anonymous.delete(f"{REQUESTS}/x")).status == 401
    paths = document()["paths"]
    assert paths["/v1/integrate/devices/{deviceId}/actions/LWM2M"]["post"]["x-nce-access"] == "manage"
    assert paths["/v1/integrate/devices/actions/requests/{requestId}"]["delete"]["x-nce-access"] == "manage"
    assert paths["/v1/integrate/devices/actions/requests/{requestId}"]["get"]["x-nce-access"] == "read"
    for role in ROLES:  # every role may manage and read (SPEC §7): never 403
        http = api.client(role)
        assert (await http.get(f"{REQUESTS}/active")).status == 200, role
        assert (await http.post(action_path(IDLE.iccid), json={"action": "read", "resourceAddress": "/3/0"})
                ).status == 409, role


async def test_lwm2m_disabled_answers_409(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path, lwm2m={"enabled": False}), [DEVICE], roles=("User",))
    http = api.client("User")
    answer = await http.post(action_path(), json={"action": "read", "resourceAddress": "/3/0"})
    assert answer.status == 409 and "LwM2M is disabled" in answer.body["errors"][0]["message"]
    # the listing serves every protocol's requests (UDP and CoAP too): it answers without LwM2M
    listed = await http.get(REQUESTS)
    assert listed.status == 200 and listed.body == {"items": [], "page": 1, "pageAmount": 0}
