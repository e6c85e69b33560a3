"""The event envelope (SPEC §4): the fast writer must equal the JSON encoder's output."""

import base64
import json
import uuid

from gateway import events
from tests.conftest import sim


def test_raw_telemetry_equals_the_generic_builder():
    device = sim(20)
    for payload, topic in ((b"", None), (b"\x00\xff" * 40, "a/b_c/9"), (b'{"x": "\\u00e9"}', None)):
        fast = events.raw_telemetry(device, 1767225600123, "COAP", payload, topic, (1, 2))
        generic = events.telemetry(device, 1767225600123, "COAP", events.raw_payload(payload, topic),
                                   event_id=fast.event_id, routes=(1, 2))
        assert fast.body == generic.body
        assert json.loads(fast.body) == {
            "id": fast.event_id, "type": "TELEMETRY_DATA", "received": "1767225600123", "version": "1.0.0",
            "device": {"iccid": device.iccid, "imsi": device.imsi, "ip": device.ip_address}, "source": "COAP",
            "payload": {"type": "STRING", "value": base64.b64encode(payload).decode(), "encoding": "base64",
                        **({"topic": topic} if topic else {})}}
        assert fast.routes == (1, 2) and fast.iccid == device.iccid and fast.type == "TELEMETRY_DATA"


def test_event_ids_are_random_version_4_uuids():
    ids = {events.new_event_id() for _ in range(5000)}
    assert len(ids) == 5000
    for value in list(ids)[:200]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_json_payload_rendering_only_when_enabled_and_parsable():
    device = sim(21)
    event = events.raw_telemetry(device, 1, "UDP", b'{"a": [1, 2]}', None)
    assert events.render_for_integration(event.body, "TELEMETRY_DATA", False) == event.body
    rendered = json.loads(events.render_for_integration(event.body, "TELEMETRY_DATA", True))
    assert rendered["payload"] == {"type": "JSON", "value": {"a": [1, 2]}}
    binary = events.raw_telemetry(device, 1, "UDP", b"\xff\xfe", "t")
    assert events.render_for_integration(binary.body, "TELEMETRY_DATA", True) == binary.body


def test_error_lifecycle_and_test_message_envelopes():
    device = sim(22)
    err = json.loads(events.error(device, 5, error_type="DEVICE", message="Translator[UserPayloadError]",
                                  description="d", payload_exists=True).body)
    assert err["type"] == "ERROR" and err["received"] == "5" and err["device"]["iccid"] == device.iccid
    assert set(err["error"]) == {"id", "type", "message", "description", "payloadExists"}
    assert (err["error"]["type"], err["error"]["message"], err["error"]["payloadExists"]) == (
        "DEVICE", "Translator[UserPayloadError]", True)
    test = json.loads(events.test_message(7, "uuid-1", "hook").body)
    assert "device" not in test and test["integration"] == {"id": "uuid-1", "name": "hook"}
    life = json.loads(events.lifecycle(device, 9, "DEVICE_FIRST_TIME_REGISTERED", "m").body)
    assert life["lifecycle"] == {"type": "DEVICE_FIRST_TIME_REGISTERED", "message": "m"}
