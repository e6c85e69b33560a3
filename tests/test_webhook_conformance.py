"""Webhook delivery against HTTP receivers this project did not write (RFC 9112 framing).

Each receiver gets events of several SIMs; in each case every event arrives, the order per SIM
is kept, and the gateway's delivered/retried/failed counters agree with what the receiver saw:

* Python's ``http.server`` over TLS (HTTP/1.0: no Content-Length, the answer ends when the
  server closes the connection);
* nginx from Debian serving HTTPS with ``keepalive_requests 3`` and ``keepalive_timeout 1s``
  (it closes kept-alive connections after 3 answers and when idle), proxying to a recorder;
* an aiohttp server answering with chunked bodies and with 204;
* a receiver that closes the connection halfway through its answer (failed attempts, retried);
* a receiver answering something that is not HTTP (failed attempts, the reason in the log and
  in the ERROR event; nothing lost, delivered once the receiver is fixed and restarted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from gateway import events
from gateway.app import Gateway
from integrators.base import INTEGRATION_FAILED
from tests.conftest import make_config, sim
from gateway.config import WebhookConfig

# event times are now: the retention purge that runs at start-up drops events older than
# 7 days (with their outbox rows), and a fixed 2023 date raced with it
NOW = time.time_ns() // 1_000_000

DEVICES = [sim(30), sim(31), sim(32)]


def send(gw: Gateway, count: int, start: int = 0) -> None:
    """``count`` TELEMETRY_DATA events per SIM, payload ``"<sim>-<n>"``, SIMs interleaved."""
    for n in range(start, start + count):
        for device in DEVICES:
            gw.pipeline.emit(events.raw_telemetry(device, NOW + n, "UDP",
                                                  f"{device.iccid[-2:]}-{n:03d}".encode(), None))


def payloads(received: list[dict[str, Any]], iccid: str) -> list[str]:
    import base64
    return [base64.b64decode(e["payload"]["value"]).decode() for e in received
            if e["type"] == "TELEMETRY_DATA" and e["device"]["iccid"] == iccid]


def assert_all_in_order(received: list[dict[str, Any]], count: int) -> None:
    for device in DEVICES:
        assert payloads(received, device.iccid) == [f"{device.iccid[-2:]}-{n:03d}" for n in range(count)]


def counter(gw: Gateway, name: str, integration: str = "hook") -> float:
    """``nce_delivery_<name>_total`` (delivered, retried, failed) or ``nce_<name>_total``."""
    full = name if name.startswith("webhook_") else f"delivery_{name}"
    match = re.search(rf'^nce_{full}_total{{integration="{integration}"}} (\S+)$',
                      gw.metrics.render().decode(), re.M)
    return float(match.group(1)) if match else 0.0


async def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def drained(gw: Gateway) -> None:
    """Every outbox row of the integration deleted (delivered and recorded)."""
    worker = next(iter(gw.integrations.workers.values()))
    await wait_for(lambda: gw.store.outbox_depth(worker.handle.id) == 0)


def hook(url: str, ca_file: str, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {"name": "hook", "url": url, "ca_file": ca_file, "event_types": ["TELEMETRY_DATA"],
                              "retry_schedule": [0.05] * 20}
    values.update(overrides)
    return WebhookConfig(**values)


@pytest.fixture
def server_cert(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = str(tmp_path / "server.pem"), str(tmp_path / "server.key")
    cert.private_key_and_cert_chain_pem.write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    return cert_file, key_file


# Python's http.server: HTTP/1.0, close-delimited answers ---------------------------------------

class _Http10Handler(BaseHTTPRequestHandler):
    """The standard library's handler as a newcomer writes it: no Content-Length in the answer."""

    received: list[dict[str, Any]]
    connections: list[int]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"thanks\n")

    def log_message(self, *args: Any) -> None:
        pass


async def test_python_http_server_http10_over_tls(tmp_path, ca_file, server_cert, start_gateway):
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Http10Handler,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*server_cert)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://localhost:{httpd.server_address[1]}/events"
        gw = await start_gateway(make_config(tmp_path, webhooks=[hook(url, ca_file)]), DEVICES)
        send(gw, 10)
        await wait_for(lambda: len(received) >= 30)
        await drained(gw)
        assert_all_in_order(received, 10)
        assert len(received) == 30
        assert (counter(gw, "delivered"), counter(gw, "retried"), counter(gw, "failed")) == (30, 0, 0)
        assert counter(gw, "webhook_connections") == 30  # one per answer: HTTP/1.0 closes each
    finally:
        httpd.shutdown()
        httpd.server_close()


# nginx: HTTPS, keepalive_requests 3, keepalive_timeout 1s -------------------------------------

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format conformance '$connection $connection_requests $status $request_length';
    access_log {dir}/access.log conformance;
    keepalive_requests 3;
    keepalive_timeout 1s;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


async def recorder() -> tuple[web.AppRunner, int, list[dict[str, Any]]]:
    """A plain-HTTP aiohttp app that records every event body it is given."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response(status=200, text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], received  # type: ignore[union-attr]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install -y nginx; .ci/run does)")
async def test_nginx_closing_kept_alive_connections(tmp_path, ca_file, server_cert, start_gateway):
    from bench.common import free_port
    import socket

    runner, upstream, received = await recorder()
    port = free_port(socket.SOCK_STREAM)
    work = tmp_path / "nginx"
    work.mkdir()
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, port=port, upstream=upstream,
                                                       cert=server_cert[0], key=server_cert[1]))
    proc = subprocess.Popen([str(NGINX), "-p", str(work), "-c", str(work / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.02)
        gw = await start_gateway(make_config(tmp_path, webhooks=[hook(f"https://localhost:{port}/events", ca_file)]),
                                 DEVICES)
        send(gw, 10)
        await wait_for(lambda: len(received) >= 30)
        await drained(gw)
        await asyncio.sleep(1.6)  # nginx closes the idle kept-alive connections (keepalive_timeout 1s)
        send(gw, 10, start=10)
        await wait_for(lambda: len(received) >= 60)
        await drained(gw)
        assert_all_in_order(received, 20)
        assert len(received) == 60
        # no closed connection counted as a failed attempt
        assert (counter(gw, "delivered"), counter(gw, "retried"), counter(gw, "failed")) == (60, 0, 0)
        log = [line.split() for line in (work / "access.log").read_text().splitlines()]
        assert [status for _, _, status, _ in log] == ["200"] * 60
        per_connection: dict[str, int] = {}
        for connection, requests, _, _ in log:
            per_connection[connection] = max(per_connection.get(connection, 0), int(requests))
        assert max(per_connection.values()) == 3  # connections were reused, up to nginx's limit
        assert len(per_connection) >= 20  # 60 requests, at most 3 per connection
        assert counter(gw, "webhook_connections") == len(per_connection)
    finally:
        proc.terminate()
        proc.wait(10)
        await runner.cleanup()


# aiohttp: chunked answers and 204 ------------------------------------------------------------

async def test_aiohttp_chunked_and_204_answers(tmp_path, ca, ca_file, start_gateway):
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        event = json.loads(await request.read())
        received.append(event)
        if len(received) % 2:
            return web.Response(status=204)
        response = web.StreamResponse(status=202)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in (b'{"accepted":', b' true', b"}"):
            await response.write(piece)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        url = f"https://localhost:{site._server.sockets[0].getsockname()[1]}/events"  # type: ignore[union-attr]
        gw = await start_gateway(make_config(tmp_path, webhooks=[hook(url, ca_file)]), DEVICES)
        send(gw, 10)
        await wait_for(lambda: len(received) >= 30)
        await drained(gw)
        assert_all_in_order(received, 10)
        assert len(received) == 30
        assert (counter(gw, "delivered"), counter(gw, "retried"), counter(gw, "failed")) == (30, 0, 0)
        assert counter(gw, "webhook_connections") <= len(DEVICES)  # kept alive across chunked and 204 answers
    finally:
        await runner.cleanup()


# raw receivers: an answer cut halfway, an answer that is not HTTP -----------------------------

class RawReceiver:
    """A TCP receiver that reads POSTs and answers with ``answer(n)`` for the n-th request (0-based);
    it closes the connection when the answer says ``close``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                index = len(self.requests)
                self.requests.append(json.loads(await reader.readexactly(length)))
                data, close = self.answer(index)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_answer_cut_halfway_is_a_failed_attempt_and_retried(tmp_path, start_gateway):
    cut = {3, 4, 10, 17}  # these requests get half an answer, then the connection closes

    def answer(index: int) -> tuple[bytes, bool]:
        if index in cut:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"half\":", True
        return OK, False

    receiver = RawReceiver(answer)
    await receiver.start()
    try:
        gw = await start_gateway(make_config(tmp_path, webhooks=[
            hook(f"http://127.0.0.1:{receiver.port}/events", None)]), DEVICES)
        send(gw, 10)
        await wait_for(lambda: len(receiver.requests) >= 34)
        await drained(gw)
        # each cut answer was a failed attempt: the receiver saw that event twice, in order
        assert len(receiver.requests) == 34
        complete = [e for i, e in enumerate(receiver.requests) if i not in cut]
        assert_all_in_order(complete, 10)
        assert {receiver.requests[i]["id"] for i in cut} <= {e["id"] for e in complete}
        assert (counter(gw, "delivered"), counter(gw, "retried"), counter(gw, "failed")) == (30, 4, 0)
    finally:
        receiver.close()


NOT_HTTP = ("webhook request failed: the answer is not valid HTTP (Expected HTTP/, RTSP/ or ICE/); "
            "it began with b'SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n'")


async def test_receiver_that_is_not_http_fails_clearly_and_loses_nothing(tmp_path, caplog, start_gateway):
    fixed = False

    def answer(index: int) -> tuple[bytes, bool]:
        return (OK, False) if fixed else (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", True)

    receiver = RawReceiver(answer)
    await receiver.start()
    try:
        gw = await start_gateway(make_config(tmp_path, webhooks=[
            hook(f"http://127.0.0.1:{receiver.port}/events", None, retry_schedule=[0.05])]), DEVICES)
        with caplog.at_level(logging.WARNING, logger="nce.delivery"):
            send(gw, 3)
            worker = next(iter(gw.integrations.workers.values()))
            await wait_for(lambda: worker.handle.state == INTEGRATION_FAILED)
        reasons = {r.getMessage().split(": ", 1)[1] for r in caplog.records if "failed (attempt" in r.getMessage()}
        assert reasons == {NOT_HTTP}
        await gw.committer.flush()
        (error,) = gw.store.events(event_type="ERROR")
        assert error["error"]["message"] == "CloudIntegrator[IntegrationDisabled]"
        assert error["error"]["description"].endswith(f"last error: {NOT_HTTP}")
        assert counter(gw, "delivered") == 0 and counter(gw, "failed") == 1
        attempts = len(receiver.requests)

        fixed = True
        await gw.integrations.restart(worker.handle.id)
        await wait_for(lambda: len(receiver.requests) >= attempts + 9)
        await drained(gw)
        assert_all_in_order(receiver.requests[attempts:], 3)
        assert len(receiver.requests) == attempts + 9
        assert counter(gw, "delivered") == 9
    finally:
        receiver.close()
