"""Whole-path benchmark: CoAP uplink plus delivery, per second of gateway CPU.

    python -m bench.whole_path [--seconds 8] [--rate 1000] [--sims 200] [--http10-rate 200]

What a gateway core is for: a device's CoAP CON POST arrives, is committed and acknowledged,
becomes a TELEMETRY_DATA event, and is delivered to the integration. The gateway runs as its
own process (``nce-gateway serve``, default durability ``synchronous = "full"``), loaded at a
fixed rate by the CoAP load generator in this process, each run against one target:

* baseline in the same run: the gateway with no integration (uplink only);
* a kept-alive HTTPS webhook (aiohttp receiver in its own process);
* the same path with aiohttp's client as the webhook sender (the library alternative);
* an HTTPS receiver on ``http.server`` (HTTP/1.0: a TCP connection and TLS handshake per event),
  at its own lower rate;
* Mosquitto with mutual TLS, one MQTT connection (the AWS IoT Core integration);
* the same path with paho-mqtt as the sender (the library alternative).

A run's figure is the messages the load generator had acknowledged divided by the gateway's CPU
seconds (all threads, from /proc) from the start of the load until the outbox was empty again,
i.e. until every event of the run had been delivered.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from firmware_examples.loadgen import run_coap_load, source_ips
from inspector.records import Sim
from inspector.sqlite import SqliteStore

from .common import child, coap_gateway_config, free_port, print_table, process_cpu, receiver_tls
from .mqtt_broker import Mosquitto, Pki


def bench_sims(ips: list[str]) -> list[Sim]:
    return [Sim(iccid=f"8988280690{i:09d}", imsi=f"90140590{i:07d}", ip_address=ip) for i, ip in enumerate(ips)]


def outbox_depth(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def integration_states(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return [row[0] for row in conn.execute("SELECT state FROM integrations")]


def run_one(directory: Path, label: str, integration: str, ips: list[str], *, seconds: float, rate: float,
            window: int, sender: str = "own") -> tuple:
    """One gateway process with ``integration`` (a TOML section, or ""), loaded for ``seconds``."""
    run_dir = directory / f"run-{len(list(directory.glob('run-*')))}"
    run_dir.mkdir()
    port = free_port()
    config = coap_gateway_config(run_dir, port, '[log]\nlevel = "WARNING"\n' + integration)
    db = run_dir / "bench.db"
    SqliteStore(db).upsert_sims(bench_sims(ips))
    args = ["-m", "bench.whole_path", "serve", str(config), sender]
    with child(args, ready="listening") as process:
        run_coap_load(("127.0.0.1", port), ips, duration=1.0, window=window, rate=rate)  # warm-up, connections up
        wait_drained(db, 60)
        cpu0, wall0 = process_cpu(process.pid), time.perf_counter()
        stats = run_coap_load(("127.0.0.1", port), ips, duration=seconds, window=window, rate=rate)
        drained = wait_drained(db, 300)
        cpu, wall = process_cpu(process.pid) - cpu0, time.perf_counter() - wall0
        states = integration_states(db)
    failed = sum(stats.failed.values())
    note = "" if drained else " (outbox not drained in time)"
    if any(state == "INTEGRATION_FAILED" for state in states):
        note += " (integration failed)"
    return (label + note, stats.acknowledged, failed, stats.acknowledged / wall, cpu,
            stats.acknowledged / cpu if cpu else float("nan"))


def wait_drained(db: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if outbox_depth(db) == 0:
            return True
        time.sleep(0.05)
    return False


def webhook_section(name: str, url: str, ca_file: str) -> str:
    return f"""
[[webhooks]]
name = "{name}"
url = "{url}"
ca_file = "{ca_file}"
event_types = ["TELEMETRY_DATA"]
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="load per run")
    parser.add_argument("--rate", type=float, default=1000.0, help="CoAP messages per second offered")
    parser.add_argument("--http10-rate", type=float, default=200.0,
                        help="messages per second offered in the run to the HTTP/1.0 receiver")
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--window", type=int, default=128, help="requests in flight at most")
    args = parser.parse_args(argv)
    ips = source_ips(args.sims)
    load = dict(seconds=args.seconds, rate=args.rate, window=args.window)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rows.append(run_one(directory, "baseline: uplink only, no integration", "", ips, **load))

        ca_file, cert_file, key_file = receiver_tls(directory)
        port = free_port(socket.SOCK_STREAM)
        hook = webhook_section("bench-hook", f"https://localhost:{port}/hook", ca_file)
        with child(["-m", "bench.servers", "webhook", str(port), cert_file, key_file]):
            rows.append(run_one(directory, "+ HTTPS webhook, HTTP/1.1 kept alive (own client)", hook, ips, **load))
            rows.append(run_one(directory, "+ same, aiohttp's client as the sender", hook, ips, sender="aiohttp",
                                **load))
        port = free_port(socket.SOCK_STREAM)
        hook = webhook_section("bench-http10", f"https://localhost:{port}/hook", ca_file)
        with child(["-m", "bench.servers", "http10", str(port), cert_file, key_file]):
            rows.append(run_one(directory, f"+ HTTPS http.server, HTTP/1.0 (own client; {args.http10_rate:g}/s)",
                                hook, ips, **{**load, "rate": args.http10_rate}))
            rows.append(run_one(directory, f"+ same, aiohttp's client as the sender ({args.http10_rate:g}/s)",
                                hook, ips, sender="aiohttp", **{**load, "rate": args.http10_rate}))

        pki = Pki(directory / "pki")
        (directory / "broker").mkdir()
        broker = Mosquitto(directory / "broker", pki, extra="max_inflight_messages 100\nmax_queued_messages 0\n")
        broker.start()
        try:
            files = pki.client("gateway")
            aws = f"""
[[aws_integrations]]
name = "bench-aws"
mode = "mqtt"
host = "localhost"
port = {broker.port}
ca_file = "{pki.ca_file}"
cert_file = "{files.cert_file}"
key_file = "{files.key_file}"
client_id = "bench-whole-path"
publish_rate_limit = 0
event_types = ["TELEMETRY_DATA"]
"""
            rows.append(run_one(directory, "+ Mosquitto, MQTT 5, mutual TLS (own client)", aws, ips, **load))
            rows.append(run_one(directory, "+ same, paho-mqtt as the sender", aws, ips, sender="paho", **load))
        finally:
            broker.stop()

    base = rows[0][5]
    table = [(*row, f"{row[5] / base:.2f}" if row[5] == row[5] else "-") for row in rows]
    print_table(f"Whole path: CoAP CON POST → commit → ack → delivery; {args.rate:g} msgs/s offered for "
                f"{args.seconds:g} s, {args.sims} SIMs, {os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.1f}",
                ["gateway with", "acked", "failed", "msgs/s", "gateway CPU s", "msgs per gateway CPU-s",
                 "÷ baseline"], table,
                note="msgs per gateway CPU-s: acknowledged uplink messages, each also delivered (the outbox was "
                     "empty at the end), per second of the gateway process's CPU (all threads) from the start of "
                     "the load until the outbox was empty. The load generator, receivers and broker run in their "
                     "own processes.")


class PahoSender:
    """The AWS MQTT sender as it would be on paho-mqtt (the library alternative to
    ``integrators/mqtt.py``): one connection, QoS 1, up to 100 in flight, delivered on PUBACK.
    paho runs its network loop in its own thread; PUBACKs come back to the event loop through
    ``call_soon_threadsafe``."""

    needs_device = False

    def __init__(self, config: dict, context: object = None) -> None:
        import asyncio

        import paho.mqtt.client as paho

        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, asyncio.Future] = {}
        self.connected = asyncio.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=config.get("client_id") or "bench-paho",
                                  protocol=paho.MQTTv5)
        self.client.tls_set(ca_certs=config.get("ca_file"), certfile=config["cert_file"], keyfile=config["key_file"])
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = lambda *a: self.loop.call_soon_threadsafe(self.connected.set)
        self.client.on_publish = lambda c, u, mid, rc, props: self.loop.call_soon_threadsafe(self._done, mid, rc)
        self.client.connect_async(config["host"], int(config.get("port") or 8883), keepalive=60)
        self.client.loop_start()

    def _done(self, mid: int, rc: object) -> None:
        future = self.pending.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(rc)

    async def send(self, body: str, device: object, event_type: str) -> None:
        from integrators.aws_common import topic_for

        await self.connected.wait()
        info = self.client.publish(topic_for(event_type, body), body.encode(), qos=1)
        future = self.loop.create_future()
        self.pending[info.mid] = future
        await future

    async def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def serve(config: str, sender: str) -> None:
    """The gateway child: ``nce-gateway serve``, with aiohttp's or paho's client as the sender
    when asked (the library alternatives measured on the same path)."""
    from integrators import manager

    if sender == "aiohttp":
        from .delivery import AiohttpSender

        manager.SENDERS["webhook"] = lambda config, context=None: AiohttpSender(config, context)
    elif sender == "paho":
        manager.SENDERS["aws_mqtt"] = lambda config, context=None: PahoSender(config, context)
    from gateway.cli import main as cli

    sys.exit(cli(["serve", "--config", config]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        main()
