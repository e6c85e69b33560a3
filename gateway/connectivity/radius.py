"""RADIUS accounting listener (RFC 2866; 3GPP TS 29.061 attributes) on the gateway's event loop.

pyrad decodes and encodes the packets (with the dictionary shipped beside this file); the socket
is the gateway's own :class:`~gateway.transports.sockets.UdpEndpoint` on the event loop (drained
64 datagrams per wake-up, a 4 MiB receive buffer), because pyrad's server loop is blocking and
would need a thread of its own, away from the SIM directory it updates (docs/dependencies.md).

Rules, in the order a datagram meets them:
* a source address that is no configured client, a malformed packet, a code other than
  Accounting-Request, a wrong Request Authenticator (shared secret) or a wrong
  Message-Authenticator: dropped unanswered and counted (``nce_radius_dropped_total``);
* a retransmission (same client address and port, identifier and authenticator) is not processed
  again: answered with the stored reply once the first copy was, ignored while it is in flight;
* everything else goes to the :class:`~gateway.connectivity.service.ConnectivityService`, which
  answers through ``respond`` only after the request's effects are durable and visible.
Memory spent on a peer is bounded: replies of the last ``duplicate_window_seconds`` are kept, at
most ``max_remembered`` of them.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from ..transports.sockets import UdpEndpoint
from .location import LocationError, decode_uli

log = logging.getLogger("nce.radius")

STATUS = {1: "Start", 2: "Stop", 3: "Interim-Update", 7: "Accounting-On", 8: "Accounting-Off"}
_GIGA = 1 << 32


def dictionary() -> Dictionary:
    """The RADIUS dictionary shipped with the gateway (standard + 3GPP attributes)."""
    with resources.as_file(resources.files("gateway.connectivity") / "radius.dict") as path:
        return Dictionary(str(path))


@dataclass(slots=True)
class AccountingRecord:
    """What one Accounting-Request says about a SIM's session."""

    status: str
    imsi: str | None
    session_id: str | None
    framed_ip: str | None
    msisdn: str | None
    apn: str | None
    imeisv: str | None
    rat_type: int | None
    location: dict | None
    input_octets: int  # from the device (its TX), gigawords included
    output_octets: int  # to the device (its RX)
    nas_ip: str  # where Disconnect-Requests for this session go: NAS-IP-Address, else the source


# attribute codes (standard) and (vendor, code) keys as pyrad's decoder stores them
_IMSI, _IMEISV, _RAT, _ULI = (10415, 1), (10415, 20), (10415, 21), (10415, 22)
_NAS_IP, _FRAMED_IP, _CALLED, _CALLING, _STATUS = 4, 8, 30, 31, 40
_IN, _OUT, _SESSION, _IN_GIGA, _OUT_GIGA = 42, 43, 44, 52, 53


def _raw(pkt: rp.Packet, key: int | tuple[int, int]) -> bytes | None:
    """The first raw value of an attribute (pyrad keeps received values undecoded)."""
    values = OrderedDict.get(pkt, key)
    return values[0] if values else None


def _int(pkt: rp.Packet, key: int) -> int:
    value = _raw(pkt, key)
    return int.from_bytes(value, "big") if value else 0


def _text(pkt: rp.Packet, key: int | tuple[int, int]) -> str | None:
    value = _raw(pkt, key)
    return value.decode("utf-8", "replace") if value else None


def _ip(pkt: rp.Packet, key: int) -> str | None:
    value = _raw(pkt, key)
    return socket.inet_ntoa(value) if value is not None and len(value) == 4 else None


def parse(pkt: rp.Packet, source_ip: str) -> AccountingRecord:
    """Read the attributes a packet gateway sends (missing ones are None or 0).

    pyrad has split the packet into raw attribute values (vendor-specific ones keyed
    ``(10415, code)``); the few value types used here (integer, text, IPv4 address) are read
    directly, which costs a fraction of pyrad's per-attribute dictionary decoding.
    """
    status = _int(pkt, _STATUS)
    uli = _raw(pkt, _ULI)
    location = None
    if uli:
        try:
            location = decode_uli(uli)
        except LocationError as exc:
            log.info("User-Location-Info not decoded: %s", exc, extra={"event": "radius_bad_uli"})
    rat = _raw(pkt, _RAT)
    return AccountingRecord(
        status=STATUS.get(status, str(status)),
        imsi=_text(pkt, _IMSI),
        session_id=_text(pkt, _SESSION),
        framed_ip=_ip(pkt, _FRAMED_IP),
        msisdn=_text(pkt, _CALLING),
        apn=_text(pkt, _CALLED),
        imeisv=_text(pkt, _IMEISV),
        rat_type=rat[0] if rat else None,
        location=location,
        input_octets=_int(pkt, _IN_GIGA) * _GIGA + _int(pkt, _IN),
        output_octets=_int(pkt, _OUT_GIGA) * _GIGA + _int(pkt, _OUT),
        nas_ip=_ip(pkt, _NAS_IP) or source_ip,
    )


class RadiusAccountingServer:
    """The accounting socket. ``service.accounting(record, respond)`` must call ``respond()``
    exactly once (at once, or after its commit)."""

    def __init__(self, clients: dict[str, str], service: Any, metrics: Any, *, duplicate_window: float = 30.0,
                 max_remembered: int = 100_000) -> None:
        self.secrets = {address: secret.encode() for address, secret in clients.items()}
        self.service = service
        self.metrics = metrics
        self.dict = dictionary()
        self.window = duplicate_window
        self.max_remembered = max_remembered
        self._recent: OrderedDict[tuple, tuple[float, bytes | None]] = OrderedDict()
        self.endpoint = UdpEndpoint(self.datagram_received)
        self._by_status: dict[str, Any] = {}

    @property
    def port(self) -> int:
        return self.endpoint.port

    def close(self) -> None:
        self.endpoint.close()

    def _drop(self, reason: str, addr: tuple) -> None:
        self.metrics.radius_dropped.labels(reason).inc()
        log.debug("accounting datagram from %s dropped: %s", addr[0], reason)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        secret = self.secrets.get(addr[0])
        if secret is None:
            self._drop("unknown_client", addr)
            return
        if len(data) < 20:
            self._drop("malformed", addr)
            return
        key = (addr, data[1], data[4:20])
        now = time.monotonic()
        self._expire(now)
        seen = self._recent.get(key)
        if seen is not None:
            self.metrics.radius_duplicates.inc()
            if seen[1] is not None:
                self.endpoint.sendto(seen[1], addr)
            return
        try:
            pkt = rp.AcctPacket(packet=data, secret=secret, dict=self.dict)
        except Exception:  # pyrad raises PacketError, and KeyError/struct errors on odd attributes
            self._drop("malformed", addr)
            return
        if pkt.code != rp.AccountingRequest:
            self._drop("unsupported_code", addr)
            return
        if not pkt.VerifyAcctRequest():
            self._drop("bad_authenticator", addr)
            return
        if pkt.message_authenticator and not pkt.verify_message_authenticator():
            self._drop("bad_message_authenticator", addr)
            return
        try:
            record = parse(pkt, addr[0])
        except Exception:
            self._drop("malformed", addr)
            return
        self._recent[key] = (now, None)
        counter = self._by_status.get(record.status)
        if counter is None:
            counter = self._by_status[record.status] = self.metrics.radius_requests.labels(record.status)
        counter.inc()
        self.service.accounting(record, (self._respond, pkt, addr, key))

    def _respond(self, pkt: rp.AcctPacket, addr: tuple, key: tuple) -> None:
        raw = pkt.CreateReply().ReplyPacket()
        if key in self._recent:
            self._recent[key] = (self._recent[key][0], raw)
        self.endpoint.sendto(raw, addr)

    def _expire(self, now: float) -> None:
        recent = self._recent
        while recent:
            first_key = next(iter(recent))
            if now - recent[first_key][0] < self.window and len(recent) < self.max_remembered:
                break
            del recent[first_key]


def start_radius(bind: str, port: int, clients: dict[str, str], service: Any, metrics: Any,
                 duplicate_window: float, receive_buffer: int = 4 * 1024 * 1024) -> RadiusAccountingServer:
    """Open the accounting socket on the running loop."""
    server = RadiusAccountingServer(clients, service, metrics, duplicate_window=duplicate_window)
    server.endpoint.open(bind, port, receive_buffer)
    return server
