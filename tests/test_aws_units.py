"""Pure parts of the AWS integration: topics, limits, rate limit, config validation, MQTT framing."""

from __future__ import annotations

import re

import pytest

from gateway import events
from gateway.config import AwsIntegrationConfig, ConfigError, load_config
from integrators import mqtt
from integrators.aws_common import TokenBucket, aws_topic, check_publish, topic_for
from integrators.base import DeliveryError, ProblemReporter
from tests.conftest import sim

DEVICE = {"iccid": "8988280666000000010", "imsi": "901405100000010", "ip": "127.0.0.10"}


@pytest.mark.parametrize("envelope, topic", [
    ({"type": "TELEMETRY_DATA", "device": DEVICE, "source": "UDP", "payload": {"type": "STRING"}},
     "8988280666000000010/messages"),
    ({"type": "TELEMETRY_DATA", "device": DEVICE, "source": "LWM2M", "payload": {"type": "JSON"}},
     "8988280666000000010/messages"),
    ({"type": "TELEMETRY_DATA", "device": DEVICE, "source": "COAP", "payload": {"topic": "sensors/temp"}},
     "8988280666000000010/sensors/temp"),
    ({"type": "TELEMETRY_DATA", "device": DEVICE, "source": "COAP", "payload": {"type": "STRING"}},
     "8988280666000000010"),
    ({"type": "LIFECYCLE", "device": DEVICE}, "lifecycle"),
    ({"type": "ERROR"}, "error"),
    ({"type": "LOCATION", "device": DEVICE}, "location"),
    ({"type": "GEOFENCE", "device": DEVICE}, "geofence"),
    ({"type": "TEST_MESSAGE"}, "integration-status"),
])
def test_topic_of_every_event_type(envelope, topic):
    assert aws_topic(envelope) == topic


def test_topic_of_unknown_type_or_deviceless_telemetry_is_refused():
    with pytest.raises(ValueError):
        aws_topic({"type": "SOMETHING"})
    with pytest.raises(DeliveryError) as info:
        topic_for("TELEMETRY_DATA", '{"type":"TELEMETRY_DATA","source":"UDP"}')
    assert info.value.permanent


def test_topic_for_a_real_envelope():
    record = events.raw_telemetry(sim(10), 1, "COAP", b"x", "a/b")
    assert topic_for("TELEMETRY_DATA", record.body) == f"{sim(10).iccid}/a/b"


def test_aws_limits_are_permanent_errors():
    check_publish("x/messages", b"x" * 128 * 1024)
    for topic, payload in (("x", b"x" * (128 * 1024 + 1)), ("a" * 257, b""), ("1/2/3/4/5/6/7/8/9", b"")):
        with pytest.raises(DeliveryError) as info:
            check_publish(topic, payload)
        assert info.value.permanent


def test_token_bucket_paces_without_sleeping_while_tokens_last():
    now = [0.0]
    bucket = TokenBucket(100, clock=lambda: now[0])  # burst 10
    assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    now[0] = 1.0  # refilled to the burst, not beyond
    assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
    assert bucket.reserve() > 0


def test_problem_reporter_reports_each_problem_once_and_again_after_success():
    emitted = []
    now = [0.0]
    reporter = ProblemReporter("iot", emitted.append, min_interval=60, repeat_after=3600, burst=2,
                               clock=lambda: now[0])
    assert reporter.report("connection", "a", "first")
    assert not reporter.report("connection", "a", "first again")
    now[0] = 10
    # a second, distinct problem right after (a reset, then the certificate named) is reported
    assert reporter.report("connection", "b", "the real cause")
    now[0] = 30
    assert not reporter.report("connection", "c", "a third, too soon")
    now[0] = 61
    assert reporter.report("connection", "c", "the third, a minute after the first")
    reporter.clear()
    now[0] = 200
    assert reporter.report("connection", "a", "back after a success")
    assert [e.type for e in emitted] == ["ERROR"] * 4
    assert '"message":"CloudIntegrator[ConnectionFailed]"' in emitted[0].body
    assert "Integration iot: first" in emitted[0].body


def write(tmp_path, text: str):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_config_reads_both_modes(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    cfg = load_config(write(tmp_path, f"""
[[aws_integrations]]
name = "thing"
host = "abc-ats.iot.eu-central-1.amazonaws.com"
cert_file = "{cert}"
key_file = "{cert}"
publish_rate_limit = 0
event_types = ["TELEMETRY_DATA"]

[[aws_integrations]]
name = "https"
mode = "iot_data"
region = "eu-central-1"
role_arn = "arn:aws:iam::123456789012:role/nce"
external_id = "ext-1"
"""), environ={})
    mqtt_cfg, https_cfg = cfg.aws_integrations
    assert mqtt_cfg.kind == "aws_mqtt" and https_cfg.kind == "aws_iot_data"
    stored = mqtt_cfg.stored()
    assert stored["host"].startswith("abc-ats") and stored["publish_rate_limit"] == 0
    assert "region" not in stored and stored["event_types"] == ["TELEMETRY_DATA"]
    assert https_cfg.stored()["external_id"] == "ext-1" and "host" not in https_cfg.stored()


@pytest.mark.parametrize("body, message", [
    ('mode = "kafka"', "aws_integrations[0].mode"),
    ('host = "h"\nkey_file = "k"', "aws_integrations[0].cert_file: required"),
    ('host = "h"\ncert_file = "/nonexistent"\nkey_file = "/nonexistent"', "aws_integrations[0].cert_file: /nonexistent"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nhost = "h"', 'aws_integrations[0].host: only for mode = "mqtt"'),
    ('mode = "iot_data"', "aws_integrations[0].region: required"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nrole_arn = "role"', "aws_integrations[0].role_arn"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nexternal_id = "abc"', "aws_integrations[0].external_id: needs role_arn"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nevent_types = ["NOPE"]', "aws_integrations[0].event_types"),
    ('mode = "iot_data"\nregion = "Frankfurt"', "aws_integrations[0].region"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nsession_duration_seconds = 60', "session_duration_seconds"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nport = 1', "aws_integrations[0].port: only for mode"),
    ('mode = "iot_data"\nregion = "eu-central-1"\nbogus = 1', "unknown key(s) bogus"),
])
def test_config_errors_name_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, f'[[aws_integrations]]\nname = "a"\n{body}\n'), environ={})


def test_names_are_unique_across_webhooks_and_aws(tmp_path):
    with pytest.raises(ConfigError, match="used twice"):
        load_config(write(tmp_path, """
[[webhooks]]
name = "a"
url = "https://example.com"
[[aws_integrations]]
name = "a"
mode = "iot_data"
region = "eu-central-1"
"""), environ={})


def test_mqtt_framing():
    assert mqtt.varint(0) == b"\x00" and mqtt.varint(127) == b"\x7f" and mqtt.varint(128) == b"\x80\x01"
    assert mqtt.varint(16384) == b"\x80\x80\x01"
    packet = mqtt.publish_packet(b"a/b", 7, b"hi")
    assert packet == b"\x32\x0a\x00\x03a/b\x00\x07\x00hi"
    connect = mqtt.connect_packet("c", 60)
    assert connect == b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01c"
    props, end = mqtt.parse_properties(b"\x08\x21\x00\x14\x1f\x00\x02ok", 0)
    assert props == {0x21: 20, 0x1F: "ok"} and end == 9
    # MQTT 3.1.1: protocol level 4, no properties in CONNECT and PUBLISH
    assert mqtt.connect_packet("c", 60, 4) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    assert mqtt.publish_packet(b"a/b", 7, b"hi", 4) == b"\x32\x09\x00\x03a/b\x00\x07hi"


def test_mqtt_config_defaults_from_stored_config():
    from integrators.aws_mqtt import AwsMqttSettings

    settings = AwsMqttSettings.from_config("thing", AwsIntegrationConfig(
        name="thing", host="h", cert_file="c", key_file="k").stored())
    assert (settings.port, settings.keepalive, settings.publish_rate_limit, settings.client_id) == (
        8883, 60, 100.0, "nce-gateway-thing")


def test_a_reset_after_a_certificate_refusal_keeps_naming_the_refusal():
    """The broker's alert can be lost in a reset (it closes right after the alert); such an
    attempt names the refusal seen before, so the last ERROR event still says what is wrong."""
    from integrators.aws_mqtt import AwsMqttSender, AwsMqttSettings

    sender = AwsMqttSender(AwsMqttSettings(host="h", cert_file="c.pem", key_file="k.pem", client_id="x"))
    refused = "cannot connect to h:8883: the broker refused the client certificate: it has expired (TLS: x)"
    reset = "cannot connect to h:8883: the broker reset the connection before CONNACK (y)"
    assert sender._with_refusal(reset) == reset  # nothing known yet
    assert sender._with_refusal(refused) == refused
    assert sender._with_refusal(reset) == f"{reset}; the attempt before: {refused}"
    assert sender._with_refusal("cannot connect to h:8883: connection refused") == (
        "cannot connect to h:8883: connection refused")
