"""Delivery benchmark: sustained events/s from the outbox to AWS IoT Core (MQTT) and to a webhook.

    python -m bench.delivery [--events 20000] [--sims 1000] [--latency-rate 1000] [--latency-seconds 4]

Targets, all on loopback:
* a private Mosquitto with mutual TLS (``require_certificate true``, Receive Maximum 100), ONE
  connection, the per-connection rate limit lifted (``publish_rate_limit = 0``);
* an HTTPS webhook receiver (aiohttp, its own process, keep-alive);
* an HTTPS receiver on Python's ``http.server`` (HTTP/1.0: no Content-Length, the connection
  closes after every answer, so every event costs a TCP connection and a TLS handshake).

Throughput: the outbox is filled directly (``store.commit`` of prepared TELEMETRY_DATA events,
so the generator costs nothing), then a gateway (transports off) starts and drains it; the
gateway's CPU time is measured with ``time.process_time`` (all its threads), which gives
events/s per core. Latency: events are emitted through the pipeline at a steady rate below
capacity and timed from hand-over to the group commit until the target confirmed them
(PUBACK / HTTP 200), which includes the commit, the outbox load and the send.

Baselines in the same run, to the same broker and receiver: a bare paho-mqtt QoS 1 publish
loop, this project's MQTT client without the worker, and a bare aiohttp POST loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.app import Gateway
from gateway.config import AwsIntegrationConfig, WebhookConfig, load_config
from gateway import events
from inspector.records import Pending, Sim
from inspector.sqlite import SqliteStore
from integrators import mqtt
from integrators.aws_mqtt import AwsMqttSettings, client_tls_context
from integrators.base import ROLLOUT_DONE

from .common import child, free_port, print_table, receiver_tls
from .mqtt_broker import Mosquitto, Pki

PAYLOAD = b'{"temperature": 21.5, "humidity": 40, "battery": 3.61}'


def bench_sims(count: int) -> list[Sim]:
    return [Sim(iccid=f"8988280680{i:09d}", imsi=f"90140530{i:07d}", ip_address=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
            for i in range(count)]


class Result:
    def __init__(self, name: str, count: int, wall: float, cpu: float, latencies: list[float] | None = None):
        self.name, self.count, self.wall, self.cpu = name, count, wall, cpu
        self.latencies = latencies or []

    def row(self) -> tuple:
        p50 = p99 = float("nan")
        if self.latencies:
            ordered = sorted(self.latencies)
            p50 = ordered[len(ordered) // 2] * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = self.count / self.wall if self.wall else float("nan")
        per_core = self.count / self.cpu if self.cpu else float("nan")
        return (self.name, self.count, rate, self.cpu, per_core, p50, p99)


# the gateway ---------------------------------------------------------------------------------


def gateway_config(directory: Path, *, aws: AwsIntegrationConfig | None = None,
                   webhook: WebhookConfig | None = None) -> Any:
    config = load_config(environ={})
    config.store.path = str(directory / "bench.db")
    config.store.synchronous = "normal"
    config.udp.enabled = config.coap.enabled = config.coaps.enabled = config.api.enabled = False
    config.log.level = "WARNING"
    config.targets.allow_loopback = True  # the bench's receivers are on this host
    config.aws_integrations = [aws] if aws else []
    config.webhooks = [webhook] if webhook else []
    return config


def prefill(config: Any, kind: str, integration_config: dict, name: str, sims: list[Sim], count: int) -> None:
    """Write ``count`` undelivered TELEMETRY_DATA events for the integration straight into the store."""
    store = SqliteStore(config.store.path, "normal")
    integration_id = store.upsert_integration(uuid="bench", name=name, kind=kind, origin="config",
                                              config=integration_config, state=ROLLOUT_DONE)
    batch: list[Pending] = []
    now = time.time_ns() // 1_000_000
    for n in range(count):
        batch.append(Pending(None, [events.raw_telemetry(sims[n % len(sims)], now, "UDP", PAYLOAD, None,
                                                         (integration_id,))]))
        if len(batch) == 5000:
            store.commit(batch)
            batch = []
    if batch:
        store.commit(batch)
    store.close()


async def drain(config: Any, count: int, label: str, senders: dict[str, Any] | None = None) -> Result:
    """Start a gateway over a filled outbox; time until every event was confirmed."""
    gateway = Gateway(config)
    gateway.integrations.senders.update(senders or {})
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await gateway.start()
    worker = next(iter(gateway.integrations.workers.values()))
    deadline = time.monotonic() + 120
    while worker.delivered < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    delivered = worker.delivered
    await gateway.stop()
    if delivered < count:
        print(f"  {label}: only {delivered} of {count} delivered in time")
    return Result(label, delivered, wall, cpu)


async def drain_webhook(directory: Path, hook: WebhookConfig, sims: list[Sim], count: int, label: str,
                        senders: dict[str, Any] | None = None) -> Result:
    """``drain`` of a prefilled outbox through one webhook integration."""
    run_dir = directory / f"{hook.name}-{len(list(directory.glob(hook.name + '-*')))}-drain"
    run_dir.mkdir()
    config = gateway_config(run_dir, webhook=hook)
    stored = {k: v for k, v in hook.__dict__.items() if k != "name"}
    prefill(config, "webhook", stored, hook.name, sims, count)
    return await drain(config, count, label, senders)


class AiohttpSender:
    """The webhook sender as it would be on aiohttp's client (the library alternative to
    ``integrators/http11.py``), for the whole-path comparison: same worker, same store."""

    needs_device = False

    def __init__(self, config: dict[str, Any], context: Any = None) -> None:
        import ssl

        self.url = config["url"]
        self.tls = ssl.create_default_context(cafile=config.get("ca_file"))
        self.limit = int(config.get("concurrency", 64))
        self.session: aiohttp.ClientSession | None = None

    async def send(self, body: str, device: Any, event_type: str) -> None:
        from integrators.base import DeliveryError

        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls, limit=self.limit))
        async with self.session.post(self.url, data=body.encode(), headers={"Content-Type": "application/json"},
                                     timeout=aiohttp.ClientTimeout(total=20)) as response:
            await response.read()
            if not 200 <= response.status < 300:
                raise DeliveryError(f"HTTP {response.status}")

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


async def paced(config: Any, sims: list[Sim], rate: float, seconds: float, label: str) -> Result:
    """Emit events through the pipeline at ``rate``/s; latency from emit to confirmation."""
    gateway = Gateway(config)
    await gateway.start()
    worker = next(iter(gateway.integrations.workers.values()))
    await asyncio.sleep(0.5)  # connection up
    sent: dict[str, float] = {}
    latencies: list[float] = []
    original = worker.sender.send

    async def timed(body: str, device: Any, event_type: str) -> None:
        await original(body, device, event_type)
        started = sent.pop(body[7:43], None)  # '{"id":"<36 chars>"...'
        if started is not None:
            latencies.append(time.perf_counter() - started)

    worker.sender.send = timed  # type: ignore[method-assign]
    total = int(rate * seconds)
    routes = gateway.integrations.routes("TELEMETRY_DATA")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for n in range(total):
        due = wall0 + n / rate
        delay = due - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        event = events.raw_telemetry(sims[n % len(sims)], time.time_ns() // 1_000_000, "UDP", PAYLOAD, None, routes)
        sent[event.event_id] = time.perf_counter()
        gateway.committer.submit(Pending(None, [event]))
    deadline = time.monotonic() + 30
    while len(latencies) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await gateway.stop()
    return Result(label, len(latencies), wall, cpu, latencies)


# baselines -----------------------------------------------------------------------------------


def paho_loop(broker: Mosquitto, pki: Pki, count: int) -> Result:
    """A bare paho-mqtt client: QoS 1 publishes with up to 100 in flight, until all PUBACKs."""
    import paho.mqtt.client as paho

    files = pki.client("bench-paho")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=paho.MQTTv5)
    client.tls_set(ca_certs=pki.ca_file, certfile=files.cert_file, keyfile=files.key_file)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_args: Any) -> None:
        acked[0] += 1
        if acked[0] == count:
            done.set()

    client.on_publish = on_publish
    client.connect("localhost", broker.port)
    client.loop_start()
    time.sleep(0.3)
    body = events.raw_telemetry(bench_sims(1)[0], 0, "UDP", PAYLOAD, None).body.encode()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        client.publish("bench/messages", body, qos=1)
    done.wait(120)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return Result("bare paho-mqtt publish loop (QoS 1, 100 in flight)", acked[0], wall, cpu)


async def own_client_loop(broker: Mosquitto, pki: Pki, count: int) -> Result:
    """This project's MQTT client, 64 publishers on one connection, no worker, no store."""
    files = pki.client("bench-own")
    settings = AwsMqttSettings(host="localhost", port=broker.port, ca_file=pki.ca_file, cert_file=files.cert_file,
                               key_file=files.key_file, client_id="bench-own")
    conn = await mqtt.connect("localhost", broker.port, client_tls_context(settings), "bench-own")
    body = events.raw_telemetry(bench_sims(1)[0], 0, "UDP", PAYLOAD, None).body.encode()
    per_task = count // 64

    async def publisher() -> None:
        for _ in range(per_task):
            await conn.publish("bench/messages", body, 20)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(64)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await conn.disconnect()
    return Result("integrators.mqtt client alone (64 publishers, 1 connection)", per_task * 64, wall, cpu)


async def aiohttp_loop(url: str, ca_file: str, count: int, concurrency: int = 64) -> Result:
    """A bare aiohttp client: POSTs over keep-alive connections, ``concurrency`` at a time."""
    import ssl

    context = ssl.create_default_context(cafile=ca_file)
    body = events.raw_telemetry(bench_sims(1)[0], 0, "UDP", PAYLOAD, None).body.encode()
    per_task = count // concurrency
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=concurrency)) as session:
        async def poster() -> None:
            for _ in range(per_task):
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    assert response.status == 200

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Result(f"bare aiohttp POST loop ({concurrency} concurrent, keep-alive)", per_task * concurrency, wall, cpu)


class _Http11(asyncio.Protocol):
    """The least an HTTP/1.1 keep-alive POST client must do: write, read status + Content-Length."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[:end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(int(head[9:12]))


async def lean_http_loop(port: int, ca_file: str, count: int, concurrency: int = 64) -> Result:
    """What a minimal HTTP/1.1 client costs (the design change the webhook would need to pass
    5,000 events/s per core): asyncio Protocol, one pre-encoded request, keep-alive connections."""
    import ssl

    context = ssl.create_default_context(cafile=ca_file)
    loop = asyncio.get_running_loop()
    body = events.raw_telemetry(bench_sims(1)[0], 0, "UDP", PAYLOAD, None).body.encode()
    request = (f"POST /hook HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: nce-gateway\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    per_task = count // concurrency
    connections = [(await loop.create_connection(_Http11, "localhost", port, ssl=context))[1]
                   for _ in range(concurrency)]

    async def poster(conn: _Http11) -> None:
        for _ in range(per_task):
            conn.waiter = loop.create_future()
            conn.transport.write(request)
            assert await conn.waiter == 200

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(poster(c) for c in connections))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for conn in connections:
        conn.transport.close()
    return Result(f"minimal HTTP/1.1 client ({concurrency} keep-alive connections)", per_task * concurrency,
                  wall, cpu)


# main ------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, directory: Path) -> list[Result]:
    logging.getLogger().setLevel(logging.WARNING)
    results: list[Result] = []
    sims = bench_sims(args.sims)

    pki = Pki(directory / "pki")
    (directory / "broker").mkdir()
    broker = Mosquitto(directory / "broker", pki, extra="max_inflight_messages 100\nmax_queued_messages 0\n")
    broker.start()
    try:
        results.append(await asyncio.to_thread(paho_loop, broker, pki, args.events))
        results.append(await own_client_loop(broker, pki, args.events))
        files = pki.client("gateway")
        aws = AwsIntegrationConfig(name="bench-aws", host="localhost", port=broker.port, ca_file=pki.ca_file,
                                   cert_file=files.cert_file, key_file=files.key_file, client_id="bench-gateway",
                                   publish_rate_limit=0, event_types=["TELEMETRY_DATA"])
        run_dir = directory / "aws-drain"
        run_dir.mkdir()
        config = gateway_config(run_dir, aws=aws)
        prefill(config, "aws_mqtt", aws.stored(), aws.name, sims, args.events)
        results.append(await drain(config, args.events, "nce-gateway → Mosquitto, mutual TLS, 1 connection"))
        run_dir = directory / "aws-paced"
        run_dir.mkdir()
        results.append(await paced(gateway_config(run_dir, aws=aws), sims, args.latency_rate, args.latency_seconds,
                                   f"  same, paced at {args.latency_rate:g}/s (latency)"))
    finally:
        broker.stop()

    ca_file, cert_file, key_file = receiver_tls(directory)
    port = free_port(__import__("socket").SOCK_STREAM)
    url = f"https://localhost:{port}/hook"
    with child(["-m", "bench.servers", "webhook", str(port), cert_file, key_file]):
        results.append(await aiohttp_loop(url, ca_file, args.events))
        results.append(await lean_http_loop(port, ca_file, args.events))
        hook = WebhookConfig(name="bench-hook", url=url, ca_file=ca_file, event_types=["TELEMETRY_DATA"])
        results.append(await drain_webhook(directory, hook, sims, args.events,
                                           "nce-gateway → HTTPS webhook (aiohttp receiver)"))
        results.append(await drain_webhook(directory, hook, sims, args.events,
                                           "  same path with aiohttp's client as the sender (comparison)",
                                           {"webhook": AiohttpSender}))
        run_dir = directory / "hook-paced"
        run_dir.mkdir()
        results.append(await paced(gateway_config(run_dir, webhook=hook), sims, args.latency_rate,
                                   args.latency_seconds, f"  same, paced at {args.latency_rate:g}/s (latency)"))
    port = free_port(__import__("socket").SOCK_STREAM)
    url = f"https://localhost:{port}/hook"
    with child(["-m", "bench.servers", "http10", str(port), cert_file, key_file]):
        hook = WebhookConfig(name="bench-http10", url=url, ca_file=ca_file, event_types=["TELEMETRY_DATA"])
        results.append(await drain_webhook(directory, hook, sims, args.http10_events,
                                           "nce-gateway → HTTPS http.server (HTTP/1.0, 1 connection per event)"))
        results.append(await drain_webhook(directory, hook, sims, args.http10_events,
                                           "  same path with aiohttp's client as the sender (comparison)",
                                           {"webhook": AiohttpSender}))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="events per throughput run")
    parser.add_argument("--sims", type=int, default=1000, help="distinct SIMs (order is kept per SIM)")
    parser.add_argument("--http10-events", type=int, default=3000,
                        help="events of the run against the HTTP/1.0 receiver (a TLS handshake each)")
    parser.add_argument("--latency-rate", type=float, default=1000, help="events/s of the paced latency runs")
    parser.add_argument("--latency-seconds", type=float, default=4)
    parser.add_argument("--uvloop", action="store_true", help="run everything on uvloop (an experiment: the "
                        "gateway itself runs on asyncio's default loop)")
    args = parser.parse_args(argv)
    if args.uvloop:
        import uvloop

        uvloop.install()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    loop = "uvloop" if args.uvloop else "asyncio"
    print_table(f"Delivery: {args.events:,} TELEMETRY_DATA events, {args.sims:,} SIMs, loopback, {os.cpu_count()} cores, "
                f"{loop} event loop",
                ["path", "events", "events/s", "CPU s (bench process)", "events/s per core", "p50 ms", "p99 ms"],
                [r.row() for r in results],
                note="CPU s: time.process_time() of this process (gateway or baseline client, all threads); "
                     "the broker and the receiver run in their own processes. Latency: hand-over to the group "
                     "commit → PUBACK / HTTP 200.")


if __name__ == "__main__":
    main()
