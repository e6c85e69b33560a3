"""AWS IoT Core over MQTT, against Debian's Mosquitto with mutual TLS on an ephemeral port.

The broker requires a client certificate from the test CA (as AWS IoT Core does); a subscriber
with its own certificate records what arrives; an ACL file plays the IoT policy.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from bench.mqtt_broker import Mosquitto, Pki, available
from firmware_examples.emulator import send_udp
from gateway import events
from gateway.config import AwsIntegrationConfig
from inspector.records import EventRecord
from integrators import mqtt
from integrators.base import INTEGRATION_FAILED
from tests.conftest import make_config, sim
from tests.test_uplink_e2e import coap_post

# event times are now: the retention purge that runs at start-up drops events older than
# 7 days (with their outbox rows), and a fixed 2023 date raced with it
NOW = time.time_ns() // 1_000_000

pytestmark = pytest.mark.skipif(not available(), reason="Debian's mosquitto is not installed")

ACL = """user gateway
topic readwrite #
user restricted
topic deny lifecycle
topic readwrite #
user subscriber
topic read #
"""


class Subscriber:
    """A paho-mqtt client with its own certificate, subscribed to everything (QoS 1)."""

    def __init__(self, broker: Mosquitto, pki: Pki, *, client_id: str = "subscriber",
                 persistent: bool = False) -> None:
        import paho.mqtt.client as paho

        files = pki.client("subscriber")
        self.messages: list[tuple[str, bytes]] = []
        self.redelivered: list[bool] = []  # per message: the broker's DUP flag (sent to us again)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent, protocol=paho.MQTTv311)
        self.client.tls_set(ca_certs=pki.ca_file, certfile=files.cert_file, keyfile=files.key_file)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect("localhost", broker.port, keepalive=30)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber could not subscribe"

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload))
            self.redelivered.append(bool(message.dup))

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            await asyncio.sleep(0.02)
        with self.lock:
            raise AssertionError(f"{len(self.messages)} of {count} messages arrived: {self.messages[-5:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory):
    mosquitto = Mosquitto(tmp_path_factory.mktemp("broker"), pki, acl=ACL)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def subscriber(broker: Mosquitto, pki: Pki):
    sub = Subscriber(broker, pki)
    yield sub
    sub.close()


def aws(broker: Mosquitto, pki: Pki, identity: str = "gateway", **overrides: Any) -> AwsIntegrationConfig:
    files = pki.client(identity) if identity else None
    values: dict[str, Any] = {"name": "iot", "mode": "mqtt", "host": "localhost", "port": broker.port,
                              "ca_file": pki.ca_file, "retry_schedule": [0.1, 0.1],
                              "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 0.5,
                              "client_id": f"gw-{identity}-{time.monotonic_ns()}"}
    if files:
        values.update(cert_file=files.cert_file, key_file=files.key_file)
    values.update(overrides)
    return AwsIntegrationConfig(**values)


async def start(start_gateway, tmp_path: Path, integration: AwsIntegrationConfig, sims: list):
    config = make_config(tmp_path)
    config.aws_integrations = [integration]
    return await start_gateway(config, sims)


def stored_bodies(gw) -> dict[str, tuple[str, str]]:
    """event id → (type, exact stored body)."""
    rows = gw.store.connection().execute("SELECT id, type, body FROM events ORDER BY seq")
    return {event_id: (event_type, body) for event_id, event_type, body in rows}


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def errors(gw) -> list[dict]:
    return list(reversed(gw.store.events(event_type="ERROR")))


# ---------------------------------------------------------------------------------------------


async def test_every_event_type_lands_on_its_topic_with_the_stored_body(tmp_path, broker, pki, subscriber,
                                                                       start_gateway):
    device, other = sim(30), sim(31)
    gw = await start(start_gateway, tmp_path, aws(broker, pki), [device, other])
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, device.ip_address, b"\x01udp")
    assert (await coap_post(gw.coap_port, device.ip_address, b"with t", topic="sensors/temp")).code == "2.04"
    assert (await coap_post(gw.coap_port, other.ip_address, b"without t")).code == "2.04"
    gw.pipeline.translated(device, "LWM2M", b"\x00", {"3303/0/5700": 21.5})
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "first contact"))
    gw.pipeline.emit(events.error(device, NOW + 1, error_type="DEVICE", message="Translator[UserPayloadError]",
                                  description="bad byte", payload_exists=True))
    gw.pipeline.emit(events.location(device, NOW + 2, "GPS", 13.4, 52.5))
    geofence = {"id": events.new_event_id(), "type": "GEOFENCE", "received": str(NOW + 3), "version": "1.0.0",
                "device": events.device_of(device),
                "geofence": {"id": "g1", "name": "Berlin", "coordinates": [["13.4", "52.5"]], "source": "GPS",
                             "type": "ENTER"}}
    gw.pipeline.emit(EventRecord(geofence["id"], "GEOFENCE", device.iccid, NOW + 3,
                                 events.encode_json(geofence)))
    worker = next(iter(gw.integrations.workers.values()))
    test_id = gw.integrations.send_test(worker.handle, NOW + 4)

    received = await subscriber.wait_for(9)
    await gw.committer.flush()
    stored = stored_bodies(gw)
    assert len(stored) == 9
    got = {json.loads(payload)["id"]: (topic, payload.decode()) for topic, payload in received}
    expected_topics = {}
    for event_id, (event_type, body) in stored.items():
        envelope = json.loads(body)
        if event_type == "TELEMETRY_DATA":
            source = envelope["source"]
            iccid = envelope["device"]["iccid"]
            t = envelope["payload"].get("topic")
            expected_topics[event_id] = (f"{iccid}/{t}" if t else iccid) if source == "COAP" else f"{iccid}/messages"
        else:
            expected_topics[event_id] = {"LIFECYCLE": "lifecycle", "ERROR": "error", "LOCATION": "location",
                                         "GEOFENCE": "geofence", "TEST_MESSAGE": "integration-status"}[event_type]
    assert got == {event_id: (expected_topics[event_id], body) for event_id, (_t, body) in stored.items()}
    topics = sorted(topic for topic, _ in received)
    assert topics == sorted([f"{device.iccid}/messages", f"{device.iccid}/sensors/temp", other.iccid,
                             f"{device.iccid}/messages", "lifecycle", "error", "location", "geofence",
                             "integration-status"])
    assert json.loads(got[test_id][1])["integration"] == {"id": worker.handle.uuid, "name": "iot"}
    # the subscriber can see the last message before the gateway has its PUBACK
    await wait_until(lambda: 'nce_delivery_delivered_total{integration="iot"} 9.0' in gw.metrics.render().decode())
    text = gw.metrics.render().decode()
    assert 'nce_aws_connected{integration="iot"} 1.0' in text


async def test_json_payload_enabled_is_respected(tmp_path, broker, pki, subscriber, start_gateway):
    device = sim(32)
    gw = await start(start_gateway, tmp_path, aws(broker, pki, json_payload_enabled=True,
                                                  event_types=["TELEMETRY_DATA"]), [device])
    assert (await coap_post(gw.coap_port, device.ip_address, b'{"temp": 21.5}', topic="t1")).code == "2.04"
    ((topic, payload),) = await subscriber.wait_for(1)
    assert topic == f"{device.iccid}/t1"
    assert json.loads(payload)["payload"] == {"type": "JSON", "value": {"temp": 21.5}, "topic": "t1"}


async def test_certificate_from_another_ca_is_refused_and_reported(tmp_path, broker, pki, start_gateway):
    device = sim(33)
    stranger = pki.client("stranger", ca=trustme.CA())
    integration = aws(broker, pki, identity="", cert_file=stranger.cert_file, key_file=stranger.key_file)
    gw = await start(start_gateway, tmp_path, integration, [device])
    assert (await coap_post(gw.coap_port, device.ip_address, b"x")).code == "2.04"
    worker = next(iter(gw.integrations.workers.values()))
    await wait_until(lambda: worker.handle.state == INTEGRATION_FAILED)
    await gw.committer.flush()
    *early_ones, final = errors(gw)
    # Mosquitto sometimes resets the connection before its TLS alert arrives: that first attempt
    # is reported as a reset, the next ones name the certificate
    assert {e["error"]["message"] for e in early_ones} == {"CloudIntegrator[ConnectionFailed]"}
    early = next(e for e in early_ones if "refused the client certificate" in e["error"]["description"])
    assert "not issued by a CA the broker trusts" in early["error"]["description"]
    assert final["error"]["message"] == "CloudIntegrator[IntegrationDisabled]"
    assert "not issued by a CA the broker trusts" in final["error"]["description"]
    for error in (*early_ones, final):  # no key material in events
        assert "PRIVATE KEY" not in json.dumps(error) and "BEGIN" not in json.dumps(error)
    assert 'nce_aws_connect_failures_total{integration="iot"}' in gw.metrics.render().decode()


async def test_expired_certificate_and_untrusted_broker_are_reported(tmp_path, broker, pki, start_gateway):
    device = sim(34)
    expired = pki.client("gateway-expired", not_before=dt.datetime(2020, 1, 1),
                         not_after=dt.datetime(2021, 1, 1))
    gw = await start(start_gateway, tmp_path / "a",
                     aws(broker, pki, identity="", cert_file=expired.cert_file, key_file=expired.key_file), [device])
    await wait_until(lambda: gw.store.events(event_type="ERROR") != [])
    (error,) = gw.store.events(event_type="ERROR")
    assert "expired on 2021-01-01" in error["error"]["description"]

    wrong_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong_ca))
    gw2 = await start(start_gateway, tmp_path / "b", aws(broker, pki, ca_file=str(wrong_ca)), [device])
    await wait_until(lambda: bool(gw2.store.events(event_type="ERROR")))
    (error,) = gw2.store.events(event_type="ERROR")
    assert "the broker's certificate is not trusted" in error["error"]["description"]


async def test_broker_side_refusal_of_an_expired_certificate_is_named(broker, pki):
    """Without the gateway's own expiry check, the broker's TLS alert says the same."""
    expired = pki.client("gateway-expired2", not_before=dt.datetime(2020, 1, 1), not_after=dt.datetime(2021, 1, 1))
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(expired.cert_file, expired.key_file)
    # Mosquitto closes right after its alert; when the CONNECT (sent as soon as the client's
    # TLS 1.3 handshake is done) reaches the closed socket, the reset discards the alert
    for _ in range(10):
        with pytest.raises(mqtt.ConnectError) as refused:
            await mqtt.connect("localhost", broker.port, context, "expired-client", timeout=5)
        if "reset the connection before CONNACK" not in str(refused.value):
            break
    assert "refused the client certificate: it has expired" in str(refused.value)


async def test_acl_denied_topic_gives_a_clear_error_and_other_topics_go_on(tmp_path, broker, pki, subscriber,
                                                                           start_gateway):
    device, other = sim(35), sim(36)
    gw = await start(start_gateway, tmp_path, aws(broker, pki, identity="restricted", retry_schedule=[0.1] * 3,
                                                  event_types=["TELEMETRY_DATA", "LIFECYCLE"]), [device, other])
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "denied"))
    assert (await coap_post(gw.coap_port, other.ip_address, b"allowed")).code == "2.04"
    worker = next(iter(gw.integrations.workers.values()))
    await wait_until(lambda: worker.handle.state == INTEGRATION_FAILED)
    await gw.committer.flush()
    early, final = errors(gw)
    assert early["error"]["message"] == "CloudIntegrator[PublishDenied]"
    assert "topic 'lifecycle' is not authorized" in early["error"]["description"]
    assert "not authorized (0x87)" in final["error"]["description"]
    assert [topic for topic, _ in subscriber.messages] == [other.iccid]


async def test_event_over_128_kib_is_rejected_without_blocking_the_sim(tmp_path, broker, pki, subscriber,
                                                                      start_gateway):
    device = sim(37)
    gw = await start(start_gateway, tmp_path, aws(broker, pki, event_types=["LIFECYCLE", "TELEMETRY_DATA"]),
                     [device])
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "x" * 140_000))
    await gw.committer.flush()
    assert (await coap_post(gw.coap_port, device.ip_address, b"after")).code == "2.04"
    ((topic, payload),) = await subscriber.wait_for(1)
    assert topic == device.iccid and base64.b64decode(json.loads(payload)["payload"]["value"]) == b"after"
    await gw.committer.flush()
    (error,) = gw.store.events(event_type="ERROR")
    assert error["error"]["message"] == "CloudIntegrator[EventRejected]"
    assert "AWS IoT Core accepts at most 131,072 bytes" in error["error"]["description"]
    assert error["device"]["iccid"] == device.iccid  # the ERROR event belongs to the event's SIM
    worker = next(iter(gw.integrations.workers.values()))
    assert worker.handle.state != INTEGRATION_FAILED


async def test_broker_down_then_up_loses_nothing_and_keeps_order(tmp_path, pki, start_gateway):
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(tmp_path / "broker", pki, acl=ACL, persistence=True)  # the subscriber's session survives
    broker.start()
    sub = Subscriber(broker, pki, client_id="order-checker", persistent=True)
    devices = [sim(11), sim(12), sim(13)]
    try:
        gw = await start(start_gateway, tmp_path, aws(broker, pki, retry_schedule=[0.2] * 100,
                                                      event_types=["TELEMETRY_DATA"]), devices)
        sender = next(iter(gw.integrations.workers.values())).sender

        async def send(first: int, last: int) -> None:
            for n in range(first, last):
                for device in devices:
                    assert (await coap_post(gw.coap_port, device.ip_address,
                                            f"{device.iccid[-2:]}-{n:03d}".encode())).code == "2.04"

        await send(0, 4)
        await sub.wait_for(12)
        await asyncio.to_thread(broker.stop)
        await send(4, 10)  # stored and acknowledged while the broker is down
        await asyncio.sleep(0.6)
        await asyncio.to_thread(broker.start)
        # at-least-once: duplicates may arrive (from the gateway or the broker's persistent
        # session), so wait for 30 distinct events, not for 30 messages
        deadline = time.monotonic() + 30
        while True:
            with sub.lock:
                received = list(sub.messages)
            if len({json.loads(p)["id"] for _t, p in received}) >= 30 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        seen: dict[str, list[str]] = {}
        ids: set[str] = set()
        for _topic, payload in received:
            event = json.loads(payload)
            if event["id"] in ids:  # at-least-once: a publish whose PUBACK was lost may come twice
                continue
            ids.add(event["id"])
            seen.setdefault(event["device"]["iccid"], []).append(
                base64.b64decode(event["payload"]["value"]).decode())
        for device in devices:
            assert seen[device.iccid] == [f"{device.iccid[-2:]}-{n:03d}" for n in range(10)]
        assert sender.connections >= 2
        text = gw.metrics.render().decode()
        assert 'nce_aws_reconnects_total{integration="iot"}' in text
        retried = next(line for line in text.splitlines() if line.startswith('nce_delivery_retried_total{integration="iot"}'))
        assert float(retried.split()[-1]) > 0  # the outage was felt, not slept through
    finally:
        sub.close()
        broker.stop()


async def test_keepalive_holds_an_idle_connection(tmp_path, broker, pki, start_gateway):
    gw = await start(start_gateway, tmp_path, aws(broker, pki, keepalive=1), [])
    sender = next(iter(gw.integrations.workers.values())).sender
    await wait_until(lambda: sender.connections == 1)
    await asyncio.sleep(2.5)  # Mosquitto drops a client silent for 1.5 keep-alive periods
    assert sender.connections == 1 and sender._conn is not None and sender._conn.is_open


async def test_publish_rate_limit_paces_publishes(tmp_path, broker, pki, subscriber, start_gateway):
    device = sim(38)
    gw = await start(start_gateway, tmp_path, aws(broker, pki, publish_rate_limit=20, concurrency=8,
                                                  event_types=["LIFECYCLE"]), [device])
    sender = next(iter(gw.integrations.workers.values())).sender
    await wait_until(lambda: sender.connections == 1)
    started = time.monotonic()
    for n in range(22):
        gw.pipeline.emit(events.lifecycle(sim(10 + n), NOW + n, "DEVICE_FIRST_TIME_REGISTERED", str(n)))
    await subscriber.wait_for(22)
    elapsed = time.monotonic() - started
    assert 0.8 < elapsed < 5  # a burst of 2, then 20 per second
    assert 'nce_aws_rate_limited_total{integration="iot"}' in gw.metrics.render().decode()


async def test_failed_integration_resumes_after_restart(tmp_path, pki, start_gateway):
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(tmp_path / "broker", pki, acl=ACL)  # not started: the broker is down
    device = sim(39)
    gw = await start(start_gateway, tmp_path, aws(broker, pki, retry_schedule=[0.1], event_types=["LIFECYCLE"]),
                     [device])
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "waited"))
    worker = next(iter(gw.integrations.workers.values()))
    try:
        await wait_until(lambda: worker.handle.state == INTEGRATION_FAILED)
    except AssertionError:
        await gw.committer.flush()
        raise AssertionError(f"state {worker.handle.state}, workers {list(gw.integrations.workers)}, "
                             f"routes {gw.integrations.routes('LIFECYCLE')}, depth {gw.store.outbox_depth(worker.handle.id)}, "
                             f"round {worker._round}, delivered {worker.delivered}, "
                             f"sender error {getattr(worker.sender, 'last_error', None)}") from None
    await gw.committer.flush()
    assert [e["error"]["message"] for e in errors(gw)] == ["CloudIntegrator[ConnectionFailed]",
                                                           "CloudIntegrator[IntegrationDisabled]"]
    assert errors(gw)[0]["error"]["description"] == (
        f"Integration iot: cannot connect to localhost:{broker.port}: connection refused "
        "(is the broker running, and is this its port?)")
    await asyncio.to_thread(broker.start)
    sub = Subscriber(broker, pki, client_id="restart-checker")
    try:
        await gw.integrations.restart(worker.handle.id)
        received = await sub.wait_for(1)
        assert [(topic, json.loads(p)["lifecycle"]["message"]) for topic, p in received] == [("lifecycle", "waited")]
    finally:
        sub.close()
        broker.stop()


async def test_close_while_the_connack_arrives_ends_and_gives_the_connection_back(broker, pki, monkeypatch):
    """A sender closed in the loop iteration in which its CONNACK arrives. On Python 3.11,
    ``asyncio.wait_for`` swallowed that cancellation: the supervisor kept the new connection
    and ``close()`` waited for it forever (a restart hung, the worker was abandoned)."""
    from integrators.aws_mqtt import AwsMqttSender, AwsMqttSettings

    loop = asyncio.get_running_loop()
    closing: list[asyncio.Task] = []
    connections: list[mqtt.MqttConnection] = []
    packet = mqtt.MqttConnection._packet

    def connack_then_close(self: mqtt.MqttConnection, header: int, body: bytes) -> None:
        packet(self, header, body)
        if header >> 4 == 2 and not closing:  # CONNACK: close the sender in this same iteration
            connections.append(self)
            closing.append(loop.create_task(sender.close()))

    monkeypatch.setattr(mqtt.MqttConnection, "_packet", connack_then_close)
    files = pki.client("gateway")
    sender = AwsMqttSender(AwsMqttSettings(host="localhost", port=broker.port, cert_file=files.cert_file,
                                           key_file=files.key_file, ca_file=pki.ca_file, client_id="closing"))
    await wait_until(lambda: bool(closing))
    async with asyncio.timeout(5):
        await closing[0]
    assert sender._supervisor is not None and sender._supervisor.done()
    assert sender._conn is None and sender.connections == 0
    async with asyncio.timeout(5):
        reason = await connections[0].closed  # the connection went back, not kept open
    assert str(reason) in ("connect cancelled", "closed by the gateway")
