"""Webhook timeouts from the config: connect, TLS handshake and answer.

Three receivers that hang at a different step: a listening socket whose accept queue is full
(the kernel drops the SYN, the connect never completes), a TCP server that accepts but never
speaks TLS, a server that reads the request and never answers. In each, every attempt fails
after the configured timeout with the reason in the log and in the ERROR event, attempts are
retried on schedule, and once the receiver works (an aiohttp server on the same port) and the
integration is restarted, every event arrives, in order per SIM, none twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme
from aiohttp import web

from integrators.base import INTEGRATION_FAILED
from tests.conftest import make_config
from tests.test_webhook_conformance import DEVICES, assert_all_in_order, counter, drained, hook, send, wait_for

TIMEOUTS = {"connect_timeout_seconds": 0.3, "tls_timeout_seconds": 0.3, "timeout_seconds": 0.3}


class Working:
    """The fixed receiver: aiohttp on the port the broken one held, recording every event."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None

    async def start(self, port: int, context: ssl.SSLContext | None) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.received.append(json.loads(await request.read()))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port, ssl_context=context, reuse_address=True).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def silent_server(read: bool) -> tuple[asyncio.Server, int, list[asyncio.StreamWriter]]:
    """Accepts connections and never writes a byte (reads the request when ``read``)."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if read:
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], held


async def run_case(tmp_path, start_gateway, caplog, *, scheme: str, ca_file: str | None, port: int,
                   expected: str, fix: Callable[[], Awaitable[Working]]) -> None:
    """Three events per SIM to a receiver that hangs; every attempt a failure naming ``expected``;
    then ``fix()`` and a restart: everything arrives once, in order."""
    config = make_config(tmp_path, webhooks=[hook(f"{scheme}://localhost:{port}/events", ca_file,
                                                  retry_schedule=[0.05, 0.05], **TIMEOUTS)])
    gw = await start_gateway(config, DEVICES)
    worker = next(iter(gw.integrations.workers.values()))
    with caplog.at_level(logging.WARNING, logger="nce.delivery"):
        send(gw, 3)
        await wait_for(lambda: worker.handle.state == INTEGRATION_FAILED, timeout=30)
    failures = [r for r in caplog.records if r.getMessage().startswith("delivery to hook failed (attempt")]
    assert failures, "no failed attempt logged"
    assert {r.getMessage().split("): ", 1)[1] for r in failures} == {expected}
    assert sorted({r.attempt for r in failures}) == [1, 2, 3]  # first try and both retries
    await gw.committer.flush()
    (error,) = gw.store.events(event_type="ERROR")
    assert error["error"]["message"] == "CloudIntegrator[IntegrationDisabled]"
    assert error["error"]["description"].endswith(f"last error: {expected}")
    assert (counter(gw, "delivered"), counter(gw, "failed")) == (0, 1)
    assert counter(gw, "retried") >= 2

    working = await fix()
    try:
        await gw.integrations.restart(worker.handle.id)
        await wait_for(lambda: len(working.received) >= 9)
        await drained(gw)
        assert len(working.received) == 9  # nothing lost, nothing twice
        assert_all_in_order(working.received, 3)
        assert counter(gw, "delivered") == 9
    finally:
        await working.close()


async def test_connect_timeout_a_listener_that_never_accepts(tmp_path, start_gateway, caplog):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)  # the accept queue is now full
    probe = socket.socket()
    probe.settimeout(0.2)
    with pytest.raises(TimeoutError):  # the peer really drops SYNs: a connect cannot complete
        probe.connect(("127.0.0.1", port))
    probe.close()

    async def fix() -> Working:
        filler.close()
        listener.close()
        working = Working()
        await working.start(port, None)
        return working

    try:
        await run_case(tmp_path, start_gateway, caplog, scheme="http", ca_file=None, port=port, fix=fix,
                       expected=f"webhook request failed: no TCP connection to localhost:{port} within 0.3 s")
    finally:
        filler.close()
        listener.close()


async def test_tls_timeout_a_server_that_never_speaks_tls(tmp_path, ca: trustme.CA, ca_file, start_gateway, caplog):
    server, port, held = await silent_server(read=True)

    async def fix() -> Working:
        server.close()
        for writer in held:
            writer.close()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(context)
        working = Working()
        await working.start(port, context)
        return working

    try:
        await run_case(tmp_path, start_gateway, caplog, scheme="https", ca_file=ca_file, port=port, fix=fix,
                       expected=f"webhook request failed: TLS handshake with localhost:{port} did not finish "
                                "within 0.3 s")
    finally:
        server.close()


async def test_answer_timeout_a_server_that_reads_and_never_answers(tmp_path, start_gateway, caplog):
    server, port, held = await silent_server(read=True)

    async def fix() -> Working:
        server.close()
        for writer in held:
            writer.close()
        working = Working()
        await working.start(port, None)
        return working

    try:
        await run_case(tmp_path, start_gateway, caplog, scheme="http", ca_file=None, port=port, fix=fix,
                       expected="webhook request failed: no answer within 0.3 s")
    finally:
        server.close()
