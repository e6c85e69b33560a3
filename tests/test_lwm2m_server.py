"""LwM2M server: bootstrap, registration (restart, expiry, queue mode), Send, passive reporting,
observations, with the emulated client from firmware_examples and a real HTTPS webhook."""

from __future__ import annotations

import asyncio

from aiocoap.numbers.codes import Code

from firmware_examples.lwm2m_client import LwM2MClient, default_objects
from gateway.lwm2m import ContentFormat
from tests._lwm2m_server_helpers import registered_client, wait_action, wait_for
from tests.conftest import make_config, sim, webhook


def telemetry(receiver) -> list[dict]:
    return [e for e in receiver.events if e["type"] == "TELEMETRY_DATA"]


async def test_bootstrap_register_send_reach_the_webhook_and_first_registration_is_announced_once(
        tmp_path, receiver, ca_file, start_gateway):
    device = sim(10)
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file)], lwm2m={"lifetime": 120})
    gw = await start_gateway(config, [device])
    uri = f"coap://127.0.0.1:{gw.coap_port}"
    client = await LwM2MClient.start(device.iccid, device.ip_address)
    try:
        assert await client.bootstrap(uri) == uri  # NoSec account for our server
        await wait_for(lambda: device.iccid in gw.lwm2m.bootstrap.results)
        result = gw.lwm2m.bootstrap.results[device.iccid]
        assert result.ok and not result.dtls
        assert [op for op, _ in result.steps] == ["discover /0", "delete /0", "delete /1", "write /0/1",
                                                  "write /1/0", "finish"]
        assert client.values["/0/1/2"] == 3 and client.values["/0/1/1"] is False  # NoSec, not a BS
        assert client.values["/0/0/1"] is True  # the bootstrap account was kept
        assert (client.lifetime, client.binding) == (120, "U")

        location = await client.register()
        assert location.startswith("/rd/")
        reg = gw.lwm2m.registrations.of(device.iccid)
        assert reg is not None and reg.lifetime == 120 and reg.version == "1.1"
        response = await client.send({"/3303/0/5700": 22.5, "/3303/0/5701": "Cel"})
        assert response.code == Code.CHANGED
        events = await receiver.wait_for(2)
        (lifecycle,) = [e for e in events if e["type"] == "LIFECYCLE"]
        assert lifecycle["lifecycle"]["type"] == "DEVICE_FIRST_TIME_REGISTERED"
        assert lifecycle["device"]["iccid"] == device.iccid
        (event,) = telemetry(receiver)
        assert event["source"] == "LWM2M"
        assert event["payload"] == {"type": "JSON", "value": {"/3303/0/5700": 22.5, "/3303/0/5701": "Cel"}}
        stored = gw.store.messages(device.iccid)
        assert stored[0]["protocol"] == "LWM2M" and stored[0]["translated"] == \
            '{"/3303/0/5700":22.5,"/3303/0/5701":"Cel"}'

        # a second registration (after de-registering) is not a first one
        assert (await client.deregister()).code == Code.DELETED
        assert gw.lwm2m.registrations.of(device.iccid) is None
        await client.register()
        assert (await client.send({"/3303/0/5700": 23.0}, ContentFormat.SENML_CBOR)).code == Code.CHANGED
        await receiver.wait_for(3)
        assert [e["payload"]["value"] for e in telemetry(receiver)][-1] == {"/3303/0/5700": 23.0}
    finally:
        await client.close()
    await gw.stop()

    # nor is one after a restart
    gw2 = await start_gateway(config)
    client = await registered_client(gw2, device)
    try:
        await client.send({"/3303/0/5700": 24.0})
        await receiver.wait_for(4)
        await asyncio.sleep(0.3)
        assert len([e for e in receiver.events if e["type"] == "LIFECYCLE"]) == 1
    finally:
        await client.close()


async def test_registration_survives_a_restart_and_the_device_is_reachable(tmp_path, start_gateway):
    device = sim(11)
    config = make_config(tmp_path)
    gw = await start_gateway(config, [device])
    client = await registered_client(gw, device)
    try:
        reg_id = gw.lwm2m.registrations.of(device.iccid).id
        await gw.stop()
        gw2 = await start_gateway(config)
        reg = gw2.lwm2m.registrations.of(device.iccid)
        assert reg is not None and reg.id == reg_id and reg.address[0] == device.ip_address
        # the stored address is a way back to the device
        action = await gw2.lwm2m.actions.submit(device.iccid, "read", "/3303/0/5700")
        record = await wait_action(gw2, action["id"])
        assert record["status"] == "SUCCEEDED" and record["result"]["value"] == {"/3303/0/5700": 21.5}
        client.server_uri = f"coap://127.0.0.1:{gw2.coap_port}"
        assert (await client.update()).code == Code.CHANGED  # the old location still works
    finally:
        await client.close()


async def test_registration_expires_after_lifetime_and_grace(tmp_path, start_gateway):
    device = sim(12)
    gw = await start_gateway(make_config(tmp_path, lwm2m={"registration_grace_seconds": 0.2}), [device])
    gw.lwm2m.expiry_interval = 0.1
    client = await LwM2MClient.start(device.iccid, device.ip_address)
    try:
        await client.register(f"coap://127.0.0.1:{gw.coap_port}", lifetime=1)
        assert gw.lwm2m.registrations.of(device.iccid) is not None
        await wait_for(lambda: gw.lwm2m.registrations.of(device.iccid) is None, timeout=4)
        await gw.lwm2m.writer.flush()
        assert gw.store.connection().execute("SELECT COUNT(*) FROM lwm2m_registrations").fetchone()[0] == 0
        assert (await client.update()).code == Code.NOT_FOUND  # the client must register again
        assert gw.lwm2m.server.counts["expired"] == 1
    finally:
        await client.close()


async def test_queue_mode_requests_wait_for_the_next_update(tmp_path, start_gateway):
    device = sim(13)
    gw = await start_gateway(make_config(tmp_path, lwm2m={"queue_awake_seconds": 0.3}), [device])
    client = await LwM2MClient.start(device.iccid, device.ip_address)
    try:
        await client.register(f"coap://127.0.0.1:{gw.coap_port}", queue=True)
        reg = gw.lwm2m.registrations.of(device.iccid)
        assert reg.queue
        await asyncio.sleep(0.5)  # asleep now
        assert not reg.reachable()
        action = await gw.lwm2m.actions.submit(device.iccid, "read", "/3/0/0")
        await asyncio.sleep(0.5)
        assert (await gw.lwm2m.actions.get(action["id"]))["status"] == "SCHEDULED"
        assert not [r for r in client.received if r[0].startswith("GET")]
        await client.update()
        record = await wait_action(gw, action["id"])
        assert record["status"] == "SUCCEEDED" and record["result"]["value"] == {"/3/0/0": "nce-gateway"}
    finally:
        await client.close()


async def test_passive_reporting_reads_objects_except_1_2_3_and_passes_locations(
        tmp_path, receiver, ca_file, start_gateway):
    device = sim(14)
    hook = webhook(receiver, ca_file, event_types=["TELEMETRY_DATA"])
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook], lwm2m={"passive_reporting": True}), [device])
    values = default_objects(device.iccid, location=(52.52, 13.405))
    values["/1/0/0"] = 1
    client = await LwM2MClient.start(device.iccid, device.ip_address, values)
    try:
        await client.register(f"coap://127.0.0.1:{gw.coap_port}")
        events = await receiver.wait_for(2)
        read = sorted(p for method, p in client.received if method.startswith("GET"))
        assert read == ["/3303", "/6"]
        payloads = sorted((e["payload"]["value"] for e in events), key=lambda v: sorted(v)[0])
        assert payloads == [{"/3303/0/5700": 21.5, "/3303/0/5701": "Cel", "/3303/0/5750": "room"},
                            {"/6/0/0": 52.52, "/6/0/1": 13.405, "/6/0/5": 1700000000}]
        (position,) = gw.store.positions(device.iccid)  # kept for the Device Locator
        assert (position["lat"], position["lon"], position["protocol"]) == (52.52, 13.405, "LWM2M")
        await client.update()  # and again after each update
        await receiver.wait_for(4)
    finally:
        await client.close()


async def test_observe_notifications_become_events_until_observe_end(tmp_path, receiver, ca_file, start_gateway):
    device = sim(15)
    hook = webhook(receiver, ca_file, event_types=["TELEMETRY_DATA"])
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [device])
    client = await registered_client(gw, device)
    try:
        action = await gw.lwm2m.actions.submit(device.iccid, "observe-start", "/3303/0/5700")
        record = await wait_action(gw, action["id"])
        assert record["status"] == "SUCCEEDED" and record["result"]["value"] == {"/3303/0/5700": 21.5}
        await receiver.wait_for(1)  # the first value
        client.set_value("/3303/0/5700", 25.0)
        await receiver.wait_for(2)
        client.set_value("/3303/0/5700", 26.5)
        events = await receiver.wait_for(3)
        assert [e["payload"]["value"] for e in events] == [{"/3303/0/5700": v} for v in (21.5, 25.0, 26.5)]
        assert gw.store.connection().execute("SELECT path FROM lwm2m_observations").fetchall() == [("/3303/0/5700",)]

        action = await gw.lwm2m.actions.submit(device.iccid, "observe-end", "/3303/0/5700")
        assert (await wait_action(gw, action["id"]))["status"] == "SUCCEEDED"
        client.set_value("/3303/0/5700", 30.0)
        await asyncio.sleep(0.5)
        assert len(telemetry(receiver)) == 3
        assert gw.store.connection().execute("SELECT COUNT(*) FROM lwm2m_observations").fetchone()[0] == 0
    finally:
        await client.close()


async def test_standing_observation_is_started_again_after_a_restart(tmp_path, start_gateway):
    device = sim(16)
    config = make_config(tmp_path, lwm2m={"request_timeout_seconds": 1.5})
    gw = await start_gateway(config, [device])
    client = await registered_client(gw, device)
    try:
        action = await gw.lwm2m.actions.submit(device.iccid, "observe-start", "/3303/0/5700")
        assert (await wait_action(gw, action["id"]))["status"] == "SUCCEEDED"
        await gw.stop()
        gw2 = await start_gateway(config)
        await client.register(f"coap://127.0.0.1:{gw2.coap_port}")  # a new registration drops observations
        await wait_for(lambda: (device.iccid, "/3303/0/5700") in gw2.lwm2m.observations.active, timeout=8)
        before = len(gw2.store.messages(device.iccid))
        client.set_value("/3303/0/5700", 19.0)
        await wait_for(lambda: len(gw2.store.messages(device.iccid)) > before)
    finally:
        await client.close()


async def test_a_fleet_of_raw_socket_clients_registers(tmp_path, start_gateway):
    from firmware_examples.loadgen import source_ips
    from firmware_examples.lwm2m_fleet import register_request, run_registrations
    from inspector.records import Sim

    ips = source_ips(200, base="127.3.0.0")
    sims = [Sim(iccid=f"89882806900000{i:05d}", imsi=f"9014054000{i:05d}", ip_address=ip) for i, ip in enumerate(ips)]
    gw = await start_gateway(make_config(tmp_path), sims)
    requests = [register_request(s.iccid, i) for i, s in enumerate(sims)]
    stats = await asyncio.to_thread(run_registrations, ("127.0.0.1", gw.coap_port), ips, requests, window=64)
    assert stats.registered == 200 and not stats.failed
    assert len(gw.lwm2m.registrations) == 200
    await gw.lwm2m.writer.flush()
    await gw.committer.flush()
    assert gw.store.connection().execute("SELECT COUNT(*) FROM lwm2m_registrations").fetchone()[0] == 200
    assert len(gw.store.events(event_type="LIFECYCLE", limit=1000)) == 200


async def test_emulator_command_line_bootstraps_registers_sends_and_answers(tmp_path, start_gateway):
    import os
    import sys
    from pathlib import Path

    device = sim(17)
    gw = await start_gateway(make_config(tmp_path), [device])
    root = Path(__file__).resolve().parent.parent
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_examples.emulator", "lwm2m", "--port", str(gw.coap_port),
        "--source-ip", device.ip_address, "--iccid", device.iccid, "--bootstrap", "--send", "/3303/0/5700=21.5",
        "--stay", "2", cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await wait_for(lambda: gw.lwm2m.registrations.of(device.iccid) is not None, timeout=15)
        action = await gw.lwm2m.actions.submit(device.iccid, "read", "/3/0/1")
        record = await wait_action(gw, action["id"])
        assert record["result"]["value"] == {"/3/0/1": "lwm2m-emulator"}
        out, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
    lines = out.decode().splitlines()
    assert process.returncode == 0, (lines, err.decode())
    assert lines[0].startswith("bootstrapped: server coap://127.0.0.1:")
    assert lines[1].startswith("registered at /rd/") and lines[2] == "send: 2.04"
    assert lines[-1] == "deregistered: 2.02"
    assert gw.lwm2m.registrations.of(device.iccid) is None
