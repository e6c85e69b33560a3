"""Builders of the 1NCE OS event envelope (SPEC §4).

Pure functions: they turn facts into the JSON text that is stored and delivered. The envelope is
rendered once, when the event is created; integrations that want JSON payloads adapt a copy at
delivery time (``render_for_integration``) so the stored event stays the canonical one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from inspector.records import EventRecord, Sim

VERSION = "1.0.0"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_random = bytearray()


def new_event_id() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` gives, at half the cost: random
    bytes are fetched from the OS 4 KiB at a time instead of 16 bytes per call."""
    global _random
    if len(_random) < 16:
        _random = bytearray(os.urandom(4096))
    b = _random[-16:]
    del _random[-16:]
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def device_of(sim: Sim) -> dict[str, str]:
    return {"iccid": sim.iccid, "imsi": sim.imsi, "ip": sim.ip_address}


def _envelope(event_id: str, event_type: str, received_ms: int, sim: Sim | None) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "received": str(received_ms),
        "version": VERSION,
    }
    if sim is not None:
        envelope["device"] = device_of(sim)
    return envelope


def raw_payload(payload: bytes, topic: str | None) -> dict[str, Any]:
    """An untranslated payload: base64 text, as 1NCE OS sends it."""
    out: dict[str, Any] = {"type": "STRING", "value": base64.b64encode(payload).decode("ascii"),
                           "encoding": "base64"}
    if topic is not None:
        out["topic"] = topic
    return out


def json_payload(value: Any, topic: str | None) -> dict[str, Any]:
    """A translated (BCL, LwM2M) payload."""
    out: dict[str, Any] = {"type": "JSON", "value": value}
    if topic is not None:
        out["topic"] = topic
    return out


def telemetry(sim: Sim, received_ms: int, source: str, payload: dict[str, Any],
              event_id: str | None = None, routes: tuple[int, ...] = ()) -> EventRecord:
    event_id = event_id or new_event_id()
    body = _envelope(event_id, "TELEMETRY_DATA", received_ms, sim)
    body["source"] = source
    body["payload"] = payload
    return EventRecord(event_id, "TELEMETRY_DATA", sim.iccid, received_ms, _dumps(body), routes)


def raw_telemetry(sim: Sim, received_ms: int, source: str, payload: bytes, topic: str | None,
                  routes: tuple[int, ...] = ()) -> EventRecord:
    """The same envelope as ``telemetry(..., raw_payload(payload, topic))``, written without the
    JSON encoder: this is the hot path, and none of its strings can need escaping (ICCID and
    IMSI are digits, the IP is dotted, the topic matches [A-Za-z0-9_/], base64 is plain ASCII)."""
    event_id = new_event_id()
    value = base64.b64encode(payload).decode("ascii")
    topic_part = f',"topic":"{topic}"' if topic is not None else ""
    body = (f'{{"id":"{event_id}","type":"TELEMETRY_DATA","received":"{received_ms}","version":"{VERSION}",'
            f'"device":{{"iccid":"{sim.iccid}","imsi":"{sim.imsi}","ip":"{sim.ip_address}"}},'
            f'"source":"{source}","payload":{{"type":"STRING","value":"{value}","encoding":"base64"{topic_part}}}}}')
    return EventRecord(event_id, "TELEMETRY_DATA", sim.iccid, received_ms, body, routes)


def error(sim: Sim | None, created_ms: int, *, error_type: str, message: str, description: str,
          payload_exists: bool, routes: tuple[int, ...] = ()) -> EventRecord:
    """An ERROR event; ``error_type`` is DEVICE, GENERAL, INTEGRATION or LOCATION."""
    event_id = new_event_id()
    body = _envelope(event_id, "ERROR", created_ms, sim)
    body["error"] = {"id": new_event_id(), "type": error_type, "message": message,
                     "description": description, "payloadExists": payload_exists}
    return EventRecord(event_id, "ERROR", sim.iccid if sim else None, created_ms, _dumps(body), routes)


def lifecycle(sim: Sim, created_ms: int, lifecycle_type: str, message: str,
              routes: tuple[int, ...] = ()) -> EventRecord:
    event_id = new_event_id()
    body = _envelope(event_id, "LIFECYCLE", created_ms, sim)
    body["lifecycle"] = {"type": lifecycle_type, "message": message}
    return EventRecord(event_id, "LIFECYCLE", sim.iccid, created_ms, _dumps(body), routes)


def location(sim: Sim, created_ms: int, source: str, lon: float, lat: float,
             routes: tuple[int, ...] = ()) -> EventRecord:
    event_id = new_event_id()
    body = _envelope(event_id, "LOCATION", created_ms, sim)
    body["location"] = {"source": source, "coordinates": [str(lon), str(lat)]}
    return EventRecord(event_id, "LOCATION", sim.iccid, created_ms, _dumps(body), routes)


def network_event(sim: Sim, created_ms: int, network_event_type: str, description: str, details: dict[str, Any],
                  routes: tuple[int, ...] = ()) -> EventRecord:
    """A NETWORK_EVENT (the gateway's own type, docs/connectivity.md): what the mobile core
    reported or what the gateway did to a SIM's connectivity (session, address, IMEI, location,
    quota, block, reset)."""
    event_id = new_event_id()
    body = _envelope(event_id, "NETWORK_EVENT", created_ms, sim)
    body["networkEvent"] = {"type": network_event_type, "description": description, **details}
    return EventRecord(event_id, "NETWORK_EVENT", sim.iccid, created_ms, _dumps(body), routes)


def geofence(sim: Sim, created_ms: int, geofence: dict[str, Any], routes: tuple[int, ...] = ()) -> EventRecord:
    """A GEOFENCE event: a device entered or left a geofence (docs/locator.md)."""
    event_id = new_event_id()
    body = _envelope(event_id, "GEOFENCE", created_ms, sim)
    body["geofence"] = geofence
    return EventRecord(event_id, "GEOFENCE", sim.iccid, created_ms, _dumps(body), routes)


def usage(sim: Sim, created_ms: int, usage_record: dict[str, Any], routes: tuple[int, ...] = ()) -> EventRecord:
    """A USAGE event (the gateway's own type): the data one accounting report added."""
    event_id = new_event_id()
    body = _envelope(event_id, "USAGE", created_ms, sim)
    body["usage"] = usage_record
    return EventRecord(event_id, "USAGE", sim.iccid, created_ms, _dumps(body), routes)
def mo_sms(sim: Sim, received_ms: int, sms: dict[str, Any], routes: tuple[int, ...] = ()) -> EventRecord:
    """An MO SMS from a SIM (event type ``MO_SMS``, docs/sms.md): ``sms`` carries msisdn,
    destinationAddress, dcs, payload (text, or hex for binary) and parts."""
    event_id = new_event_id()
    body = _envelope(event_id, "MO_SMS", received_ms, sim)
    body["sms"] = sms
    return EventRecord(event_id, "MO_SMS", sim.iccid, received_ms, _dumps(body), routes)


def test_message(created_ms: int, integration_uuid: str, integration_name: str,
                 routes: tuple[int, ...] = ()) -> EventRecord:
    event_id = new_event_id()
    body = _envelope(event_id, "TEST_MESSAGE", created_ms, None)
    body["integration"] = {"id": integration_uuid, "name": integration_name}
    return EventRecord(event_id, "TEST_MESSAGE", None, created_ms, _dumps(body), routes)


def render_for_integration(body: str, event_type: str, json_payload_enabled: bool) -> str:
    """The text an integration receives: the stored envelope, with a base64 payload that parses
    as JSON turned into a JSON payload when the integration asked for that."""
    if not json_payload_enabled or event_type != "TELEMETRY_DATA":
        return body
    envelope = json.loads(body)
    payload = envelope.get("payload") or {}
    if payload.get("type") != "STRING" or payload.get("encoding") != "base64":
        return body
    try:
        value = json.loads(base64.b64decode(payload["value"], validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return body
    envelope["payload"] = json_payload(value, payload.get("topic"))
    return _dumps(envelope)


def encode_json(value: Any) -> str:
    """Compact JSON text, the one encoding used for everything the gateway stores and sends."""
    return _dumps(value)
