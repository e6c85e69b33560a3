"""One running gateway: the store, the registry, the pipeline, transports, delivery and the API.

``Gateway`` wires the parts together and owns their life cycle; no part knows how the others
are built. Tests start a Gateway on ephemeral ports (port 0) and read the bound ports back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

from aiocoap.protocol import Context
from aiohttp import web
from prometheus_client import Gauge

from inspector import bindings as bindings_sql
from inspector import geofences as geofences_sql
from inspector import os_state
from inspector import savings as savings_sql
from inspector.committer import GroupCommitter
from inspector.sqlite import SqliteStore  # noqa: F401 (annotations)
from integrators.manager import IntegrationManager

from .api.app import build_api
from .coap_site import build_site
from .connectivity.disconnect import open_disconnect_client
from .connectivity.radius import RadiusAccountingServer, start_radius
from .connectivity.service import ConnectivityService
from .control import ControlServer
from .controller import DeviceController
from .duties import Duties
from .endpoints import EndpointSwitch
from .follow import StoreFollower
from .locator.service import Locator
from .onboarding import BootstrapResource
from .psk import PskService
from .templates import TemplateService
from .config import GatewayConfig
from .identity import SimRegistry
from .lwm2m.service import LwM2MService
from . import runtime
from .metrics import Metrics
from .pipeline import Pipeline
from .plugins import PluginHost, PluginTranslator
from .transports.block1 import Block1Limits, bound_block1
from .sms.service import SmsService
from .transports.coap import CoapService, CoapUdpInterface, start_coap_udp
from .transports.coaps import CoapDtlsInterface, start_coaps
from .transports.dtls.prometheus import DtlsCollector
from .transports.udp import UdpUplink
from .workers import inherited, slot_from_environ

log = logging.getLogger("nce.gateway")
T = TypeVar("T")


@contextlib.contextmanager
def listening(what: str, bind: str, port: int) -> Iterator[None]:
    """Name the socket in a bind error: 'Address already in use' alone does not say which."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, f"{what} {bind}:{port}: {exc.strerror or exc}") from None


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.slot = slot_from_environ()  # worker k of N under a supervisor, else 0 of 1
        self.metrics = Metrics()
        runtime.register_gc_metrics(self.metrics.registry)
        if self.slot.several:
            Gauge("nce_worker_restarts", "How often the supervisor restarted this worker's slot", ["worker"],
                  registry=self.metrics.registry).labels(str(self.slot.index)).set(
                int(os.environ.get("NCE_WORKER_RESTARTS", "0")))
        self.metrics.registry.register(DtlsCollector(lambda: self.coaps.dtls if self.coaps is not None else None))
        self.store = config.store.open()
        self._readers = ThreadPoolExecutor(4, thread_name_prefix="store-reader")
        self.committer = GroupCommitter(self.store, max_batch=config.store.max_batch,
                                        observers=[self.metrics])
        self.registry = SimRegistry(self.store)
        self.psks = PskService(self.store, write=self.committer.write, read=self.read,
                               regenerate_after_seconds=config.psk.regenerate_after_seconds,
                               generated_length=config.psk.generated_length,
                               grace_seconds=config.psk.rotation_grace_seconds)
        self.follower = StoreFollower(self.read, config.registry.poll_interval_seconds)
        self.integrations = IntegrationManager(self.store, read=self.read, write=self.committer.write,
                                               emit=self._emit, metrics=self.metrics,
                                               targets=config.targets.policy())
        self.committer.observers.append(self.integrations)
        # work that must run in one process only, whoever holds its lease (gateway/duties.py)
        self.duties = Duties(self.store, config.process.lease_seconds, self.metrics.registry)
        # other processes deliver too: this one's workers (supervisor), or other gateways on a
        # shared database (PostgreSQL, other hosts)
        self.shared = self.slot.several or self.store.shared
        self.integrations.shared = self.shared
        self.integrations.claim = lambda integration_id: self.duties.claim(f"delivery/{integration_id}")
        self.duties.want("retention")
        self.duties.want_each(lambda: [f"delivery/{i}" for i in self.integrations.deliverable()],
                              gained=lambda name: self.integrations.reload(),
                              lost=lambda name: self.integrations.drop(int(name.split("/", 1)[1])))
        self.templates = TemplateService(self.store, write=self.committer.write, read=self.read)
        self.plugins = PluginHost(self.store, self.committer.write, self.metrics.registry)  # docs/plugins.md
        self.committer.observers.append(self.plugins)
        self.pipeline = Pipeline(self.committer, self.integrations,
                                 translator=PluginTranslator(self.templates, self.plugins))
        c = config.connectivity
        self.connectivity = ConnectivityService(
            self.registry, self.committer, self.integrations, self.metrics, store=self.store,
            data_quota_mb=c.data_quota_mb, sms_quota=c.sms_quota, lifetime_years=c.lifetime_years,
            secrets=config.radius.clients, disconnect_port=config.radius.disconnect_port,
            store_read=lambda fn, *args: self.read(self.store.read_with, fn, *args))
        self.connectivity.expiry_check_seconds = c.expiry_check_seconds
        self.locator = Locator(self.store, self.committer, self.integrations, read=self.read,
                               registry=self.metrics.registry)
        self.pipeline.locator = self.connectivity.locator = self.locator
        self.radius: RadiusAccountingServer | None = None
        self.radius_port = 0
        coap = config.coap
        self.coap_service = CoapService(
            self.pipeline, self.metrics, max_payload=coap.max_payload,
            exchange_lifetime=coap.exchange_lifetime_seconds, answer_unauthorized=coap.answer_unauthorized,
            unauthorized_answers_per_ip_per_second=coap.unauthorized_answers_per_ip_per_second,
            unauthorized_answers_per_second=coap.unauthorized_answers_per_second)
        self.block1 = Block1Limits(self.metrics, max_payload=coap.max_payload,
                                   max_transfers=coap.max_block1_transfers,
                                   max_transfers_per_sim=coap.max_block1_transfers_per_sim)
        self.lwm2m: LwM2MService | None = LwM2MService(self) if config.lwm2m.enabled and (
            config.coap.enabled or config.coaps.enabled) else None
        if self.lwm2m is not None:
            self.lwm2m.install_fast_handlers(self.coap_service)
        self.sms: SmsService | None = SmsService(
            config.sms, store=self.store, registry=self.registry, committer=self.committer, router=self.integrations,
            read=self.read, metrics_registry=self.metrics.registry,
            quota=self.connectivity.defaults) if config.sms.enabled else None
        self.controller = DeviceController(registry=self.registry, pipeline=self.pipeline,
                                           write=self.committer.write, read=self.read,
                                           connection=self.store.connection, config=config.controller,
                                           metrics=self.metrics.registry)
        self.coap_service.on_heard = self.controller.heard
        self.coap_context: Context | None = None
        self.coap: CoapUdpInterface | None = None
        self.coaps: CoapDtlsInterface | None = None
        self.coaps_port = 0
        self.udp: UdpUplink | None = None
        self.endpoints = EndpointSwitch(self)
        self._api_runner: web.AppRunner | None = None
        self.api_auth: Any = None  # the management API's Authenticator, once the API is built
        self._tasks: list[asyncio.Task] = []
        self.listener: Any = None  # the store's change listener (PostgreSQL), once started
        self.control = ControlServer(config.store.identity(), self.follower.check,
                                     worker=self.slot.index if self.slot.several else None,
                                     metrics=self.metrics.render)
        self.udp_port = self.coap_port = self.api_port = 0
        self.started_at = 0.0
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store read off the event loop (WAL lets it run beside the writer)."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    def _emit(self, event: Any) -> None:
        self.pipeline.emit(event)

    async def start(self) -> None:
        cfg = self.config
        loop = self._loop = asyncio.get_running_loop()
        await self.read(self.registry.reload)
        await self.read(self.registry.load_bindings)
        await self.read(self.connectivity.load)
        await self.read(self.psks.reload)
        await self.read(self.templates.reload)
        await self.read(self.endpoints.load)
        await self.committer.write(self.plugins.load)
        await self.read(self.locator.load)
        await self.committer.write(self.integrations.sync_config, cfg)
        self.committer.start()
        await self.duties.start()
        await self.integrations.start()
        if cfg.radius.enabled:
            r = cfg.radius
            self.connectivity.sender = await open_disconnect_client(r.disconnect_timeout_seconds, r.disconnect_attempts)
            with listening("RADIUS accounting", r.bind, r.port):
                self.radius = start_radius(r.bind, r.port, r.clients, self.connectivity, self.metrics,
                                                 r.duplicate_window_seconds)
            self.radius_port = self.radius.port
        if self.sms is not None:
            if self.shared:  # one SMPP session per gateway: the process holding the lease
                sms = self.sms
                self.duties.want("sms", gained=lambda name: sms.start(), lost=lambda name: sms.stop())
            else:
                await self.sms.start()
        if cfg.udp.enabled:
            self.udp = UdpUplink(self.registry, self.pipeline, self.metrics, cfg.udp.max_payload)
            self.udp.on_heard = self.controller.heard
            self.controller.udp_endpoint = self.udp.endpoint
            if self.endpoints.wanted("UDP"):  # turned off through the API: stays off (gateway/endpoints.py)
                with listening("UDP", cfg.udp.bind, cfg.udp.port):
                    self.udp_port = self.udp.endpoint.open(cfg.udp.bind, cfg.udp.port,
                                                           cfg.udp.receive_buffer_bytes)[1]
        if cfg.coap.enabled:
            self.coap_context = Context(loop=loop, serversite=self.build_coap_site(), loggername="nce.coap.aiocoap")
            with listening("CoAP", cfg.coap.bind, cfg.coap.port):
                self.coap = await start_coap_udp(self.coap_context, self.coap_service, self.registry,
                                                 cfg.coap.bind, cfg.coap.port, cfg.coap.receive_buffer_bytes,
                                                 open_now=self.endpoints.wanted("COAP"))
            self.coap_port = self.coap.endpoint.port
        if cfg.coaps.enabled:
            if self.coap_context is None:
                self.coap_context = Context(loop=loop, serversite=self.build_coap_site(),
                                            loggername="nce.coap.aiocoap")
            with listening("CoAPs", cfg.coaps.bind, cfg.coaps.port):
                self.coaps = await start_coaps(self.coap_context, self.coap_service, self.registry, self.psks,
                                               cfg.coaps, open_now=self.endpoints.wanted("COAPS"))
            self.coaps_port = self.coaps.endpoint.port
            self.registry.on_change(self._close_sessions_of_disabled_sims)
            self.registry.on_access_lost(self._close_sessions_of)
        if self.lwm2m is not None and self.coap_context is not None:
            await self.lwm2m.start(self.coap_context, self.coap)
        self.controller.coap_context, self.controller.coap_interface = self.coap_context, self.coap
        await self.controller.start()
        if cfg.api.enabled:
            self._api_runner = web.AppRunner(build_api(self), access_log=None)
            await self._api_runner.setup()
            shared = inherited(socket.SOCK_STREAM, cfg.api.bind, cfg.api.port)  # a worker: the supervisor's
            site: web.BaseSite = (web.SockSite(self._api_runner, shared) if shared is not None
                                  else web.TCPSite(self._api_runner, cfg.api.bind, cfg.api.port))
            with listening("API", cfg.api.bind, cfg.api.port):
                await site.start()
            self.api_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoints.observe()
        self.follower.follow("SIM registry", self.store.sims_version, lambda: self.registry.version,
                             lambda: self.read(self.registry.reload))
        if cfg.connectivity.announce_new_sims:
            self.registry.on_change(self._announce_soon)
            await self.connectivity.announce_new_sims()
        self.follower.follow("address bindings", lambda: self.store.read_with(bindings_sql.version),
                             lambda: self.registry.bindings_seq, self._follow_bindings)
        self.follower.follow("PSKs", self.store.psks_version, lambda: self.psks.version,
                             lambda: self.read(self.psks.reload))
        self.follower.follow("templates", self.store.templates_version, lambda: self.templates.version,
                             lambda: self.read(self.templates.reload))
        self.follower.follow("integrations", self.store.integrations_version, lambda: self.integrations.version,
                             self.integrations.reload)
        self.follower.follow("geofences", lambda: self.store.read_with(geofences_sql.version),
                             lambda: self.locator.version, self.locator.reload)
        self.follower.follow("1NCE OS settings", lambda: os_state.settings_version(self.store),
                             lambda: self.locator.settings_version, self.locator.reload_settings)
        self.follower.follow("endpoints", lambda: os_state.endpoints_version(self.store),
                             lambda: self.endpoints.version, self.endpoints.follow)
        await self.control.start()  # the CLI's changes in force at once (gateway/control.py)
        # PostgreSQL: every process on the database is told of a change at its commit (NOTIFY)
        self.listener = self.store.change_listener(self.follower.wake)
        if self.listener is not None:
            self.listener.start()
            Gauge("nce_store_listening", "1 while this process LISTENs for store changes (PostgreSQL), "
                  "0 while it follows by polling only", registry=self.metrics.registry).set_function(
                lambda: int(self.listener.connected))
        self._tasks = [
            loop.create_task(self.follower.run(), name="store-follower"),
            loop.create_task(self._purge_loop(), name="retention"),
            loop.create_task(self.connectivity.expiry_loop(), name="quota-expiry"),
            loop.create_task(self.controller.run(), name="device-controller"),
        ]
        self.started_at = time.time()
        log.info("gateway started", extra={"event": "started", "udp_port": self.udp_port,
                                           "coap_port": self.coap_port, "coaps_port": self.coaps_port,
                                           "api_port": self.api_port,
                                           "radius_port": self.radius_port,
                                           "store": cfg.store.path, "sims": len(self.registry),
                                           "worker": str(self.slot),
                                           "plugins": [p.id for p in self.plugins.codecs + self.plugins.integrations]})

    def _close_sessions_of_disabled_sims(self) -> None:
        """A SIM that is no longer enabled loses its DTLS sessions (registry reloads run in a
        reader thread, so the closing is handed to the event loop)."""
        if self.coaps is None or self._loop is None:
            return
        def close() -> None:
            assert self.coaps is not None
            for session in list(self.coaps.dtls.sessions):
                iccid = (session.identity or b"").decode("ascii", "replace")
                if session.identity is not None and self.registry.enabled_sim_for_iccid(iccid) is None:
                    self.coaps.dtls.close(session)
        self._loop.call_soon_threadsafe(close)

    def _announce_soon(self) -> None:
        """After a registry reload (reader thread): announce SIMs added since, on the loop."""
        if self._loop is not None and not self._stopped:
            self._loop.call_soon_threadsafe(self.connectivity.start_task, self.connectivity.announce_new_sims())

    async def _follow_bindings(self) -> None:
        """Rows changed by any process, read in the writer thread (so in order with this
        process's own commits and their acknowledgements), applied on the event loop."""
        rows, quotas = await self.committer.write(self.store.read_with, self.connectivity.changes_since,
                                                  self.registry.bindings_seq)
        self.connectivity.apply_followed(rows, quotas)
        self.registry.apply_rows(rows)

    def _close_sessions_of(self, iccids: set[str]) -> None:
        """SIMs that lost their address or the right to send lose their DTLS sessions."""
        if self.coaps is None or self._loop is None:
            return
        identities = {i.encode("ascii") for i in iccids}
        def close() -> None:
            assert self.coaps is not None
            for session in list(self.coaps.dtls.sessions):
                if session.identity in identities:
                    self.coaps.dtls.close(session)
        self._loop.call_soon_threadsafe(close)

    def build_coap_site(self) -> Any:
        site = build_site(self.pipeline, self.metrics, self.config.coap.max_payload)
        site.add_resource(["bootstrap"], BootstrapResource(self.psks, self.metrics, self.config.coaps.public_url))
        if self.lwm2m is not None:
            self.lwm2m.add_resources(site)
        bound_block1(site, self.block1)
        return site

    async def stop(self) -> None:
        """Stop everything; pending commits are finished first. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        await self.control.stop()
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
        await self.duties.halt()  # no lease changes while stopping; released at the end
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.lwm2m is not None:
            await self.lwm2m.stop()
        await self.controller.stop()
        await self.committer.flush()  # acknowledge what is in flight while the sockets are open
        if self.radius is not None:
            self.radius.close()
        await self.connectivity.stop()
        if self.connectivity.sender is not None:
            self.connectivity.sender.close()
        if self.udp is not None:
            self.udp.endpoint.close()
        if self.coap_context is not None:
            await self.coap_context.shutdown()
        await self.locator.drain()  # cell lookups under way still store their positions
        await self.committer.flush()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        if self.sms is not None:
            await self.sms.stop()
        await self.integrations.stop()
        self.plugins.stop()
        await self.duties.stop()  # after delivery stopped: the next holder does not overlap
        await self.committer.stop()
        self._readers.shutdown(wait=True)
        self.store.close()  # every thread's connection: nothing of the store stays open
        log.info("gateway stopped", extra={"event": "stopped"})

    async def purge_once(self) -> dict[str, int]:
        cutoff = int((time.time() - self.config.store.retention_days * 86400) * 1000)
        counts = await self.committer.write(self.store.purge, cutoff)
        # PSK import jobs and daily savings older than the retention period (their own tables)
        await self.committer.write(os_state.purge_psk_jobs, self.store, cutoff)
        await self.committer.write(savings_sql.purge, self.store, cutoff)
        if any(counts.values()):
            log.info("retention purge", extra={"event": "purged", **counts})
        return counts

    async def _purge_loop(self) -> None:
        while True:
            try:
                if self.duties.holds("retention"):  # one process purges
                    await self.purge_once()
            except Exception:
                log.exception("retention purge failed")
            await asyncio.sleep(self.config.store.purge_interval_seconds)


async def serve(config: GatewayConfig, stop: asyncio.Event | None = None, *, tune_gc: bool = False) -> None:
    """Run a gateway until ``stop`` is set (or SIGINT/SIGTERM); ``tune_gc`` freezes the start-up
    heap and raises the collector's thresholds once it listens (gateway/runtime.py)."""
    import signal

    gateway = Gateway(config)
    await gateway.start()
    if tune_gc:
        runtime.tune_gc()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if not gateway.slot.several:  # a worker's supervisor says where it listens
        # one write with its newline: print() writes the end apart, and a log line from another
        # thread (stderr, often the same pipe) could land between the two
        print(f"nce-gateway listening: UDP {gateway.udp_port}, CoAP {gateway.coap_port}, CoAPs {gateway.coaps_port}, "
              f"API http://{config.api.bind}:{gateway.api_port}\n", end="", flush=True)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
