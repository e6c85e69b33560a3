"""Device actions: the service (read, write, execute, modes, attempts, cancel) and the CLI as a
separate process against a running gateway (the API routes: tests/test_api_lwm2m_actions.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
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
        # values that start with "-": a UTC offset as is, anything else after --
        result = await asyncio.to_thread(cli, "write", device.iccid, "/3/0/14", "-03:00", "--timeout", "20")
        assert result.returncode == 0, result.stderr
        assert client.values["/3/0/14"] == "-03:00"
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "gateway", "lwm2m", "write", "--config", str(config_file),
                             "--timeout", "20", device.iccid, "/3303/0/5750", "--", "-cellar"],
            capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert client.values["/3303/0/5750"] == "-cellar"

        result = await asyncio.to_thread(cli, "read", sim(25).iccid, "/3/0")
        assert result.returncode == 1 and "no SIM" in result.stderr
        result = await asyncio.to_thread(cli, "registrations", "--format", "json")
        assert [r["iccid"] for r in json.loads(result.stdout)] == [device.iccid]
    finally:
        await client.close()
