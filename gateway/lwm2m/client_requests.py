"""Requests from the gateway to a registered device (Read, Write, Execute, Observe, Delete).

Requests go out through aiocoap over the socket (or DTLS session) the device last talked to
us on: the registration keeps the transport's remote object, so aiocoap sends with the same
source port and the device's answer comes back through the same path. A device in queue
mode (binding ``UQ`` or the ``Q`` parameter) listens only for a while after each Register or
Update; a request for a sleeping device waits until it is heard from again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning

from .formats import ContentFormat
from .path import LwM2MPath
from .registration import Registration, RegistrationStore

log = logging.getLogger("nce.lwm2m.requests")


@dataclass(slots=True)
class DeviceResponse:
    """What came back from a device: a CoAP response, or no response (``error`` says why)."""

    code: str | None = None  # "2.05", "4.04", ...
    payload: bytes = b""
    content_format: int | None = None
    error: str | None = None  # "timeout", "not registered", "network error: ..."
    message: Any = None  # the aiocoap response (for observations)

    @property
    def ok(self) -> bool:
        return self.code is not None and self.code.startswith("2.")

    @property
    def answered(self) -> bool:
        return self.code is not None


class DeviceRequests:
    """Send requests to devices, waiting for queue-mode devices to wake up."""

    def __init__(self, registrations: RegistrationStore, *, timeout: float = 30.0, queue_timeout: float = 600.0,
                 awake_seconds: float = 93.0) -> None:
        self.registrations = registrations
        self.context: aiocoap.Context | None = None  # set when the CoAP side is up
        self.plain_interface: Any = None  # the plain CoAP socket, for (ip, port) remotes
        self.timeout = timeout
        self.queue_timeout = queue_timeout
        self.awake_seconds = awake_seconds
        self._activity: dict[str, asyncio.Event] = {}  # only for ICCIDs someone waits for

    # device activity ------------------------------------------------------------------

    def heard_from(self, reg: Registration) -> None:
        """A Register or Update arrived: a queue-mode device listens for a while; wake waiters."""
        if reg.queue:
            reg.awake_until = time.monotonic() + self.awake_seconds
        event = self._activity.pop(reg.iccid, None)
        if event is not None:
            event.set()

    def waiting(self, iccid: str) -> bool:
        """Whether a request or action waits for this device's next activity."""
        return iccid in self._activity

    async def next_activity(self, iccid: str, timeout: float | None) -> bool:
        """Wait for the device's next Register or Update; False on timeout."""
        event = self._activity.get(iccid)
        if event is None:
            event = self._activity[iccid] = asyncio.Event()
        try:
            if timeout is None:
                await event.wait()
            else:
                await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def reachable(self, iccid: str, wait: float | None = None) -> Registration | None:
        """The device's registration once a request can be sent to it, or None (not registered,
        or still asleep after ``wait`` seconds; default: the queue timeout)."""
        wait = self.queue_timeout if wait is None else wait
        deadline = time.monotonic() + wait
        while True:
            reg = self.registrations.of(iccid)
            if reg is None:
                return None
            if reg.reachable():
                return reg
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self.next_activity(iccid, remaining):
                return None

    # requests ---------------------------------------------------------------------------

    def segments(self, reg: Registration, path: LwM2MPath | str) -> list[str]:
        """Uri-Path of ``path`` on this device (under its alternate root path, if it has one)."""
        root = self.registrations.parsed_links(reg.links).root if reg.links else "/"
        return [s for s in root.split("/") if s] + [str(i) for i in LwM2MPath.of(path).ids]

    async def send(self, reg: Registration, code: Code, path: LwM2MPath | str, payload: bytes = b"",
                   **options: Any) -> tuple[DeviceResponse, Any]:
        """Send one request to a registered device now (no waiting for queue mode)."""
        remote = self.remote_of(reg)
        if remote is None:
            return DeviceResponse(error="device address unknown until its next update"), None
        return await self.send_to(remote, code, self.segments(reg, path), payload, **options)

    def remote_of(self, reg: Registration) -> Any:
        remote = reg.remote
        if type(remote) is tuple:
            from ..transports.coap import PlainRemote

            return PlainRemote(self.plain_interface, remote) if self.plain_interface is not None else None
        return remote

    async def send_to(self, remote: Any, code: Code, uri_path: list[str], payload: bytes = b"", *,
                      timeout: float | None = None, **options: Any) -> tuple[DeviceResponse, Any]:
        """Send one request to a remote; returns the response and the aiocoap request (for
        observations)."""
        return await send_request(self.context, remote, code, uri_path, payload, timeout=timeout or self.timeout,
                                  **options)

    async def request(self, iccid: str, code: Code, path: LwM2MPath | str, payload: bytes = b"", *,
                      wait: float | None = None, **options: Any) -> tuple[DeviceResponse, Any]:
        """Send to a registered device, waiting while it sleeps in queue mode."""
        reg = await self.reachable(iccid, wait)
        if reg is None:
            if self.registrations.of(iccid) is None:
                return DeviceResponse(error="not registered"), None
            return DeviceResponse(error="device did not wake up (queue mode)"), None
        return await self.send(reg, code, path, payload, **options)

    async def read(self, iccid: str, path: LwM2MPath | str, **kw: Any) -> DeviceResponse:
        return (await self.request(iccid, Code.GET, path, **kw))[0]


def tuning_within(seconds: float) -> TransportTuning:
    """CON retransmission parameters whose whole schedule (MAX_TRANSMIT_WAIT) ends within
    ``seconds``: fewer retransmissions (and a shorter first timeout below 3 s). aiocoap keeps one
    CON exchange per device open at a time (NSTART = 1) and queues the next request behind it,
    so an exchange that outlived the caller's patience (93 s by default) would hold every later
    request to that device, however short their own timeout."""
    tuning = TransportTuning()
    while tuning.MAX_RETRANSMIT > 0 and tuning.MAX_TRANSMIT_WAIT > seconds:
        tuning.MAX_RETRANSMIT -= 1
    if tuning.MAX_TRANSMIT_WAIT > seconds:
        tuning.ACK_TIMEOUT = max(seconds, 0.05) / tuning.ACK_RANDOM_FACTOR
    return tuning


async def send_request(context: aiocoap.Context | None, remote: Any, code: Code, uri_path: list[str],
                       payload: bytes = b"", *, timeout: float, content_format: int | None = None,
                       accept: int | None = None, observe: int | None = None,
                       query: list[str] | None = None) -> tuple[DeviceResponse, Any]:
    """One CoAP request (CON) from the gateway's socket or DTLS session to a device's ``remote``
    (a :class:`~gateway.transports.coap.PlainRemote` or DTLS remote): the response, and the
    aiocoap request (for observations). Shared by LwM2M and the Device Controller."""
    if context is None:
        return DeviceResponse(error="CoAP is not running"), None
    message = aiocoap.Message(code=code, payload=payload, uri_path=uri_path, transport_tuning=tuning_within(timeout))
    if content_format is not None:
        message.opt.content_format = content_format
    if accept is not None:
        message.opt.accept = accept
    if observe is not None:
        message.opt.observe = observe
    if query:
        message.opt.uri_query = query
    message.remote = remote
    try:
        pending = context.request(message)
    except Exception as exc:  # pragma: no cover - aiocoap refuses the message itself
        return DeviceResponse(error=f"request not sent: {exc}"), None
    try:
        # aiocoap's own timeout (the retransmissions' end) comes first; this one is a safety net
        response = await asyncio.wait_for(asyncio.shield(pending.response), timeout + 1.0)
    except asyncio.TimeoutError:
        _cancel(pending)
        return DeviceResponse(error="timeout"), None
    except coap_error.TimeoutError:
        return DeviceResponse(error="timeout"), None
    except coap_error.Error as exc:
        return DeviceResponse(error=f"network error: {type(exc).__name__} {exc}".strip()), None
    except OSError as exc:
        return DeviceResponse(error=f"network error: {exc}"), None
    cf = response.opt.content_format
    return DeviceResponse(code=response.code.dotted, payload=response.payload,
                          content_format=int(cf) if cf is not None else None, message=response), pending


def _cancel(pending: Any) -> None:
    try:
        pending.response.cancel()
        if pending.observation is not None:
            pending.observation.cancel()
    except Exception:  # pragma: no cover
        pass


TEXT = ContentFormat.TEXT
TLV = ContentFormat.TLV
LINK_FORMAT = ContentFormat.LINK_FORMAT
