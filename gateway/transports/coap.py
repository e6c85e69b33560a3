"""CoAP over UDP (and, through the same service, over DTLS): the uplink fast path plus aiocoap.

One socket per transport. Every datagram goes to :class:`CoapService`:

* an uplink ``POST /`` or ``POST /data`` (the bulk of all traffic) is handled right here, with
  no task and no future: resolve the SIM, check the topic, hand the message to the pipeline
  with a pre-encoded 2.04 that is sent when the group commit holding the message is done;
* everything else (``GET /bootstrap``, LwM2M, block-wise, responses to the gateway's own
  requests, pings) is decoded by aiocoap and dispatched to its message manager, so aiocoap's
  full protocol machinery and the resource site serve it.

The remotes (:class:`PlainRemote`, and the DTLS remote) are aiocoap ``EndpointAddress`` objects,
so aiocoap can also *send* requests to a device over the device's own socket or DTLS session.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from collections.abc import Callable
from typing import Any, Protocol

from aiocoap import Message, error, interfaces
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers import constants
from aiocoap.protocol import Context
from aiocoap.tokenmanager import TokenManager
from aiocoap.util import hostportjoin, hostportsplit

from inspector.records import Sim

from ..metrics import Metrics
from ..topics import BadTopic, topic_from_query
from . import coap_wire as wire
from .exchanges import ExchangeCache, fingerprint
from .limits import LogSummary
from .refusals import Refusals
from .sockets import UdpEndpoint

log = logging.getLogger("nce.coap")

UPLINK_PATHS: tuple[list[bytes], ...] = ([], [b"data"])


class Link(Protocol):
    """A device's way back: a UDP address or a DTLS session."""

    key: Hashable
    address: tuple[str, int]

    def send(self, data: bytes) -> None: ...

    def sim(self) -> Sim | None: ...

    def refusal_reason(self) -> str: ...


FastHandler = Callable[["Link", wire.Request, Sim], None]
#: a new request's exchange, from begin_exchange to reply: ((link key, message id), fingerprint)
Exchange = tuple[tuple[Hashable, int], int]


class CoapService:
    """Request handling shared by plain CoAP and CoAP over DTLS (one code path for both).

    Besides the uplink POST, features can register *fast handlers* (:meth:`add_fast_handler`)
    for a method and a first path segment (LwM2M: ``POST /rd``, ``DELETE /rd``, ``POST /dp``).
    A fast handler gets the scanned request of a known, enabled SIM with no unusual option
    and answers it with :meth:`reply` (now or later), using :meth:`begin_exchange` for the
    retransmission rule. Requests with options the scanner does not process (Block1, ...)
    still go to aiocoap, where the feature's resources serve them.

    A datagram whose sender is no enabled SIM goes to :class:`~.refusals.Refusals` before
    anything past its header is read.
    """

    def __init__(self, pipeline: Any, metrics: Metrics, *, max_payload: int = 65000,
                 exchange_lifetime: float = 247.0, answer_unauthorized: bool = True,
                 unauthorized_answers_per_ip_per_second: float = 1.0,
                 unauthorized_answers_per_second: float = 200.0) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.max_payload = max_payload
        self.exchanges = ExchangeCache(exchange_lifetime)
        #: the metrics' protocol label of refusals by first path segment (LwM2M: rd, bs, dp)
        self.path_protocols: dict[bytes, str] = {}
        self.refusals = Refusals(metrics, self.next_mid, answer=answer_unauthorized,
                                 per_source_per_second=unauthorized_answers_per_ip_per_second,
                                 per_second=unauthorized_answers_per_second, lifetime=exchange_lifetime,
                                 path_protocols=self.path_protocols)
        metrics.coap_exchanges.set_function(self.exchanges.__len__)
        # a known SIM's datagram that aiocoap cannot decode: counted (malformed), logged rarely
        self.undecodable = LogSummary(log, "malformed CoAP datagrams of known SIMs", level=logging.INFO)
        self._next_mid = 0
        self._received = metrics.received_by["COAP"]
        self._duplicates = metrics.duplicates_by["COAP"]
        self.fast_handlers: dict[tuple[int, bytes], FastHandler] = {}
        self.on_heard: Callable[[Sim, Any], None] | None = None  # (sim, remote): the Device Controller

    def add_fast_handler(self, method: int, first_segment: bytes, handler: FastHandler) -> None:
        """Serve ``method /first_segment[/...]`` in ``handler(link, request, sim)``."""
        self.fast_handlers[(method, first_segment)] = handler

    def next_mid(self) -> int:
        self._next_mid = (self._next_mid + 1) & 0xFFFF
        return self._next_mid

    def handle(self, link: Link, data: bytes, dispatch: Any) -> None:
        """One datagram (plaintext) from ``link``; ``dispatch(link, data)`` hands it to aiocoap."""
        sim = link.sim()
        if sim is None:
            self.refusals.refuse(link, data)
            return
        if self.on_heard is not None:  # the Device Controller: this device is reachable now
            self.on_heard(sim, link)
        try:
            req = wire.scan(data)
        except wire.Malformed as exc:
            self.metrics.reject("COAP", "malformed")
            head = wire.peek_header(data)
            if head is not None and head[0] == wire.CON:
                link.send(wire.response(wire.RST, 0, head[1], b""))
            log.debug("malformed CoAP datagram: %s", exc)
            return
        code = req.code
        if code == 0 or code >= 64:
            # pings, empty ACK/RST, responses to our own requests: aiocoap's business
            fits = req.mtype != wire.NON if code == 0 else (code < 192 and req.mtype != wire.RST)
            if fits:
                dispatch(link, data)
            else:
                self._misfit(link, req)
            return
        if code >= 32 or req.mtype > wire.NON:  # reserved class 1, or a request as ACK/RST
            self._misfit(link, req)
            return
        self._received.inc()
        if code != wire.POST or not req.fast or req.path not in UPLINK_PATHS:
            if req.fast and req.path and self.fast_handlers:
                handler = self.fast_handlers.get((code, req.path[0]))
                if handler is not None:
                    handler(link, req, sim)
                    return
            dispatch(link, data)
            return
        key = (link.key, req.mid)
        print_ = hash((req.token, req.payload))  # exchanges.fingerprint, inlined on the hot path
        cached = self.exchanges.get(key, print_)
        if cached is not None:
            self._duplicates.inc()
            if cached:  # PENDING (empty) while the first copy is being committed
                link.send(cached)
            return
        try:
            topic = topic_from_query(req.query)
        except BadTopic as exc:
            self._refuse(link, req, wire.BAD_REQUEST, str(exc).encode(), "bad_topic", key, print_)
            return
        if len(req.payload) > self.max_payload:
            self._refuse(link, req, wire.REQUEST_ENTITY_TOO_LARGE, b"payload too large", "oversize", key, print_)
            return
        if req.mtype == wire.CON:
            answer = wire.response(wire.ACK, wire.CHANGED, req.mid, req.token)
        else:
            answer = wire.response(wire.NON, wire.CHANGED, self.next_mid(), req.token)
        self.exchanges.begin(key, print_)
        self.pipeline.uplink(sim, "COAP", req.payload, topic, (self._acknowledge, link, key, print_, answer))

    def _misfit(self, link: Link, req: wire.Request) -> None:
        """A type and code that do not fit together (RFC 7252 §4.2-4.3, §12.1): malformed,
        dropped here instead of one aiocoap warning per datagram."""
        self.metrics.reject("COAP", "malformed")
        self.undecodable.note(f"type {req.mtype} with code {req.code >> 5}.{req.code & 31:02d}",
                              event="coap_malformed", source=link.address[0])

    def begin_exchange(self, link: Link, req: wire.Request) -> Exchange | None:
        """For a fast handler: the exchange of a new request (to pass to :meth:`reply`), or None
        for a retransmission (which has been answered again here, or is still being processed)."""
        key = (link.key, req.mid)
        print_ = fingerprint(req.token, req.payload)
        cached = self.exchanges.get(key, print_)
        if cached is not None:
            self._duplicates.inc()
            if cached:
                link.send(cached)
            return None
        self.exchanges.begin(key, print_)
        return key, print_

    def reply(self, link: Link, req: wire.Request, exchange: Exchange | None, code: int, payload: bytes = b"",
              options: list[tuple[int, bytes]] | None = None) -> None:
        """Answer a fast-handler request (piggybacked ACK for CON, NON for NON) and remember the
        answer for retransmissions of ``exchange``."""
        mtype, mid = (wire.ACK, req.mid) if req.mtype == wire.CON else (wire.NON, self.next_mid())
        if options:
            answer = wire.response_with_options(mtype, code, mid, req.token, options, payload)
        else:
            answer = wire.response(mtype, code, mid, req.token, payload)
        if exchange is not None:
            self.exchanges.complete(*exchange, answer)
        link.send(answer)

    def _acknowledge(self, link: Link, key: Hashable, print_: int, answer: bytes) -> None:
        self.exchanges.complete(key, print_, answer)
        link.send(answer)

    def _refuse(self, link: Link, req: wire.Request, code: int, diagnostic: bytes, reason: str,
                key: Hashable, print_: int) -> None:
        """Refuse a known SIM's request (bad topic, too large), remembered for retransmissions."""
        self.metrics.reject(self.path_protocols.get(req.path[0], "COAP") if req.path else "COAP", reason)
        if req.mtype == wire.CON:
            answer = wire.response(wire.ACK, code, req.mid, req.token, diagnostic)
        else:
            answer = wire.response(wire.NON, code, self.next_mid(), req.token, diagnostic)
        self.exchanges.begin(key, print_, answer)
        link.send(answer)


class DeviceRemote(interfaces.EndpointAddress):
    """What plain and DTLS remotes share: aiocoap's EndpointAddress for a device, plus
    ``key`` (what exchanges are remembered by), ``send(bytes)`` and ``sim()`` for the fast path.
    Subclasses provide ``address`` (the device's current (ip, port)) and ``blockwise_key``."""

    scheme = "coap"
    is_multicast = False
    is_multicast_locally = False
    maximum_block_size_exp = constants.MAX_REGULAR_BLOCK_SIZE_EXP
    maximum_payload_size = 1024
    interface: DeviceInterface
    address: tuple[str, int]

    @property
    def ip(self) -> str:
        return self.address[0]

    @property
    def hostinfo(self) -> str:
        return hostportjoin(self.address[0], self.address[1])

    @property
    def hostinfo_local(self) -> str:
        return self.interface.hostinfo_local

    @property
    def uri_base(self) -> str:
        return f"{self.scheme}://{self.hostinfo}"

    @property
    def uri_base_local(self) -> str:
        return f"{self.scheme}://{self.hostinfo_local}"


class PlainRemote(DeviceRemote):
    """A device's UDP address, as aiocoap and the fast path both see it."""

    def __init__(self, interface: CoapUdpInterface, address: tuple[str, int]) -> None:
        self.interface = interface
        self.address = address
        self.key = address

    def __hash__(self) -> int:
        return hash(self.address)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlainRemote) and other.address == self.address and other.interface is self.interface

    def __repr__(self) -> str:
        return f"<PlainRemote {self.address[0]}:{self.address[1]}>"

    def send(self, data: bytes) -> None:
        self.interface.endpoint.sendto(data, self.address)

    def sim(self) -> Sim | None:
        return self.interface.registry.enabled_sim_for_ip(self.address[0])

    def refusal_reason(self) -> str:
        return self.interface.registry.refusal_for_ip(self.address[0])

    @property
    def blockwise_key(self) -> Hashable:
        return self.address


class DeviceInterface(interfaces.MessageInterface):
    """What the plain and the DTLS socket share: a ``UdpEndpoint``, the CoAP service, and the
    hand-over to aiocoap of everything the fast path does not take."""

    remote_type: type[DeviceRemote]

    def __init__(self, service: CoapService, registry: Any, mman: MessageManager) -> None:
        self.service = service
        self.registry = registry
        self.mman: MessageManager | None = mman
        self.endpoint = UdpEndpoint(self.datagram_received)
        self.hostinfo_local = ""

    def open(self, bind: str, port: int, receive_buffer: int) -> int:
        host, bound = self.endpoint.open(bind, port, receive_buffer)
        self.hostinfo_local = hostportjoin(host, bound)
        return bound

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        raise NotImplementedError

    def dispatch(self, remote: DeviceRemote, data: bytes) -> None:
        """Give a datagram to aiocoap's message manager."""
        if self.mman is None:
            return
        try:
            message = Message.decode(data, remote=remote)
        except (error.UnparsableMessage, ValueError) as exc:  # ValueError: e.g. a non-UTF-8 string option
            self.service.metrics.reject("COAP", "malformed")
            self.service.undecodable.note(f"{type(exc).__name__}: {exc}", event="coap_malformed", source=remote.address[0])
            return
        self.mman.dispatch_message(message)

    # aiocoap MessageInterface
    def send(self, message: Message) -> None:
        message.remote.send(message.encode())

    async def shutdown(self) -> None:
        self.mman = None
        self.endpoint.close()

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, self.remote_type) and remote.interface is self


class CoapUdpInterface(DeviceInterface):
    """The plain CoAP socket: fast path first, aiocoap for the rest."""

    remote_type = PlainRemote

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.service.handle(PlainRemote(self, addr), data, self.dispatch)

    async def determine_remote(self, request: Message) -> PlainRemote | None:
        if request.requested_scheme not in ("coap", None):
            return None
        if request.unresolved_remote is not None:
            host, port = hostportsplit(request.unresolved_remote)
        elif request.opt.uri_host:
            host, port = request.opt.uri_host, request.opt.uri_port
        else:
            return None
        return PlainRemote(self, (host, port or 5683))


def attach_interface(context: Context, make_interface: Any) -> Any:
    """Wire a message interface into an aiocoap context the way aiocoap wires its own UDP
    transports (token manager → message manager → interface), and return the interface."""
    tman = TokenManager(context)
    mman = MessageManager(tman)
    interface = make_interface(mman)
    mman.message_interface = interface
    tman.token_interface = mman
    context.request_interfaces.append(tman)
    return interface


async def start_coap_udp(context: Context, service: CoapService, registry: Any, bind: str,
                         port: int, receive_buffer: int, *, open_now: bool = True) -> CoapUdpInterface:
    """The plain CoAP interface, wired into ``context``; ``open_now=False`` leaves its socket
    closed (an endpoint turned off through the API, opened later by gateway.endpoints)."""
    interface = attach_interface(context, lambda mman: CoapUdpInterface(service, registry, mman))
    if open_now:
        interface.open(bind, port, receive_buffer)
    return interface
