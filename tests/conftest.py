"""Shared fixtures: a gateway on ephemeral ports, a real HTTPS webhook receiver with a test CA."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from gateway.app import Gateway
from gateway.config import GatewayConfig, WebhookConfig, load_config
from inspector.records import Sim

# gateways the tests start as subprocesses (`nce-gateway serve`) run one process, as before
# the [process] section existed; tests/test_workers.py asks for more
os.environ.setdefault("NCE_PROCESS_WORKERS", "1")

ICCIDS = [f"89882806600000000{i:02d}" for i in range(10, 40)]


def sim(n: int, status: str = "Enabled") -> Sim:
    """Test SIM number n (10..39): ICCID 8988280660000000010.., source IP 127.0.0.n."""
    return Sim(iccid=f"89882806600000000{n:02d}", imsi=f"9014051000000{n:02d}", ip_address=f"127.0.0.{n}",
               label=f"test-{n}", status=status)


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """A CLI run inside a test (gateway/logs.py setup_logging) points the root handler at that
    test's captured stderr; later tests would log into the closed capture ("Logging error")."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def no_abandoned_integration_worker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test in which a worker did not stop within its time and was abandoned
    (integrators.manager.stop_worker): that is a hang in a sender's stop, which the timeout
    only hides. Tests that abandon one on purpose carry ``@pytest.mark.abandons_worker``."""
    from integrators import manager

    before = len(manager.ABANDONED)
    yield
    abandoned = manager.ABANDONED[before:]
    if abandoned and request.node.get_closest_marker("abandons_worker") is None:
        pytest.fail(f"integration worker(s) abandoned because their stop hung: {', '.join(abandoned)}")


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@dataclass
class Receiver:
    """A real HTTPS webhook endpoint: records what arrives; can be made to fail."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    status: int = 200
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: int = 0  # every POST, answered 200 or not

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async def _wait() -> None:
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.events

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]


@pytest.fixture
async def receiver(ca: trustme.CA) -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        rec.attempts += 1
        if rec.status != 200:
            return web.Response(status=rec.status)
        rec.requests.append((str(request.rel_url), dict(request.headers)))
        rec.events.append(json.loads(body))
        rec.arrived.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    rec.url = f"https://localhost:{port}/hook"
    yield rec
    await runner.cleanup()


def make_config(tmp_path: Path, **sections: Any) -> GatewayConfig:
    """A config on ephemeral ports with a store in tmp_path."""
    config = load_config(environ={})
    config.store.path = str(tmp_path / "gateway.db")
    if os.environ.get("NCE_TEST_STORE") == "postgresql":  # the store-facing suite on PostgreSQL
        import pg_support
        config.store.url = pg_support.fresh_database()
    config.store.synchronous = "normal"
    config.udp.bind = config.coap.bind = config.coaps.bind = "127.0.0.1"
    config.udp.port = config.coap.port = config.coaps.port = config.api.port = 0
    config.registry.poll_interval_seconds = 0.2
    config.process.workers = 1  # one process unless a test asks for more (tests/test_workers.py)
    config.targets.allow_loopback = True  # the receivers of the tests are on loopback
    config.connectivity.announce_new_sims = False  # on in tests/test_sim_announce.py
    for name, values in sections.items():
        if name == "webhooks":
            config.webhooks = values
        else:
            for key, value in values.items():
                setattr(getattr(config, name), key, value)
    return config


def webhook(receiver: Receiver, ca_file: str, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {"name": "hook", "url": receiver.url, "ca_file": ca_file}
    values.update(overrides)
    return WebhookConfig(**values)


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Any]]:
    """Start gateways (stopped at the end of the test); SIMs are written to the store first."""
    started: list[Gateway] = []

    async def _start(config: GatewayConfig, sims: list[Sim] | None = None) -> Gateway:
        gateway = Gateway(config)
        if sims:
            gateway.store.upsert_sims(sims)
        await gateway.start()
        started.append(gateway)
        return gateway

    yield _start
    for gateway in started:
        await gateway.stop()


def post_numbered(port: int, device: Sim, stop: Any, acked: list[str], timeout: float = 1.0) -> None:
    """Send CON POSTs ``<iccid>-<n>`` (n = 0, 1, ...) from the SIM's address until ``stop`` is
    set; the payloads answered 2.04 go to ``acked`` (tests that kill a gateway under load)."""
    from firmware_examples.coap_client import CoapClient

    with CoapClient(("127.0.0.1", port), device.ip_address) as client:
        n = 0
        while not stop.is_set():
            payload = f"{device.iccid}-{n}"
            if client.post("/", payload.encode(), timeout=timeout).code == "2.04":
                acked.append(payload)
            n += 1


def assert_in_order_per_sim(events: list[dict[str, Any]], devices: list[Sim]) -> None:
    """The numbered payloads of ``post_numbered`` arrived in order per SIM (repeats of the last
    unconfirmed ones, delivered again after a crash, allowed)."""
    import base64

    for device in devices:
        numbers = [int(base64.b64decode(e["payload"]["value"]).decode().rsplit("-", 1)[1]) for e in events
                   if e["type"] == "TELEMETRY_DATA" and e["device"]["iccid"] == device.iccid]
        deduplicated = list(dict.fromkeys(numbers))
        assert deduplicated == sorted(deduplicated), device.iccid
