"""The remaining LwM2M device operations through the API (and the CLI), against the emulated
client: discover, write-attributes, create, delete, read-composite, write-composite; and a
written server lifetime that moves the registration's expiry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.lwm2m import storage
from tests._lwm2m_server_helpers import registered_client, wait_action
from tests.api_support import start_api
from tests.conftest import make_config, sim

DEVICE, OLD = sim(27), sim(28)
ROOT = Path(__file__).resolve().parent.parent


def action_path(iccid: str = DEVICE.iccid) -> str:
    return f"/v1/integrate/devices/{iccid}/actions/LWM2M"


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), [DEVICE, OLD])


async def run(api, body: dict) -> dict:
    posted = await api.client("User").post(action_path(body.pop("iccid", DEVICE.iccid)), json=body)
    assert posted.status == 202, posted.body
    await wait_action(api.gateway, posted.body["id"])
    got = await api.client("User").get(f"/v1/integrate/devices/actions/requests/{posted.body['id']}")
    assert got.status == 200
    return got.body


async def test_discover_attributes_create_delete_composite(api):
    client = await registered_client(api.gateway, DEVICE)
    try:
        done = await run(api, {"action": "discover", "resourceAddress": "/3303"})
        assert done["status"] == "SUCCEEDED", done
        assert done["resultData"]["links"] == [{"path": "/", "attributes": {"lwm2m": "1.1"}},
                                               {"path": "/3303/0", "attributes": {}}]

        done = await run(api, {"action": "write-attributes", "resourceAddress": "/3303/0/5700",
                               "data": "pmin=10&pmax=60&st=0.5&gt=30"})
        assert done["status"] == "SUCCEEDED" and done["resultData"]["code"] == "2.04"
        assert done["requestData"]["data"] == "pmin=10&pmax=60&st=0.5&gt=30"
        assert client.attributes["/3303/0/5700"] == {"pmin": "10", "pmax": "60", "st": "0.5", "gt": "30"}
        done = await run(api, {"action": "write-attributes", "resourceAddress": "/3303/0/5700", "data": "gt="})
        assert client.attributes["/3303/0/5700"] == {"pmin": "10", "pmax": "60", "st": "0.5"}
        done = await run(api, {"action": "discover", "resourceAddress": "/3303/0"})
        assert {"path": "/3303/0/5700", "attributes": {"pmin": "10", "pmax": "60", "st": "0.5"}} \
            in done["resultData"]["links"]

        done = await run(api, {"action": "create", "resourceAddress": "/3303/1",
                               "data": json.dumps({"5750": "cellar", "5701": "Cel", "5700": "12.5"})})
        assert done["status"] == "SUCCEEDED" and done["resultData"]["code"] == "2.01", done
        assert {p: v for p, v in client.values.items() if p.startswith("/3303/1/")} == {
            "/3303/1/5700": 12.5, "/3303/1/5701": "Cel", "/3303/1/5750": "cellar"}
        done = await run(api, {"action": "create", "resourceAddress": "/3303/1", "data": '{"5750": "again"}'})
        assert done["status"] == "FAILED" and done["resultData"]["code"] == "4.00"  # the device's answer

        done = await run(api, {"action": "read-composite", "resourceAddress": "/",
                               "data": "/3/0/0,/3303/1/5750"})
        assert done["status"] == "SUCCEEDED"
        assert done["resultData"]["value"] == {"/3/0/0": "nce-gateway", "/3303/1/5750": "cellar"}
        assert done["resultData"]["contentFormat"] == 110

        done = await run(api, {"action": "write-composite", "resourceAddress": "/",
                               "data": json.dumps({"/3303/0/5750": "garage", "/3303/1/5700": 13})})
        assert done["status"] == "SUCCEEDED" and done["resultData"]["code"] == "2.04"
        assert client.values["/3303/0/5750"] == "garage" and client.values["/3303/1/5700"] == 13.0

        done = await run(api, {"action": "delete", "resourceAddress": "/3303/1"})
        assert done["status"] == "SUCCEEDED" and done["resultData"]["code"] == "2.02"
        assert not [p for p in client.values if p.startswith("/3303/1/")]
        assert ("DELETE", "/3303/1") in client.received and ("FETCH", "/") in client.received \
            and ("iPATCH", "/") in client.received
    finally:
        await client.close()


@pytest.mark.parametrize("body, field", [
    ({"action": "write-attributes", "resourceAddress": "/3303/0", "data": "gt=3"}, "data"),
    ({"action": "write-attributes", "resourceAddress": "/3303/0/5700", "data": "color=red"}, "data"),
    ({"action": "write-attributes", "resourceAddress": "/3303/0/5700", "data": "pmin=1.5"}, "data"),
    ({"action": "write-attributes", "resourceAddress": "/3303/0/5700"}, "data"),
    ({"action": "create", "resourceAddress": "/3303", "data": "{}"}, "resourceAddress"),
    ({"action": "create", "resourceAddress": "/3303/1", "data": "[1]"}, "data"),
    ({"action": "create", "resourceAddress": "/3303/1", "data": '{"5700": "warm"}'}, "data"),
    ({"action": "delete", "resourceAddress": "/3303/0/5700"}, "resourceAddress"),
    ({"action": "discover", "resourceAddress": "/3/0/0/1"}, "resourceAddress"),
    ({"action": "read-composite", "resourceAddress": "/3/0", "data": "/3/0/0"}, "resourceAddress"),
    ({"action": "read-composite", "resourceAddress": "/", "data": "/3/x"}, "data"),
    ({"action": "write-composite", "resourceAddress": "/", "data": '{"/3/0": 1}'}, "data"),
])
async def test_bad_requests_name_the_field(api, body, field):
    client = await registered_client(api.gateway, DEVICE)
    try:
        answer = await api.client("User").post(action_path(), json=body)
        assert answer.status == 400, answer.body
        assert answer.body["errors"][0]["field"] == field, answer.body
    finally:
        await client.close()


async def test_composite_needs_lwm2m_1_1(api):
    client = await registered_client(api.gateway, OLD, lwm2m_version="1.0")
    try:
        answer = await api.client("User").post(action_path(OLD.iccid), json={
            "action": "read-composite", "resourceAddress": "/", "data": "/3/0/0"})
        assert answer.status == 409 and "LwM2M 1.1" in answer.body["errors"][0]["message"]
    finally:
        await client.close()


async def test_written_lifetime_moves_the_expiry(api):
    gw = api.gateway
    client = await registered_client(gw, DEVICE)
    try:
        reg = gw.lwm2m.registrations.of(DEVICE.iccid)
        assert reg.lifetime == 300
        done = await run(api, {"action": "write", "resourceAddress": "/1/0/1", "data": "3600"})
        assert done["status"] == "SUCCEEDED" and client.values["/1/0/1"] == 3600
        now = time.time() * 1000
        assert reg.lifetime == 3600 and abs(reg.expires_ms - (now + 3_600_000)) < 5000
        await client.update()  # no lt: the written lifetime stays
        assert reg.lifetime == 3600 and abs(reg.expires_ms - (time.time() * 1000 + 3_600_000)) < 5000
        await gw.lwm2m.writer.flush()
        (row,) = storage.load_registrations(gw.store.connection())
        assert row[2] == 3600 and row[13] == reg.expires_ms
        # the same through write-composite
        done = await run(api, {"action": "write-composite", "resourceAddress": "/", "data": '{"/1/0/1": 900}'})
        assert done["status"] == "SUCCEEDED" and reg.lifetime == 900
    finally:
        await client.close()


async def test_cli_operations(api, tmp_path):
    gw = api.gateway
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f'[store]\npath = "{gw.config.store.path}"\n')
    client = await registered_client(gw, DEVICE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(command: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway", "lwm2m", command, "--config", str(config_file),
                               "--timeout", "20", *args], capture_output=True, text=True, env=env, timeout=60)

    try:
        result = await asyncio.to_thread(cli, "write-attributes", DEVICE.iccid, "/3303/0/5700", "pmin=5", "lt=-3.5")
        assert result.returncode == 0, result.stderr + result.stdout
        assert client.attributes["/3303/0/5700"] == {"pmin": "5", "lt": "-3.5"}
        result = await asyncio.to_thread(cli, "read-composite", DEVICE.iccid, "/3/0/1", "/3303/0/5701")
        assert result.returncode == 0, result.stderr + result.stdout
        assert json.loads(result.stdout)["resultData"]["value"] == {"/3/0/1": "lwm2m-emulator", "/3303/0/5701": "Cel"}
        result = await asyncio.to_thread(cli, "create", DEVICE.iccid, "/3303/2", "5750=attic")
        assert result.returncode == 0 and client.values["/3303/2/5750"] == "attic"
        result = await asyncio.to_thread(cli, "write-composite", DEVICE.iccid, "/3303/2/5750=roof")
        assert result.returncode == 0 and client.values["/3303/2/5750"] == "roof"
        result = await asyncio.to_thread(cli, "delete", DEVICE.iccid, "/3303/2")
        assert result.returncode == 0 and "/3303/2/5750" not in client.values
        result = await asyncio.to_thread(cli, "discover", DEVICE.iccid, "/3303")
        assert result.returncode == 0
        assert json.loads(result.stdout)["resultData"]["links"][1] == {"path": "/3303/0", "attributes": {}}
        result = await asyncio.to_thread(cli, "write-composite", DEVICE.iccid, "no-equals-sign")
        assert result.returncode == 1 and "is not PATH=VALUE" in result.stderr
    finally:
        await client.close()
