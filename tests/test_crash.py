"""Acked means durable: SIGKILL the gateway while SIMs send CON messages, restart, check."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bench.common import coap_gateway_config
from inspector.sqlite import SqliteStore
from tests.conftest import assert_in_order_per_sim, post_numbered, sim

ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, coap_port: int, hook_url: str, ca_file: str) -> Path:
    return coap_gateway_config(path, coap_port, f"""[[webhooks]]
name = "hook"
url = "{hook_url}"
ca_file = "{ca_file}"
retry_schedule = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
""", name="gateway")


def start(config: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening" in line, line
    return process


def free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigkill_loses_no_acknowledged_message(tmp_path, receiver, ca_file):
    devices = [sim(n) for n in range(25, 31)]
    port = free_udp_port()
    config = write_config(tmp_path, port, receiver.url, ca_file)
    SqliteStore(tmp_path / "gateway.db").upsert_sims(devices)
    process = start(config)
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=post_numbered, args=(port, d, stop, acked, 1.5)) for d in devices]
    for thread in threads:
        thread.start()
    while len(acked) < 300:
        await asyncio.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stop.set()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    acknowledged = set(acked)
    assert len(acknowledged) >= 300

    stored = {m["payload"].decode() for m in SqliteStore(tmp_path / "gateway.db").messages(limit=10**6)}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged messages were lost"

    process = start(config)
    try:
        async def delivered() -> set[str]:
            return {base64.b64decode(e["payload"]["value"]).decode() for e in receiver.events
                    if e["type"] == "TELEMETRY_DATA"}  # (also: LIFECYCLE SIM_ADDED of each SIM)
        for _ in range(200):
            if acknowledged <= await delivered():
                break
            await asyncio.sleep(0.1)
        assert acknowledged <= await delivered()
        assert_in_order_per_sim(receiver.events, devices)  # despite the crash
    finally:
        process.terminate()
        process.wait(10)
