"""Energy Saver in the gateway: stored templates, one active per protocol, translated events,
translation errors, the template API and CLI."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from gateway.cli import main as cli
from gateway.templates import TemplateRefused
from firmware_examples.emulator import send_udp
from tests.api_support import start_api
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post

BLUEPRINT = {"sense": [{"switch": {"byte": 0, "bytelength": 1, "type": "int"}, "on": [{"case": 1, "do": [
    {"asset": "data_type", "value": "Energy_Saver"},
    {"asset": "battery_level", "value": {"byte": 1, "bytelength": 1, "type": "uint"}},
    {"asset": "signal_strength", "value": {"byte": 2, "bytelength": 1, "type": "uint"}},
    {"asset": "software_version", "value": {"byte": 3, "bytelength": 5, "type": "string"}}]}]}]}
GPS = {"sense": [{"asset": "gps.lat", "value": {"byte": 0, "bytelength": 4, "type": "float"}, "custom_type": "location_lat"},
                 {"asset": "gps.long", "value": {"byte": 4, "bytelength": 4, "type": "float"}, "custom_type": "location_long"},
                 {"asset": "t", "value": {"byte": 200, "type": "uint"}}]}


async def test_translated_messages_and_translation_errors_reach_the_webhook(tmp_path, receiver, ca_file,
                                                                           start_gateway):
    device = sim(45)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])
    await gw.templates.create(name="blueprint", template=BLUEPRINT, protocols=["UDP", "COAP"], status="ACTIVE")
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, device.ip_address, bytes.fromhex("016354322e322e31"))
    assert (await coap_post(gw.coap_port, device.ip_address, bytes.fromhex("015a50322e322e32"), topic="es")).code == "2.04"
    assert (await coap_post(gw.coap_port, device.ip_address, b"\x01\x02")).code == "2.04"  # too short: stored, error
    events = await receiver.wait_for(3)
    telemetry = sorted((e for e in events if e["type"] == "TELEMETRY_DATA"), key=lambda e: e["source"])
    assert [e["payload"] for e in telemetry] == [
        {"type": "JSON", "value": {"data_type": "Energy_Saver", "battery_level": 90, "signal_strength": 80,
                                   "software_version": "2.2.2"}, "topic": "es"},
        {"type": "JSON", "value": {"data_type": "Energy_Saver", "battery_level": 99, "signal_strength": 84,
                                   "software_version": "2.2.1"}}]
    (error,) = [e for e in events if e["type"] == "ERROR"]
    assert error["device"]["iccid"] == device.iccid
    assert {k: v for k, v in error["error"].items() if k != "id"} == {
        "type": "DEVICE", "message": "Translator[UserPayloadError]", "payloadExists": True,
        "description": "Asset path:signal_strength, Error: can't extract [2:3] from 2 bytes"}
    await gw.committer.flush()
    short = next(m for m in gw.store.messages() if m["payload"] == b"\x01\x02")
    assert short["translated"] is None and short["error"].startswith("Asset path:signal_strength")


async def test_location_values_are_kept_and_one_active_template_per_protocol(tmp_path, start_gateway):
    device = sim(46)
    gw = await start_gateway(make_config(tmp_path), [device])
    first = await gw.templates.create(name="gps", template=GPS, protocols=["UDP"], status="ACTIVE")
    with pytest.raises(TemplateRefused, match=f"template {first['id']} \\(gps\\) is already ACTIVE for UDP") as info:
        await gw.templates.create(name="other", template=BLUEPRINT, protocols=["COAP", "UDP"], status="ACTIVE")
    assert info.value.status == 409
    second = await gw.templates.create(name="other", template=BLUEPRINT, protocols=["COAP"], status="ACTIVE")
    assert gw.templates.active_for("UDP") == first["id"] and gw.templates.active_for("COAP") == second["id"]
    payload = bytes.fromhex("424bbcf940de981c") + bytes(200)
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, device.ip_address, payload)
    for _ in range(100):
        if gw.store.positions(device.iccid):
            break
        await asyncio.sleep(0.02)
    (position,) = gw.store.positions(device.iccid)
    assert (position["lat"], position["lon"]) == (pytest.approx(50.934544), pytest.approx(6.956068))
    with pytest.raises(TemplateRefused, match="not valid BCL") as info:
        await gw.templates.create(name="bad", template={"sense": [{"asset": "a", "value": {"type": "nope"}}]},
                                  protocols=["UDP"])
    assert info.value.field == "template"


async def test_template_api(tmp_path, start_gateway):
    api = await start_api(start_gateway, make_config(tmp_path), [sim(47)], roles=("User",))
    client = api.client("User")
    created = await client.post("/v1/optimize/templates", json={
        "name": "blueprint", "template": json.dumps(BLUEPRINT), "protocolFilter": ["UDP"], "status": "ACTIVE"})
    assert created.status == 201
    template_id = created.body["id"]
    assert created.body == {"id": template_id, "name": "blueprint", "template": json.dumps(BLUEPRINT),
                            "protocolFilter": ["UDP"], "status": "ACTIVE"}
    clash = await client.post("/v1/optimize/templates", json={
        "name": "x", "template": json.dumps(BLUEPRINT), "protocolFilter": ["UDP"], "status": "ACTIVE"})
    assert clash.status == 409 and "already ACTIVE for UDP" in clash.body["errors"][0]["message"]
    bad = await client.post("/v1/optimize/templates", json={
        "name": "x", "template": '{"sense": [{"asset": "a", "value": {"byte": 0, "type": "uint", "bytelength": 3}}]}',
        "protocolFilter": ["COAP"]})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "template"
    assert "/sense/0/value/bytelength" in bad.body["errors"][0]["message"]
    patched = await client.patch(f"/v1/optimize/templates/{template_id}", json={"status": "INACTIVE"})
    assert patched.status == 200 and patched.body["status"] == "INACTIVE"
    listed = await client.get("/v1/optimize/templates")
    assert [t["id"] for t in listed.body] == [template_id]
    tested = await client.post("/v1/optimize/messages/test", json={
        "template": json.dumps(BLUEPRINT), "payload": base64.b64encode(bytes.fromhex("016354322e322e31")).decode()})
    text = '{"data_type":"Energy_Saver","battery_level":99,"signal_strength":84,"software_version":"2.2.1"}'
    assert tested.status == 200 and tested.body == {"translatedPayload": text, "reducedBytes": len(text) - 8,
                                                    "energyUsageReduction": round(0.013 * (len(text) - 8), 3)}
    short = await client.post("/v1/optimize/messages/test", json={"template": json.dumps(BLUEPRINT), "payload": "AQI="})
    assert short.status == 400 and "can't extract [2:3] from 2 bytes" in short.body["errors"][0]["message"]
    assert (await client.delete(f"/v1/optimize/templates/{template_id}")).status == 204
    assert (await client.delete(f"/v1/optimize/templates/{template_id}")).status == 404
    assert (await api.client(None).get("/v1/optimize/templates")).status == 401


async def test_template_cli_and_live_activation(tmp_path, start_gateway, capsys):
    device = sim(48)
    gw = await start_gateway(make_config(tmp_path), [device])
    good, bad = tmp_path / "blueprint.json", tmp_path / "bad.json"
    good.write_text(json.dumps(BLUEPRINT))
    bad.write_text(json.dumps({"sense": [{"asset": "a", "value": {"byte": 1, "endbyte": 2, "type": "hex"}}], "x": 1}))
    assert cli(["template", "validate", str(good)]) == 0
    assert cli(["template", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "/sense/0/value/endbyte" in err and "/x" in err
    assert cli(["template", "test", str(good), "--payload-hex", "016354322e322e31"]) == 0
    assert json.loads(capsys.readouterr().out)["translatedPayload"]["software_version"] == "2.2.1"
    assert cli(["template", "test", str(good), "--payload-b64", "AQI="]) == 1
    assert "can't extract [2:3] from 2 bytes" in capsys.readouterr().err
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{gw.config.store.path}"\n')
    # the CLI is another process in real life; here a thread (it runs its own event loop)
    assert await asyncio.to_thread(cli, ["template", "add", str(good), "--name", "bp", "--protocol", "COAP",
                                         "--active", "--config", str(toml)]) == 0
    template_id = capsys.readouterr().out.split(":")[0]
    for _ in range(100):  # the running gateway follows the store
        if gw.templates.active_for("COAP") == template_id:
            break
        await asyncio.sleep(0.02)
    assert gw.templates.active_for("COAP") == template_id
    assert (await coap_post(gw.coap_port, device.ip_address, bytes.fromhex("016354322e322e31"))).code == "2.04"
    await gw.committer.flush()
    assert json.loads(gw.store.messages()[0]["translated"])["battery_level"] == 99
    assert await asyncio.to_thread(cli, ["template", "add", str(good), "--name", "again", "--protocol", "COAP",
                                         "--active", "--config", str(toml)]) == 1
    assert "already ACTIVE for COAP" in capsys.readouterr().err
    assert await asyncio.to_thread(cli, ["template", "set-status", template_id, "INACTIVE", "--config", str(toml)]) == 0


async def test_a_payload_the_template_makes_nothing_of_is_kept_with_an_error_event(tmp_path, receiver, ca_file,
                                                                                   start_gateway):
    """'hello over UDP' with the blueprint active: byte 0 is 'h' (104), no case, no default."""
    device = sim(49)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])
    await gw.templates.create(name="blueprint", template=BLUEPRINT, protocols=["UDP"], status="ACTIVE")
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, device.ip_address, b"hello over UDP")
    (event,) = await receiver.wait_for(1)
    assert event["type"] == "ERROR"
    description = ("Asset path:/sense/0/switch, Error: no case matches 104 (cases: 1) and there is no default; "
                   "the template translated nothing")
    assert {k: v for k, v in event["error"].items() if k != "id"} == {
        "type": "DEVICE", "message": "Translator[UserPayloadError]", "payloadExists": True,
        "description": description}
    await gw.committer.flush()
    (message,) = gw.store.messages()
    assert (message["payload"], message["translated"], message["error"]) == (b"hello over UDP", None, description)


def test_template_test_reports_a_payload_the_template_makes_nothing_of(tmp_path, capsys):
    path = tmp_path / "blueprint.json"
    path.write_text(json.dumps(BLUEPRINT))
    assert cli(["template", "test", str(path), "--payload-hex", b"hello over UDP".hex()]) == 1
    assert capsys.readouterr().err == (
        "Translator[UserPayloadError]: Asset path:/sense/0/switch, Error: no case matches 104 (cases: 1) and there "
        "is no default; the template translated nothing\n")
