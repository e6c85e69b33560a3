"""The LwM2M side of one gateway, wired: registrations, bootstrap, Send, observations, actions.

``Gateway`` creates one :class:`LwM2MService`, lets it add its resources to the CoAP site and
its fast handlers to the CoAP service, and starts it once the CoAP socket is bound (so stored
registrations can be given a way back to their devices).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from aiocoap import resource
from prometheus_client import Gauge

from ..config import GatewayConfig
from .actions import DeviceActions
from .bootstrap import BootstrapServer
from .client_requests import DeviceRequests
from .objects import ObjectRegistry, default_registry
from .observations import Observations
from .registration import Registration, RegistrationStore, RegistrationWriter
from .resources import FastHandlers, add_resources
from .server import LwM2MServer
from .telemetry import Telemetry
from . import storage
from ..transports.reuseport import worker_for

log = logging.getLogger("nce.lwm2m")


def load_objects(objects_dir: str) -> ObjectRegistry:
    if not objects_dir:
        return default_registry()
    registry = ObjectRegistry.load_default()
    registry.load_dir(objects_dir)
    return registry


class LwM2MService:
    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        config: GatewayConfig = gateway.config
        cfg = self.config = config.lwm2m
        store = gateway.store
        self.objects = load_objects(cfg.objects_dir)
        self.registrations = RegistrationStore(cfg.registration_grace_seconds)
        self.writer = RegistrationWriter(gateway.committer.write, store.connection)
        self.requests = DeviceRequests(self.registrations, timeout=cfg.request_timeout_seconds,
                                       queue_timeout=cfg.queue_timeout_seconds,
                                       awake_seconds=cfg.queue_awake_seconds)
        self.telemetry = Telemetry(gateway.pipeline, self.objects, gateway.metrics.received_by["LWM2M"])
        self.server = LwM2MServer(cfg, gateway.pipeline, gateway.registry, self.registrations, self.writer,
                                  self.requests, self.telemetry, self.objects, gateway.metrics,
                                  config.coap.max_payload)
        self.observations = Observations(self.requests, self.telemetry, gateway.registry,
                                         gateway.committer.write, store.connection)
        self.server.observations = self.observations
        self.bootstrap = BootstrapServer(cfg, self.requests, self.objects, gateway.psks, self.server_uris)
        self.actions = DeviceActions(self, gateway.committer.write, gateway.read, store.connection,
                                     gateway.registry, gateway.pipeline, cfg)
        self._tasks: list[asyncio.Task] = []
        self.expiry_interval = 1.0
        self.slot = getattr(gateway, "slot", None)
        if self.slot is not None and self.slot.several:
            # several workers: a device's datagrams reach the worker its address hashes to; that
            # one holds (restores, expires) its registration and sends its device actions
            self.actions.owns = self._owns_action
            self.actions.registered_elsewhere = lambda iccid: storage.registration_version(
                store.connection(), iccid, int(time.time() * 1000))
        self._gauges(gateway.metrics)

    def _gauges(self, metrics: Any) -> None:
        registry = getattr(metrics, "registry", None)
        if registry is None:
            return
        Gauge("nce_lwm2m_registrations", "LwM2M registrations held", registry=registry).set_function(
            lambda: len(self.registrations))
        Gauge("nce_lwm2m_observations", "LwM2M observations running", registry=registry).set_function(
            lambda: len(self.observations.active))
        ops = Gauge("nce_lwm2m_operations", "LwM2M requests served since start, by operation", ["operation"],
                    registry=registry)
        for name in self.server.counts:
            ops.labels(name).set_function(lambda name=name: self.server.counts[name])

    def _owns_action(self, record: dict[str, Any]) -> bool:
        if self.registrations.of(record["iccid"]) is not None:
            return True
        return record["mode"] == "SEND_WHEN_ACTIVE" and bool(record.get("ip")) and self._mine(record["ip"])

    def _mine(self, ip: str) -> bool:
        return self.slot is None or not self.slot.several or worker_for(ip, self.slot.count) == self.slot.index

    # wiring -----------------------------------------------------------------------------

    def add_resources(self, site: resource.Site) -> None:
        add_resources(site, self.server, self.bootstrap)

    def install_fast_handlers(self, coap_service: Any) -> None:
        FastHandlers(self.server, coap_service).install()

    def server_uris(self) -> tuple[str, str]:
        """(coap URI, coaps URI) written into Security objects at bootstrap."""
        cfg = self.config
        coap = cfg.server_uri
        if not coap:
            bind = self.gateway.config.coap.bind
            host = "127.0.0.1" if bind in ("", "0.0.0.0", "::") else bind
            coap = f"coap://{host}:{self.gateway.coap_port or self.gateway.config.coap.port}"
        coaps = cfg.dtls_server_uri or getattr(getattr(self.gateway.config, "coaps", None), "public_url", "")
        if not coaps:
            host = urlsplit(coap).hostname or "127.0.0.1"
            gw = self.gateway
            port = getattr(gw, "coaps_port", 0) or getattr(getattr(gw.config, "coaps", None), "port", 5684)
            coaps = f"coaps://{host}:{port}"
        return coap, coaps

    # life cycle -------------------------------------------------------------------------

    async def start(self, context: Any, interface: Any) -> None:
        """Attach to the running CoAP side and restore stored registrations."""
        self.requests.context = context
        self.requests.plain_interface = interface
        rows = await self.gateway.read(self._load)
        restored = self.restore(rows, interface)
        self.writer.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.server.expiry_loop(self.expiry_interval), name="lwm2m-expiry"),
                       loop.create_task(self.actions.run(), name="lwm2m-actions")]
        log.info("LwM2M server started", extra={"event": "lwm2m_started", "registrations": restored})

    def _load(self) -> list[tuple]:
        self.observations.load()
        return storage.load_registrations(self.gateway.store.connection())

    def restore(self, rows: list[tuple], interface: Any) -> int:
        count = 0
        for row in rows:
            ip = row[9]
            if ip and not self._mine(ip):
                continue  # held by the worker this device's datagrams reach
            self.registrations.add(self._from_row(row))
            count += 1
        return count

    def _from_row(self, row: tuple) -> Registration:
        (reg_id, iccid, lifetime, version, binding, queue, sms, links, transport, ip, port, registered_ms,
         updated_ms, expires_ms) = row
        sim = self.gateway.registry.sim_for_iccid(iccid)
        iccid = sim.iccid if sim is not None else iccid
        remote = (ip, port) if transport == "coap" else None  # DTLS: wait for the device's next update
        return Registration(reg_id, iccid, lifetime, version, binding, bool(queue), sms,
                            self.registrations.intern_links(links), remote, expires_ms)

    async def registration_of(self, iccid: str) -> Registration | None:
        """The device's registration: held here, or (several workers) by another worker, from the store."""
        reg = self.registrations.of(iccid)
        if reg is not None or self.slot is None or not self.slot.several:
            return reg
        row = await self.gateway.read(lambda: storage.load_registration(self.gateway.store.connection(), iccid))
        return None if row is None or row[13] < int(time.time() * 1000) else self._from_row(row)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.actions.stop()
        self.observations.stop_all()
        for task in list(self.bootstrap.running.values()):
            task.cancel()
        await self.writer.stop()

    def status(self) -> dict[str, Any]:
        return {"registrations": len(self.registrations), "observations": len(self.observations.active),
                **self.server.counts, "time": time.time()}
