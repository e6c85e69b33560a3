"""The device endpoints per protocol, and turning one off and on while the gateway runs.

An endpoint is a listening socket: UDP (plain datagrams), COAP (plain CoAP) and COAPS (CoAP over
DTLS). LWM2M has no socket of its own: the LwM2M server answers on the CoAP and CoAPs sockets, so
its endpoint is shown with their ports and is active while either is.

Turning an endpoint off closes its socket (a DTLS endpoint first closes its sessions): devices
get no answer, as from a host that is not there. Turning it on binds the address again, on the
port it had (a configured port 0 keeps the port it got first); if another program holds that
port now, the switch fails with :class:`EndpointError` (the API answers 409) and the endpoint
stays off. The state is stored (``endpoint_states``) before the change is made, so a restarted
gateway opens only the endpoints that were on. A protocol turned off in the configuration
(``[udp] enabled = false``) cannot be turned on here.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Gauge

from inspector import os_state

log = logging.getLogger("nce.endpoints")

SOCKETS = ("UDP", "COAP", "COAPS")
PROTOCOLS = (*SOCKETS, "LWM2M")
SETTINGS = {"LWM2M": {"LWM2M_PASSIVE_REPORTING": "Report LwM2M values the device sends on its own "
                                                 "(notifications, Send) as telemetry events."}}


class EndpointError(Exception):
    """A switch that cannot be made; ``status`` is the HTTP status the API answers."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Endpoint:
    protocol: str
    active: bool
    bind: str
    port: int
    secure_port: int | None
    settings: dict[str, str]


class EndpointSwitch:
    """Knows the gateway's listening sockets; opens and closes them on request."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self._wanted: dict[str, bool] = {}
        self._settings: dict[str, dict[str, str]] = {}
        self._lock = asyncio.Lock()
        self.version = 0  # endpoints_version the in-memory states were read at (followed)
        self._domain: str | None = None
        self._gauge = Gauge("nce_endpoint_active", "1 while a device endpoint listens", ["protocol"],
                            registry=gateway.metrics.registry)

    def load(self) -> None:
        """Read the stored states (blocking: run in a reader thread before the sockets open)."""
        self.version = os_state.endpoints_version(self.gateway.store)
        for protocol, (active, settings) in os_state.endpoint_states(self.gateway.store).items():
            self._wanted[protocol] = active
            self._settings[protocol] = settings
        self.domain()

    def wanted(self, protocol: str) -> bool:
        """Whether the socket should be open (stored state; on unless turned off)."""
        return self._wanted.get(protocol, True)

    # what is there --------------------------------------------------------------------------

    def _section(self, protocol: str) -> Any:
        cfg = self.gateway.config
        return {"UDP": cfg.udp, "COAP": cfg.coap, "COAPS": cfg.coaps}[protocol]

    def _endpoint(self, protocol: str) -> Any:
        """The UdpEndpoint of a socket protocol (None when the protocol is off in the config)."""
        owner = {"UDP": self.gateway.udp, "COAP": self.gateway.coap, "COAPS": self.gateway.coaps}[protocol]
        return owner.endpoint if owner is not None else None

    def _open(self, protocol: str) -> bool:
        endpoint = self._endpoint(protocol)
        return endpoint is not None and endpoint.sock is not None

    def _port(self, protocol: str) -> int:
        bound = {"UDP": self.gateway.udp_port, "COAP": self.gateway.coap_port, "COAPS": self.gateway.coaps_port}
        return bound[protocol] or self._section(protocol).port

    def domain(self) -> str:
        """The name devices use: the host of ``coaps.public_url`` if set, else this host's name
        (looked up once, in :meth:`load`: a name lookup can block for seconds)."""
        if self._domain is None:
            public = self.gateway.config.coaps.public_url
            self._domain = (urlsplit(public).hostname if public else None) or socket.getfqdn()
        return self._domain

    def describe(self, protocol: str) -> Endpoint:
        if protocol == "LWM2M":
            lwm2m = self.gateway.lwm2m is not None
            return Endpoint("LWM2M", lwm2m and (self._open("COAP") or self._open("COAPS")),
                            self.gateway.config.coap.bind, self._port("COAP"), self._port("COAPS"),
                            self.settings_of("LWM2M"))
        secure = self._port("COAPS") if protocol == "COAP" else None
        return Endpoint(protocol, self._open(protocol), self._section(protocol).bind, self._port(protocol), secure,
                        self.settings_of(protocol))

    def settings_of(self, protocol: str) -> dict[str, str]:
        stored = self._settings.get(protocol, {})
        return {name: stored.get(name, "ENABLED") for name in SETTINGS.get(protocol, {})}

    # switching ------------------------------------------------------------------------------

    async def change(self, protocol: str, active: bool | None, settings: dict[str, str]) -> Endpoint:
        """Store and apply a change; :class:`EndpointError` when it cannot be made."""
        if protocol not in PROTOCOLS:
            raise EndpointError(f"protocol: unknown endpoint {protocol!r}; endpoints: {', '.join(PROTOCOLS)}", 404)
        unknown = set(settings) - set(SETTINGS.get(protocol, {}))
        if unknown:
            raise EndpointError(f"settings: {', '.join(sorted(unknown))} is not a setting of the {protocol} endpoint",
                                400)
        if settings.get("LWM2M_PASSIVE_REPORTING") == "DISABLED":
            raise EndpointError("settings: the gateway always reports the LwM2M values devices send (Send, "
                                "notifications) as telemetry; LWM2M_PASSIVE_REPORTING cannot be DISABLED", 400)
        if active is not None and protocol == "LWM2M":
            raise EndpointError("active: LwM2M is served on the CoAP and CoAPs sockets; turn the COAP or COAPS "
                                "endpoint off instead", 400)
        async with self._lock:
            merged = {**self._settings.get(protocol, {}), **settings}
            if active is not None and protocol in SOCKETS:
                if self._endpoint(protocol) is None:
                    raise EndpointError(f"the {protocol} endpoint is turned off in the configuration "
                                        f"([{protocol.lower()}] enabled = false); change it there and restart")
                if active and not self._open(protocol):
                    self._reopen(protocol)  # before storing: a port taken by another program fails here
                elif not active and self._open(protocol):
                    self._close(protocol)
            want = self.wanted(protocol) if active is None else active
            await self.gateway.committer.write(os_state.set_endpoint_state, self.gateway.store, protocol, want, merged)
            self._wanted[protocol] = want
            self._settings[protocol] = merged
        self.observe()
        return self.describe(protocol)

    async def follow(self) -> None:
        """Apply what another process stored (the API of another worker or gateway, the CLI):
        the gateway follows ``endpoints_version`` (gateway/follow.py)."""
        version = await self.gateway.read(os_state.endpoints_version, self.gateway.store)  # first: no change missed
        states = await self.gateway.read(os_state.endpoint_states, self.gateway.store)
        async with self._lock:
            for protocol, (active, settings) in states.items():
                self._wanted[protocol] = active
                self._settings[protocol] = settings
                if protocol not in SOCKETS or self._endpoint(protocol) is None or active == self._open(protocol):
                    continue
                try:
                    if active:
                        self._reopen(protocol)
                    else:
                        self._close(protocol)
                except EndpointError as exc:  # logged by _reopen; the stored wish stays
                    log.warning("%s", exc, extra={"event": "endpoint_follow_failed", "protocol": protocol})
            self.version = version
        self.observe()

    def _reopen(self, protocol: str) -> None:
        section = self._section(protocol)
        port = self._port(protocol)
        owner = {"UDP": self.gateway.udp, "COAP": self.gateway.coap, "COAPS": self.gateway.coaps}[protocol]
        try:
            if protocol == "UDP":
                bound = owner.endpoint.open(section.bind, port, section.receive_buffer_bytes)[1]
            else:
                bound = owner.open(section.bind, port, section.receive_buffer_bytes)
        except OSError as exc:
            log.warning("endpoint could not be reopened", extra={"event": "endpoint_open_failed",
                                                                  "protocol": protocol, "port": port})
            raise EndpointError(f"the {protocol} endpoint cannot listen on {section.bind}:{port} again: "
                                f"{exc.strerror or exc} (another program holds the port?); it stays off") from None
        self._set_port(protocol, bound)
        log.info("endpoint turned on", extra={"event": "endpoint_on", "protocol": protocol, "port": bound})

    def _close(self, protocol: str) -> None:
        if protocol == "COAPS":
            dtls = self.gateway.coaps.dtls
            for session in list(dtls.sessions):
                dtls.close(session)
        endpoint = self._endpoint(protocol)
        if endpoint.inherited:
            endpoint.pause()  # a worker keeps its slot of the supervisor's group (see UdpEndpoint.pause)
        else:
            endpoint.close()
        log.info("endpoint turned off", extra={"event": "endpoint_off", "protocol": protocol})

    def _set_port(self, protocol: str, port: int) -> None:
        setattr(self.gateway, {"UDP": "udp_port", "COAP": "coap_port", "COAPS": "coaps_port"}[protocol], port)

    def observe(self) -> None:
        for protocol in PROTOCOLS:
            self._gauge.labels(protocol).set(1 if self.describe(protocol).active else 0)
