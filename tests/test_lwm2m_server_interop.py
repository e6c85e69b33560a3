"""Independent LwM2M clients from npm (lwm2m-node-lib, coap-node) against the gateway.

Both bend the specification: no Content-Format on Register (lwm2m-node-lib), ``lwm2m=1.0.0``,
a new source port for every request (the gateway must answer and send to the latest one), a
Location-Path taken without its leading slash, and lwm2m-node-lib reads only single resources.
Each client registers, is read (``/3/0``), updates and de-registers.

The clients live in ``tests/lwm2m_clients`` (``npm ci`` there; ``.ci/run`` does it). They send
from 127.0.0.1, so the test SIM has that address.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from inspector.records import Sim
from tests._lwm2m_server_helpers import wait_action, wait_for
from tests.conftest import make_config

CLIENTS = Path(__file__).resolve().parent / "lwm2m_clients"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (the npm LwM2M clients need Node.js)"),
    pytest.mark.skipif(not (CLIENTS / "node_modules" / "coap-node").is_dir()
                       or not (CLIENTS / "node_modules" / "lwm2m-node-lib").is_dir(),
                       reason="npm clients not installed: run `npm ci` in tests/lwm2m_clients (.ci/run does)"),
]

LOCAL = Sim(iccid="8988280660000000001", imsi="901405100000001", ip_address="127.0.0.1", label="npm client")


async def line_of(process: asyncio.subprocess.Process, timeout: float = 15.0) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout)).decode().strip()


async def command(process: asyncio.subprocess.Process, text: str) -> None:
    assert process.stdin is not None
    process.stdin.write(text.encode() + b"\n")
    await process.stdin.drain()


@pytest.mark.parametrize("script, expected", [
    ("coap_node_client.js", {"/3/0/0": "sivann", "/3/0/1": "cnode-01"}),
    ("lwm2m_node_lib_client.js", {"/3/0/0": "lwm2m-node-lib", "/3/0/1": "test-client"}),
])
async def test_npm_client_registers_is_read_updates_and_deregisters(tmp_path, start_gateway, script, expected):
    gw = await start_gateway(make_config(tmp_path), [LOCAL])
    process = await asyncio.create_subprocess_exec(
        NODE, script, "127.0.0.1", str(gw.coap_port), LOCAL.iccid, cwd=CLIENTS,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        line = await line_of(process)
        assert line.startswith("registered"), line
        reg = gw.lwm2m.registrations.of(LOCAL.iccid)
        assert reg is not None and reg.version == "1.0.0" and line.endswith(reg.id)
        first_port = reg.address[1]

        async def read() -> dict:
            action = await gw.lwm2m.actions.submit(LOCAL.iccid, "read", "/3/0")
            record = await wait_action(gw, action["id"], timeout=20)
            assert record["status"] == "SUCCEEDED", record
            return record["result"]["value"]

        values = await read()
        assert {k: values[k] for k in expected} == expected

        await command(process, "update")
        assert (await line_of(process)).startswith("updated")
        assert gw.lwm2m.server.counts["update"] == 1
        assert reg.address[1] != first_port  # a new source port: requests follow it
        values = await read()
        assert {k: values[k] for k in expected} == expected

        await command(process, "deregister")
        assert (await line_of(process)).startswith("deregistered")
        await wait_for(lambda: gw.lwm2m.registrations.of(LOCAL.iccid) is None)
        assert gw.lwm2m.server.counts["refused"] == 0
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_coap_node_discover_and_write_attributes(tmp_path, start_gateway):
    """Discover and Write-Attributes against coap-node, an LwM2M client we did not write."""
    gw = await start_gateway(make_config(tmp_path), [LOCAL])
    process = await asyncio.create_subprocess_exec(
        NODE, "coap_node_client.js", "127.0.0.1", str(gw.coap_port), LOCAL.iccid, cwd=CLIENTS,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)

    async def act(action: str, path: str, data: str | None = None) -> dict:
        submitted = await gw.lwm2m.actions.submit(LOCAL.iccid, action, path, data)
        return await wait_action(gw, submitted["id"], timeout=20)

    try:
        assert (await line_of(process)).startswith("registered")
        record = await act("discover", "/3303/0")
        assert record["status"] == "SUCCEEDED", record
        assert record["result"] == {"code": "2.05", "contentFormat": 40, "links": [
            {"path": "/3303/0", "attributes": {"pmin": "0", "pmax": "60"}},
            {"path": "/3303/0/5700", "attributes": {}}, {"path": "/3303/0/5701", "attributes": {}}]}
        record = await act("write-attributes", "/3303/0/5700", "pmin=10&pmax=60")
        assert record["status"] == "SUCCEEDED" and record["result"] == {"code": "2.04"}, record
        record = await act("discover", "/3303/0/5700")  # coap-node reports what it was given
        assert record["result"]["links"] == [{"path": "/3303/0/5700", "attributes": {"pmin": "10", "pmax": "60"}}]
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
