"""MQTT delivery against brokers this project did not write, the same rule as the webhooks.

Each broker gets events of several SIMs; in each case every event arrives, the order per SIM is
kept, and the gateway's delivered/retried/failed counters agree with what the broker's
subscriber (paho-mqtt, its own certificate) saw:

* Debian's Mosquitto with TLS client certificates, MQTT 5;
* the same with the gateway asked for MQTT 3.1.1 (``mqtt_version = "3.1.1"``);
* Mosquitto with ``max_inflight_messages 2`` (CONNACK Receive Maximum 2) against 64 senders;
* Mosquitto with persistence, restarted while events stream (the subscriber's session survives);
* amqtt (a Python broker that speaks MQTT 3.1.1 only) with TLS: the MQTT 5 CONNECT is refused
  the 3.1.1 way and the gateway falls back to 3.1.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bench.mqtt_broker import AMQTT, Amqtt, Mosquitto, Pki, available
from gateway import events
from gateway.app import Gateway
from tests.conftest import make_config, sim
from tests.test_aws_mqtt import NOW, Subscriber, aws, wait_until

DEVICES = [sim(14), sim(15), sim(16)]

ACL = """user gateway
topic readwrite #
user subscriber
topic read #
"""

needs_mosquitto = pytest.mark.skipif(not available(), reason="Debian's mosquitto is not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def emit(gw: Gateway, count: int, start: int = 0) -> None:
    """``count`` TELEMETRY_DATA events per SIM, payload ``"<sim>-<n>"``, SIMs interleaved."""
    for n in range(start, start + count):
        for device in DEVICES:
            gw.pipeline.emit(events.raw_telemetry(device, NOW + n, "UDP",
                                                  f"{device.iccid[-2:]}-{n:03d}".encode(), None))


def per_sim(received: list[tuple[str, bytes]], redelivered: list[bool] | None = None
            ) -> tuple[dict[str, list[str]], int]:
    """Payloads per SIM in arrival order, each event once; and how many arrived twice from the
    gateway (a copy the broker sent again itself, with its DUP flag, is not the gateway's)."""
    seen: dict[str, list[str]] = {}
    ids: set[str] = set()
    duplicates = 0
    for index, (_topic, payload) in enumerate(received):
        event = json.loads(payload)
        if event["id"] in ids:  # at-least-once: a publish whose PUBACK was lost comes again
            duplicates += 0 if redelivered and redelivered[index] else 1
            continue
        ids.add(event["id"])
        seen.setdefault(event["device"]["iccid"], []).append(base64.b64decode(event["payload"]["value"]).decode())
    return seen, duplicates


def counter(gw: Gateway, name: str) -> float:
    return getattr(gw.metrics, name).labels("iot")._value.get()


async def deliver_and_check(gw: Gateway, sub: Subscriber, count: int, *, during: Any = None) -> tuple[int, int]:
    """Emit ``count`` events per SIM (``during`` runs halfway), wait until all arrived and were
    counted; check order and counters. Returns (messages seen, retried)."""
    total = count * len(DEVICES)
    emit(gw, count // 2)
    if during is not None:
        await during()
    emit(gw, count - count // 2, start=count // 2)
    deadline = time.monotonic() + 40
    while True:
        with sub.lock:
            received, redelivered = list(sub.messages), list(sub.redelivered)
        seen, duplicates = per_sim(received, redelivered)
        if sum(map(len, seen.values())) >= total or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for device in DEVICES:
        assert seen.get(device.iccid) == [f"{device.iccid[-2:]}-{n:03d}" for n in range(count)]
    await wait_until(lambda: counter(gw, "delivered") == total, timeout=20)
    retried, failed = counter(gw, "retried"), counter(gw, "failed")
    assert failed == 0
    assert duplicates <= retried  # every copy the gateway sent again is a retried publish
    return len(received), int(retried)


def connections(broker: Mosquitto) -> list[str]:
    """The protocol of each gateway connection as Mosquitto logs it: ``p5`` (MQTT 5), ``p2`` (3.1.1)."""
    return [line.split("(", 1)[1].split(",", 1)[0] for line in broker.log.read_text().splitlines()
            if "New client connected" in line and " as gw-" in line]


async def start(start_gateway, tmp_path: Path, broker: Any, pki: Pki, **overrides: Any) -> Gateway:
    config = make_config(tmp_path)
    values: dict[str, Any] = {"event_types": ["TELEMETRY_DATA"], "publish_rate_limit": 0,
                              "retry_schedule": [0.2] * 100}
    values.update(overrides)
    config.aws_integrations = [aws(broker, pki, **values)]
    return await start_gateway(config, DEVICES)


@needs_mosquitto
@pytest.mark.parametrize("version, logged", [(None, "p5"), ("3.1.1", "p2")])  # Mosquitto: p2 is 3.1.1
async def test_mosquitto_tls_client_certificates(tmp_path, pki, start_gateway, version, logged):
    broker = Mosquitto(tmp_path, pki, acl=ACL, extra="log_type notice\n")
    broker.start()
    sub = Subscriber(broker, pki)
    try:
        gw = await start(start_gateway, tmp_path, broker, pki, mqtt_version=version)
        seen, retried = await deliver_and_check(gw, sub, 20)
        assert (seen, retried) == (60, 0)  # every publish seen once, none retried
        assert connections(broker) == [logged]
    finally:
        sub.close()
        broker.stop()


@needs_mosquitto
async def test_mosquitto_max_inflight_2(tmp_path, pki, start_gateway):
    broker = Mosquitto(tmp_path, pki, acl=ACL, extra="max_inflight_messages 2\n")
    broker.start()
    sub = Subscriber(broker, pki)
    try:
        gw = await start(start_gateway, tmp_path, broker, pki, concurrency=64)
        sender = next(iter(gw.integrations.workers.values())).sender
        await wait_until(lambda: sender._conn is not None)
        assert sender._conn.receive_maximum == 2  # the broker's flow control, from CONNACK
        peak = 0
        publish = sender._conn.publish

        async def counted(*args: Any) -> int:
            nonlocal peak
            result = publish(*args)
            peak = max(peak, sender._conn.inflight if sender._conn else 0)
            return await result

        sender._conn.publish = counted  # type: ignore[method-assign]
        seen, retried = await deliver_and_check(gw, sub, 20)
        assert (seen, retried) == (60, 0)
        assert peak == 2  # never more in flight than the broker allows, and that many used
    finally:
        sub.close()
        broker.stop()


@needs_mosquitto
async def test_mosquitto_persistence_restart_mid_stream(tmp_path, pki, start_gateway):
    broker = Mosquitto(tmp_path, pki, acl=ACL, persistence=True)  # the subscriber's session survives
    broker.start()
    sub = Subscriber(broker, pki, client_id="conformance-checker", persistent=True)
    try:
        gw = await start(start_gateway, tmp_path, broker, pki)
        sender = next(iter(gw.integrations.workers.values())).sender

        async def restart() -> None:
            await asyncio.sleep(0.05)  # some of the first half in flight
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(broker.start)

        seen, retried = await deliver_and_check(gw, sub, 30, during=restart)
        assert seen >= 90
        assert sender.connections >= 2
    finally:
        sub.close()
        broker.stop()


@pytest.mark.skipif(not Path(AMQTT).exists(), reason="amqtt is not installed (a test dependency)")
async def test_amqtt_speaks_311_only_and_the_gateway_falls_back(tmp_path, pki, start_gateway, caplog):
    caplog.set_level(logging.INFO, logger="nce.aws")
    broker = Amqtt(tmp_path, pki)
    broker.start()
    sub = None
    try:
        sub = Subscriber(broker, pki)  # type: ignore[arg-type]
        gw = await start(start_gateway, tmp_path, broker, pki)
        sender = next(iter(gw.integrations.workers.values())).sender
        seen, retried = await deliver_and_check(gw, sub, 20)
        assert (seen, retried) == (60, 0)
        assert sender.version == 4 and sender.connections == 1
        assert [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "aws_mqtt_311"] == [
            "the broker of iot speaks MQTT 3.1.1 only; using it"]
    finally:
        if sub is not None:
            sub.close()
        broker.stop()


@needs_mosquitto
async def test_a_broker_port_that_is_not_mqtt_fails_clearly_and_loses_nothing(tmp_path, pki, start_gateway):
    """Bad input: the port answers HTTP over TLS. Failed attempts naming what came back, the
    integration disabled with that reason; once the real broker is there, a restart delivers all."""
    import ssl

    broker = Mosquitto(tmp_path, pki, acl=ACL)  # its port, not started yet

    async def not_mqtt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server = await asyncio.start_server(not_mqtt, "127.0.0.1", broker.port, ssl=context)
    sub = None
    try:
        gw = await start(start_gateway, tmp_path, broker, pki, retry_schedule=[0.05])
        worker = next(iter(gw.integrations.workers.values()))
        emit(gw, 3)
        await wait_until(lambda: worker.handle.state == "INTEGRATION_FAILED", timeout=20)
        await gw.committer.flush()
        reason = (f"cannot connect to localhost:{broker.port}: the answer is not MQTT (no CONNACK); it began with "
                  "b'HTTP/1.1 400 Bad Request\\r\\nConten'")  # its first 32 bytes
        errors = [e["error"] for e in reversed(gw.store.events(event_type="ERROR"))]
        assert errors[0] == {**errors[0], "message": "CloudIntegrator[ConnectionFailed]",
                             "description": f"Integration iot: {reason}"}
        assert errors[-1]["message"] == "CloudIntegrator[IntegrationDisabled]"
        assert errors[-1]["description"].endswith(reason)
        assert (counter(gw, "delivered"), counter(gw, "failed")) == (0, 1)

        server.close()
        await server.wait_closed()
        await asyncio.to_thread(broker.start)
        sub = Subscriber(broker, pki)
        await gw.integrations.restart(worker.handle.id)
        received = await sub.wait_for(9)
        seen, duplicates = per_sim(received)
        for device in DEVICES:
            assert seen[device.iccid] == [f"{device.iccid[-2:]}-{n:03d}" for n in range(3)]
        assert duplicates == 0
        await wait_until(lambda: counter(gw, "delivered") == 9)
    finally:
        server.close()
        if sub is not None:
            sub.close()
        broker.stop()
