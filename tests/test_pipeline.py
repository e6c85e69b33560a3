"""The pipeline without sockets: translated messages, positions kept for the Device Locator."""

from __future__ import annotations

import json

from gateway.pipeline import Pipeline, Translation
from tests.conftest import make_config, sim


class ActiveTemplate:
    """A stand-in translator (the BCL one is tested on its own): 1-byte payloads fail."""

    def translate(self, protocol: str, payload: bytes) -> Translation | None:
        if protocol != "UDP":
            return None
        if len(payload) < 2:
            return Translation(error=f"Asset path:t, Error: can't extract [0:2] from {len(payload)} bytes")
        return Translation(value={"t": payload[0], "gps": {"lat": 50.5, "long": 6.9}},
                           locations={"lat": 50.5, "long": 6.9})


async def test_translation_results_errors_and_positions(tmp_path, start_gateway):
    device = sim(35)
    gw = await start_gateway(make_config(tmp_path), [device])
    gw.pipeline.translator = ActiveTemplate()
    gw.pipeline.uplink(device, "UDP", b"\x07\x00")
    gw.pipeline.uplink(device, "UDP", b"\x07")
    gw.pipeline.uplink(device, "COAP", b"raw", "t")
    await gw.committer.flush()
    messages = {m["payload"]: m for m in gw.store.messages()}
    assert json.loads(messages[b"\x07\x00"]["translated"]) == {"t": 7, "gps": {"lat": 50.5, "long": 6.9}}
    assert messages[b"\x07"]["error"] == "Asset path:t, Error: can't extract [0:2] from 1 bytes"
    assert messages[b"\x07"]["translated"] is None and messages[b"raw"]["translated"] is None
    telemetry = {e["source"]: e for e in gw.store.events(event_type="TELEMETRY_DATA")}
    assert telemetry["UDP"]["payload"] == {"type": "JSON", "value": {"t": 7, "gps": {"lat": 50.5, "long": 6.9}}}
    assert telemetry["COAP"]["payload"]["type"] == "STRING"
    (error,) = gw.store.events(event_type="ERROR")
    assert error["error"] | {"id": None} == {"id": None, "type": "DEVICE", "message": "Translator[UserPayloadError]",
                                             "description": "Asset path:t, Error: can't extract [0:2] from 1 bytes",
                                             "payloadExists": True}
    assert error["device"]["iccid"] == device.iccid
    assert messages[b"\x07"]["event_id"] == error["id"]
    (position,) = gw.store.positions(device.iccid)
    assert (position["lat"], position["lon"], position["source"], position["protocol"]) == (50.5, 6.9, "GPS", "UDP")


async def test_invalid_positions_are_not_kept(tmp_path, start_gateway):
    device = sim(36)
    gw = await start_gateway(make_config(tmp_path), [device])
    for values in ({"lat": 91.0, "long": 0.0}, {"lat": "50", "long": 6}, {"lat": 50.0}, {"lat": True, "long": 1.0}):
        gw.pipeline.translated(device, "LWM2M", b"", {"x": 1}, locations=values)
    gw.pipeline.translated(device, "LWM2M", b"", {"x": 1}, locations={"lat": -33.9, "long": 151.2})
    await gw.committer.flush()
    assert [(p["lat"], p["lon"]) for p in gw.store.positions(device.iccid)] == [(-33.9, 151.2)]
