"""UDP and CoAP from emulated SIMs to a real HTTPS webhook, checked field by field (SPEC §4)."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid

from aiocoap.numbers.codes import Code

from firmware_examples.coap_client import CoapClient
from firmware_examples.emulator import send_udp
from tests.conftest import sim, make_config, webhook


async def coap_post(port: int, source_ip: str, payload: bytes, topic: str | None = None, confirmable: bool = True,
                    path: str = "/"):
    def _post():
        with CoapClient(("127.0.0.1", port), source_ip) as client:
            return client.post(path, payload, topic=topic, confirmable=confirmable, timeout=5)
    return await asyncio.to_thread(_post)


def assert_envelope(event: dict, device_sim, source: str) -> None:
    assert set(event) == {"id", "type", "received", "version", "device", "source", "payload"}
    assert uuid.UUID(event["id"]).version == 4
    assert event["type"] == "TELEMETRY_DATA"
    assert re.fullmatch(r"[0-9]{13}", event["received"])
    assert event["version"] == "1.0.0"
    assert event["device"] == {"iccid": device_sim.iccid, "imsi": device_sim.imsi, "ip": device_sim.ip_address}
    assert event["source"] == source


async def test_udp_and_coap_reach_the_webhook(tmp_path, receiver, ca_file, start_gateway):
    device = sim(10)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])

    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, device.ip_address, b"\x01\x02hello")
    result = await coap_post(gw.coap_port, device.ip_address, b"coap body", topic="sensors/temp")
    assert result.code == "2.04"
    result = await coap_post(gw.coap_port, device.ip_address, b"no topic", path="/data")
    assert result.code == "2.04"

    events = await receiver.wait_for(3)
    by_source = {}
    for event in events:
        by_source.setdefault(event["source"], []).append(event)
    (udp,) = by_source["UDP"]
    assert_envelope(udp, device, "UDP")
    assert udp["payload"] == {"type": "STRING", "value": base64.b64encode(b"\x01\x02hello").decode(),
                              "encoding": "base64"}
    with_topic, without_topic = sorted(by_source["COAP"], key=lambda e: "topic" not in e["payload"])
    assert_envelope(with_topic, device, "COAP")
    assert with_topic["payload"] == {"type": "STRING", "value": base64.b64encode(b"coap body").decode(),
                                     "encoding": "base64", "topic": "sensors/temp"}
    assert without_topic["payload"] == {"type": "STRING", "value": base64.b64encode(b"no topic").decode(),
                                        "encoding": "base64"}
    # stored in the inspector, latest per protocol known
    stored = gw.store.messages(device.iccid)
    assert sorted(m["payload"] for m in stored) == [b"\x01\x02hello", b"coap body", b"no topic"]
    assert set(gw.store.latest(device.iccid)) == {"UDP", "COAP"}


async def test_json_payload_enabled_and_placeholders(tmp_path, receiver, ca_file, start_gateway):
    device = sim(11)
    hook = webhook(receiver, ca_file, json_payload_enabled=True,
                   url=receiver.url + "/:iccid:", headers={"X-Device": ":imsi:@:ip:", "Authorization": "Bearer k"})
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [device])
    assert (await coap_post(gw.coap_port, device.ip_address, b'{"t": 21.5}', topic="a")).code == "2.04"
    assert (await coap_post(gw.coap_port, device.ip_address, b"not json")).code == "2.04"
    events = await receiver.wait_for(2)
    payloads = sorted((e["payload"] for e in events), key=lambda p: p["type"])
    assert payloads == [{"type": "JSON", "value": {"t": 21.5}, "topic": "a"},
                        {"type": "STRING", "value": base64.b64encode(b"not json").decode(), "encoding": "base64"}]
    for path, headers in receiver.requests:
        assert path == f"/hook/{device.iccid}"
        assert headers["X-Device"] == f"{device.imsi}@{device.ip_address}"
        assert headers["Authorization"] == "Bearer k"
        assert headers["Content-Type"] == "application/json"


async def test_unknown_and_disabled_sims_are_refused(tmp_path, receiver, ca_file, start_gateway):
    enabled, disabled = sim(12), sim(13, status="Disabled")
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [enabled, disabled])
    assert (await coap_post(gw.coap_port, disabled.ip_address, b"x")).code == "4.01"
    assert (await coap_post(gw.coap_port, "127.0.0.99", b"x")).code == "4.01"
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, "127.0.0.99", b"x")
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, disabled.ip_address, b"x")
    # a good message afterwards shows the refused ones were processed (and not stored)
    assert (await coap_post(gw.coap_port, enabled.ip_address, b"good")).code == "2.04"
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert [e["device"]["iccid"] for e in receiver.events] == [enabled.iccid]
    assert [m["iccid"] for m in gw.store.messages()] == [enabled.iccid]
    text = gw.metrics.render().decode()
    # a Disabled SIM is told apart from an address no SIM has, on CoAP as on UDP
    assert 'nce_uplink_rejected_total{protocol="COAP",reason="unknown_sim"} 1.0' in text
    assert 'nce_uplink_rejected_total{protocol="COAP",reason="disabled_sim"} 1.0' in text
    assert 'nce_uplink_rejected_total{protocol="UDP",reason="unknown_sim"} 1.0' in text
    assert 'nce_uplink_rejected_total{protocol="UDP",reason="disabled_sim"} 1.0' in text


async def test_registry_change_applies_without_restart(tmp_path, start_gateway):
    device = sim(14)
    gw = await start_gateway(make_config(tmp_path))
    assert (await coap_post(gw.coap_port, device.ip_address, b"x")).code == "4.01"
    # another process (the CLI) writes the registry; the gateway notices by polling
    from inspector.sqlite import SqliteStore
    SqliteStore(gw.config.store.path).upsert_sims([device])
    for _ in range(50):
        if device.iccid in gw.registry:
            break
        await asyncio.sleep(0.05)
    assert (await coap_post(gw.coap_port, device.ip_address, b"x")).code == "2.04"
    SqliteStore(gw.config.store.path).update_sim(device.iccid, status="Disabled")
    for _ in range(50):
        if gw.registry.sim_for_iccid(device.iccid).status == "Disabled":
            break
        await asyncio.sleep(0.05)
    assert (await coap_post(gw.coap_port, device.ip_address, b"x")).code == "4.01"
