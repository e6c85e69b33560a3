"""Settings changed through one process's API are in force in the others: geofences and the
endpoint states are followed like SIMs, PSKs and integrations (gateway/follow.py), so several
workers (``[process] workers``) or gateways on one store judge and listen alike. And a worker
turns its inherited socket off by pausing it (gateway/transports/sockets.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from gateway.transports.sockets import UdpEndpoint
from tests.api_support import start_api
from tests.conftest import make_config, sim

DEVICE = sim(31)
CENTER = (13.405, 52.52)


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not followed in time"
        await asyncio.sleep(0.02)


async def two_gateways(start_gateway: Any, tmp_path: Any) -> tuple[Any, Any]:
    """Two gateways on one store (as two workers or hosts are); A's API is used."""
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE], roles=("Owner",))
    other = await start_gateway(make_config(tmp_path))
    return api, other


async def test_a_geofence_made_through_one_api_is_judged_by_the_other_gateway(start_gateway, tmp_path):
    api, other = await two_gateways(start_gateway, tmp_path)
    owner = api.client("Owner")
    made = await owner.post("/v1/locate/geofences", json={"name": "depot", "type": "circle", "radius": 1000,
                                                          "center": list(CENTER), "deviceId": DEVICE.iccid})
    assert made.status == 201
    await eventually(lambda: [f.row.id for f in other.locator.fences] == [made.body["id"]])
    assert other.locator.fences[0].row.name == "depot"
    renamed = await owner.patch(f"/v1/locate/geofences/{made.body['id']}", json={"name": "yard"})
    assert renamed.status == 200
    await eventually(lambda: [f.row.name for f in other.locator.fences] == ["yard"])
    assert (await owner.delete(f"/v1/locate/geofences/{made.body['id']}")).status in (200, 204)
    await eventually(lambda: other.locator.fences == [])


async def test_an_endpoint_turned_off_through_one_api_is_off_in_the_other_gateway(start_gateway, tmp_path):
    api, other = await two_gateways(start_gateway, tmp_path)
    owner = api.client("Owner")
    port = other.udp_port
    assert other.endpoints.describe("UDP").active
    off = await owner.patch("/v1/integrate/devices/endpoints/UDP", json={"active": False})
    assert off.status == 200 and off.body["active"] is False
    await eventually(lambda: not other.endpoints.describe("UDP").active)
    assert other.udp.endpoint.sock is None
    on = await owner.patch("/v1/integrate/devices/endpoints/UDP", json={"active": True})
    assert on.status == 200
    await eventually(lambda: other.endpoints.describe("UDP").active)
    assert other.udp_port == port  # the port it had


async def test_a_paused_socket_drops_what_queued_and_serves_again_on_the_same_port():
    received: list[bytes] = []
    endpoint = UdpEndpoint(lambda data, addr: received.append(data))
    _, port = endpoint.open("127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"before", ("127.0.0.1", port))
        await eventually(lambda: received == [b"before"])
        endpoint.pause()
        assert endpoint.sock is None and endpoint.port == 0
        sender.sendto(b"while off", ("127.0.0.1", port))  # waits in the kernel, unanswered
        await asyncio.sleep(0.1)
        assert received == [b"before"]
        assert endpoint.open("127.0.0.1", port) == ("127.0.0.1", port)
        sender.sendto(b"after", ("127.0.0.1", port))
        await eventually(lambda: received == [b"before", b"after"])  # "while off" was dropped
    finally:
        sender.close()
        endpoint.close()
    assert endpoint.sock is None
