"""Certificates re-read: the README's "stop the sink, send, start it again" with the real sink
(a new CA at every start), and the TLS files of a webhook changing under a running sender."""

from __future__ import annotations

import asyncio
import time
import base64
import os
import socket
import ssl
import sys
from pathlib import Path

import trustme
from aiohttp import web

from bench.common import free_port
from gateway import events
from gateway.config import WebhookConfig
from integrators.webhook import WebhookSender, WebhookSettings
from tests.conftest import make_config, sim

# event times are now: the retention purge that runs at start-up drops events older than
# 7 days (with their outbox rows), and a fixed 2023 date raced with it
NOW = time.time_ns() // 1_000_000

DEVICE = sim(33)


class SinkProcess:
    """``python -m firmware_examples.webhook_sink --port P --ca-out F``, exactly as the README runs it."""

    def __init__(self, port: int, ca_out: Path) -> None:
        self.port, self.ca_out = port, ca_out
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "firmware_examples.webhook_sink", "--port", str(self.port),
            "--ca-out", str(self.ca_out), stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
        assert self.proc.stdout is not None
        first = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert first.decode().startswith(f"webhook sink listening on https://localhost:{self.port}/")
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode().rstrip("\n"))

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        await self.proc.wait()
        if self._reader is not None:
            await self._reader

    def payloads(self) -> list[str]:
        """The payloads of the TELEMETRY_DATA lines the sink printed, in arrival order."""
        return [base64.b64decode(line.split('"base64:')[1].split('"')[0]).decode()
                for line in self.lines if line.startswith("TELEMETRY_DATA")]


async def wait_until(condition, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def send(gw, numbers: range) -> None:
    for n in numbers:
        gw.pipeline.emit(events.raw_telemetry(DEVICE, NOW + n, "UDP", f"reading-{n}".encode(), None))


async def test_readme_stop_the_sink_send_start_it_again(tmp_path, start_gateway):
    port = free_port(socket.SOCK_STREAM)
    ca_out = tmp_path / "data" / "sink-ca.pem"
    sink = SinkProcess(port, ca_out)
    await sink.start()
    first_ca = ca_out.read_bytes()
    hook = WebhookConfig(name="local-sink", url=f"https://localhost:{port}/events", ca_file=str(ca_out),
                         event_types=["TELEMETRY_DATA"], retry_schedule=[0.5] * 60)
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [DEVICE])
    try:
        send(gw, range(3))
        await wait_until(lambda: len(sink.payloads()) == 3)
        await sink.stop()  # "Stop the sink for a while and send more"
        send(gw, range(3, 6))
        worker = next(iter(gw.integrations.workers.values()))
        await wait_until(lambda: gw.metrics.retried.labels("local-sink")._value.get() >= 1)
        await sink.start()  # the sink keeps its CA across restarts (its key beside the certificate)
        assert ca_out.read_bytes() == first_ca
        await wait_until(lambda: len(sink.payloads()) == 6)
        assert sink.payloads() == [f"reading-{n}" for n in range(6)]  # "arrive, in order"
        assert worker.sender.tls.loads == 1  # the file did not change: nothing to load again
        # a sink that makes a new CA (its key removed): the gateway reads the new file
        await sink.stop()
        (tmp_path / "data" / "sink-ca-key.pem").unlink()
        retried = gw.metrics.retried.labels("local-sink")._value.get()
        send(gw, range(6, 8))
        await wait_until(lambda: gw.metrics.retried.labels("local-sink")._value.get() > retried)
        await sink.start()
        assert ca_out.read_bytes() != first_ca
        await wait_until(lambda: len(sink.payloads()) == 8)
        assert sink.payloads() == [f"reading-{n}" for n in range(8)]
        assert worker.sender.tls.loads == 2
        await asyncio.sleep(0.2)
        assert gw.store.outbox_depth(worker.handle.id) == 0
    finally:
        await sink.stop()


async def mutual_tls_receivers(server_cas: list[trustme.CA], client_ca: trustme.CA,
                               received: list[tuple[str, int]]) -> tuple[web.AppRunner, list[int]]:
    """HTTPS receivers on loopback, one per server CA, that want a client certificate from
    ``client_ca``; each POST appends (the client certificate's name, the client's port)."""

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert")  # type: ignore[union-attr]
        received.append((peer["subjectAltName"][0][1], request.transport.get_extra_info("peername")[1]))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    for server_ca in server_cas:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ca.issue_cert("localhost").configure_cert(context)
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    return runner, ports


def write_client_cert(client_ca: trustme.CA, name: str, cert_file: Path, key_file: Path) -> None:
    issued = client_ca.issue_cert(f"{name}.example")
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    issued.private_key_pem.write_to_path(str(key_file))


async def test_changed_ca_and_client_certificate_are_used_for_the_next_connection(tmp_path):
    """The CA file and the client certificate/key are read again before each new connection."""
    received: list[tuple[str, int]] = []
    cas = [trustme.CA(), trustme.CA()]
    client_ca = trustme.CA()
    runner, ports = await mutual_tls_receivers(cas, client_ca, received)  # certificates from different CAs
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"

    def client_cert(name: str) -> None:
        write_client_cert(client_ca, name, cert_file, key_file)

    cas[0].cert_pem.write_to_path(str(ca_file))
    client_cert("first")
    sender = WebhookSender(WebhookSettings(url=f"https://localhost:{ports[0]}/", ca_file=str(ca_file),
                                           cert_file=str(cert_file), key_file=str(key_file)))
    try:
        await sender.send("{}", None, "TEST_MESSAGE")
        await sender.send("{}", None, "TEST_MESSAGE")  # same connection, no reload
        assert sender.tls.loads == 1
        # renewed: a new CA for the second receiver, a new client certificate
        cas[1].cert_pem.write_to_path(str(ca_file))
        client_cert("second")
        sender.settings.url = f"https://localhost:{ports[1]}/"  # a new origin: a new connection
        await sender.send("{}", None, "TEST_MESSAGE")
        assert sender.tls.loads == 2
        assert [name for name, _ in received] == ["first.example", "first.example", "second.example"]
        os.remove(ca_file)  # gone: a failed attempt that names the file
        sender.settings.url = f"https://127.0.0.1:{ports[1]}/"
        try:
            await sender.send("{}", None, "TEST_MESSAGE")
        except Exception as exc:  # noqa: BLE001 - checked below
            assert str(exc) == f"webhook unreachable: cannot read ca_file {ca_file}: No such file or directory"
        else:
            raise AssertionError("sent without a CA file")
    finally:
        await sender.close()
        await runner.cleanup()


async def test_a_kept_alive_connection_gives_way_once_the_tls_files_changed(tmp_path, monkeypatch):
    """One receiver, one kept-alive connection: a renewed client certificate is in use within
    TLS_CHECK_SECONDS (0 here), on a new connection; the old one is closed, not reused."""
    from integrators import http11

    monkeypatch.setattr(http11, "TLS_CHECK_SECONDS", 0.0)
    received: list[tuple[str, int]] = []
    server_ca, client_ca = trustme.CA(), trustme.CA()
    runner, (port,) = await mutual_tls_receivers([server_ca], client_ca, received)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"

    def client_cert(name: str) -> None:
        write_client_cert(client_ca, name, cert_file, key_file)

    server_ca.cert_pem.write_to_path(str(ca_file))
    client_cert("first")
    sender = WebhookSender(WebhookSettings(url=f"https://localhost:{port}/", ca_file=str(ca_file),
                                           cert_file=str(cert_file), key_file=str(key_file)))
    try:
        await sender.send("{}", None, "TEST_MESSAGE")
        await sender.send("{}", None, "TEST_MESSAGE")
        client_cert("second")
        await sender.send("{}", None, "TEST_MESSAGE")
        await sender.send("{}", None, "TEST_MESSAGE")
        names = [name for name, _ in received]
        ports = [peer_port for _, peer_port in received]
        assert names == ["first.example", "first.example", "second.example", "second.example"]
        assert ports[0] == ports[1] != ports[2] == ports[3]  # kept alive, then one new connection
        pool = next(iter(sender._pools.values()))
        assert (pool.connections, sender.tls.loads, pool._open) == (2, 2, 1)
    finally:
        await sender.close()
        await runner.cleanup()
