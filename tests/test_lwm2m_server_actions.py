"""Device actions: the service (read, write, execute, modes, attempts, cancel), its aiohttp
handlers on a bare app, and the CLI as a separate process against a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api.app import GATEWAY
from gateway.lwm2m import api
from gateway.lwm2m.actions import ActionError
from tests._lwm2m_server_helpers import registered_client, wait_action, wait_for
from tests.conftest import make_config, sim, webhook

ROOT = Path(__file__).resolve().parent.parent


async def test_read_write_execute_and_errors(tmp_path, receiver, ca_file, start_gateway):
    device, other = sim(20), sim(21)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device, other])
    client = await registered_client(gw, device)
    actions = gw.lwm2m.actions
    try:
        record = await wait_action(gw, (await actions.submit(device.iccid, "read", "/3/0"))["id"])
        assert record["status"] == "SUCCEEDED"
        assert record["result"]["code"] == "2.05" and record["result"]["value"]["/3/0/0"] == "nce-gateway"

        record = await wait_action(gw, (await actions.submit(device.iccid, "write", "/3303/0/5750", "kitchen"))["id"])
        assert record["status"] == "SUCCEEDED" and record["result"]["code"] == "2.04"
        assert client.values["/3303/0/5750"] == "kitchen"

        record = await wait_action(gw, (await actions.submit(device.iccid, "execute", "/3/0/4", "now"))["id"])
        assert record["status"] == "SUCCEEDED" and client.executed == [("/3/0/4", b"now")]

        # the device's error is the result, and an ERROR event
        record = await wait_action(gw, (await actions.submit(device.iccid, "read", "/3303/7"))["id"])
        assert record["status"] == "FAILED" and record["result"] == {"code": "4.04"}
        await wait_for(lambda: [e for e in receiver.events if e["type"] == "ERROR"], timeout=10)
        (error,) = [e for e in receiver.events if e["type"] == "ERROR"]
        assert error["error"]["message"] == "DeviceController[ActionFailed]"
        assert record["id"] in error["error"]["description"]
        # the read's values were telemetry too
        values = [e["payload"]["value"] for e in receiver.events if e["type"] == "TELEMETRY_DATA"]
        assert any("/3/0/0" in v for v in values)

        with pytest.raises(ActionError) as exc:
            await actions.submit(other.iccid, "read", "/3/0")  # not registered
        assert exc.value.status == 409
        with pytest.raises(ActionError) as exc:
            await actions.submit("8988280660000009999", "read", "/3/0")
        assert exc.value.status == 404
        for bad in (("read", "/"), ("write", "/3/0", None), ("write", "/3/0/1", "x"), ("execute", "/3/0"),
                    ("write", "/3/0/9", "not a number"), ("jump", "/3/0"), ("read", "3/0")):
            with pytest.raises(ActionError):
                await actions.submit(device.iccid, *bad)
        with pytest.raises(ActionError):
            await actions.submit(device.iccid, "read", "/3/0", send_attempts=6)
    finally:
        await client.close()


async def test_send_when_active_waits_for_the_next_update_and_attempts_are_counted(tmp_path, start_gateway):
    device = sim(22)
    gw = await start_gateway(make_config(tmp_path, lwm2m={"request_timeout_seconds": 0.5}), [device])
    client = await registered_client(gw, device)
    await asyncio.sleep(0.2)  # the registration's own activity has passed
    try:
        record = await gw.lwm2m.actions.submit(device.iccid, "read", "/3303/0/5700", request_mode="SEND_WHEN_ACTIVE")
        await asyncio.sleep(0.3)
        assert (await gw.lwm2m.actions.get(record["id"]))["status"] == "SCHEDULED"
        await client.update()
        done = await wait_action(gw, record["id"])
        assert done["status"] == "SUCCEEDED" and done["attempts_left"] == 0

        # a device that does not answer: every attempt is used, then FAILED
        await client.close()
        record = await gw.lwm2m.actions.submit(device.iccid, "read", "/3/0/0", send_attempts=2)
        done = await wait_action(gw, record["id"])
        assert done["status"] == "FAILED" and done["attempts_left"] == 0 and done["result"] == {"error": "timeout"}

        # cancel an action that waits
        record = await gw.lwm2m.actions.submit(device.iccid, "read", "/3/0/0", request_mode="SEND_WHEN_ACTIVE")
        assert await gw.lwm2m.actions.cancel(record["id"]) == [record["id"]]
        assert (await gw.lwm2m.actions.get(record["id"]))["status"] == "CANCELLED"
    finally:
        await client.close()


async def test_http_handlers_on_a_bare_app(tmp_path, start_gateway):
    device = sim(23)
    gw = await start_gateway(make_config(tmp_path), [device])
    client = await registered_client(gw, device)
    app = web.Application()
    app[GATEWAY] = gw
    for method, path, handler in api.ROUTES:
        app.router.add_route(method, "/management-api" + path, handler)
    http = TestClient(TestServer(app))
    await http.start_server()
    base = f"/management-api/v1/integrate/devices/{device.iccid}/actions/LWM2M"
    try:
        r = await http.post(base, json={"action": "read", "resourceAddress": "/3303/0/5700"})
        assert r.status == 202
        body = await r.json()
        assert set(body) == {"id", "message"}
        await wait_action(gw, body["id"])
        r = await http.get(f"/management-api/v1/integrate/devices/actions/requests/{body['id']}")
        item = await r.json()
        assert r.status == 200
        assert item["status"] == "SUCCEEDED" and item["deviceId"] == device.iccid and item["protocol"] == "LWM2M"
        assert item["ip"] == device.ip_address and item["mode"] == "SEND_NOW"
        assert item["resultData"] == {"code": "2.05", "contentFormat": 11542, "value": {"/3303/0/5700": 21.5}}
        assert item["requestData"] == {"action": "read", "resourceAddress": "/3303/0/5700"}
        assert item["sendAttempts"] == 1 and item["sendAttemptsLeft"] == 0
        assert item["created"].endswith("+00:00")

        r = await http.post(base, json={"action": "write", "resourceAddress": "/3303/0/5750"})
        assert r.status == 400 and (await r.json())["statusText"] == "Bad Request"
        r = await http.post(base, data=b"not json")
        assert r.status == 400
        r = await http.post(base, json={"action": "read", "resourceAddress": "/3/0", "colour": "red"})
        assert r.status == 400
        r = await http.get("/management-api/v1/integrate/devices/actions/requests/nope")
        assert r.status == 404

        r = await http.post(base, json={"action": "read", "resourceAddress": "/3/0/0",
                                        "requestMode": "SEND_WHEN_ACTIVE"})
        waiting = (await r.json())["id"]
        r = await http.get("/management-api/v1/integrate/devices/actions/requests/active")
        assert [i["id"] for i in (await r.json())["items"]] == [waiting]
        r = await http.delete(f"/management-api/v1/integrate/devices/actions/requests/{waiting}")
        assert await r.json() == {"id": waiting, "status": "CANCELLED"}
        r = await http.get("/management-api/v1/integrate/devices/actions/requests/archived?pageSize=1")
        page = await r.json()
        assert page["page"] == 1 and page["pageAmount"] == 2 and len(page["items"]) == 1

        r = await http.post("/management-api/v1/integrate/devices/actions/LWM2M",
                            json={"deviceIds": [device.iccid, "8988280660000009999"], "action": "read",
                                  "resourceAddress": "/3/0/0"})
        bulk = await r.json()
        assert r.status == 202 and bulk["rejectedDevices"] == ["8988280660000009999"]
        assert [a["deviceId"] for a in bulk["acceptedRequests"]] == [device.iccid]
    finally:
        await http.close()
        await client.close()


async def test_cli_enqueues_and_the_gateway_carries_it_out(tmp_path, start_gateway):
    device = sim(24)
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f'[store]\npath = "{tmp_path / "gateway.db"}"\n')
    config = make_config(tmp_path, lwm2m={"action_poll_interval_seconds": 0.1})
    gw = await start_gateway(config, [device])
    client = await registered_client(gw, device)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway", "lwm2m", *args, "--config", str(config_file)],
                              capture_output=True, text=True, env=env, timeout=60)

    try:
        result = await asyncio.to_thread(cli, "read", device.iccid, "/3/0", "--timeout", "20")
        assert result.returncode == 0, result.stderr + result.stdout
        shown = json.loads(result.stdout)
        assert shown["status"] == "SUCCEEDED" and shown["resultData"]["value"]["/3/0/1"] == "lwm2m-emulator"

        result = await asyncio.to_thread(cli, "write", device.iccid, "/3303/0/5750", "garage", "--timeout", "20")
        assert result.returncode == 0 and client.values["/3303/0/5750"] == "garage"

        result = await asyncio.to_thread(cli, "read", sim(25).iccid, "/3/0")
        assert result.returncode == 1 and "no SIM" in result.stderr
        result = await asyncio.to_thread(cli, "registrations", "--format", "json")
        assert [r["iccid"] for r in json.loads(result.stdout)] == [device.iccid]
    finally:
        await client.close()
