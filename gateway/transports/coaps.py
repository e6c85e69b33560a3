"""CoAP over DTLS 1.2 (port 5684): the DTLS engine in front of the same CoAP service.

Decrypted datagrams go to :class:`~gateway.transports.coap.CoapService` exactly like plain
ones (one code path: fast uplink POSTs, aiocoap for the rest); the event records the protocol
as COAP. A device is its PSK identity (the ICCID), not its address: the session, which
follows the SIM across source ports, is the remote.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from typing import Any

from aiocoap import Message
from aiocoap.messagemanager import MessageManager
from aiocoap.protocol import Context

from inspector.records import Sim

from .coap import CoapService, DeviceInterface, DeviceRemote, attach_interface
from .dtls import DtlsConfig, DtlsServer, DtlsSession, HandshakeRefused

log = logging.getLogger("nce.coaps")


class DtlsRemote(DeviceRemote):
    """A device's DTLS session, as aiocoap and the fast path both see it."""

    scheme = "coaps"

    def __init__(self, interface: CoapDtlsInterface, session: DtlsSession) -> None:
        self.interface = interface
        self.session = session
        self.key: Hashable = session
        self.psk_identity = (session.identity or b"").decode("ascii", "replace")

    def __hash__(self) -> int:
        return hash(self.session)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DtlsRemote) and other.session is self.session

    def __repr__(self) -> str:
        return f"<DtlsRemote {self.psk_identity} at {self.session.addr[0]}:{self.session.addr[1]}>"

    def send(self, data: bytes) -> None:
        self.interface.send_plaintext(self.session, data)

    def sim(self) -> Sim | None:
        return self.interface.registry.enabled_sim_for_iccid(self.psk_identity)

    def refusal_reason(self) -> str:
        return self.interface.registry.refusal_for_iccid(self.psk_identity)

    @property
    def address(self) -> tuple[str, int]:  # type: ignore[override]
        return self.session.addr

    @property
    def blockwise_key(self) -> Hashable:
        return self.session


class CoapDtlsInterface(DeviceInterface):
    """The CoAPs socket: DTLS engine → CoAP service (fast path) or aiocoap."""

    remote_type = DtlsRemote

    def __init__(self, service: CoapService, registry: Any, psks: Any, mman: MessageManager,
                 config: DtlsConfig) -> None:
        super().__init__(service, registry, mman)
        self.psks = psks
        self.dtls = DtlsServer(psk_for_identity=self._psk_for_identity, sendto=self.endpoint.sendto,
                               on_application_data=self._plaintext, config=config,
                               session_for_ip=self._sessions_of_sim, on_session_closed=self._closed,
                               on_session_established=self._established, may_supersede=self._may_supersede)

    # identity ----------------------------------------------------------------------------

    def _psk_for_identity(self, identity: bytes, addr: tuple[str, int]) -> bytes | None:
        """The key of an enabled SIM whose ICCID is the identity. A SIM's IP may not be used
        with another SIM's identity (the IP is a SIM's identity on the wire too)."""
        try:
            iccid = identity.decode("ascii")
        except UnicodeDecodeError:
            raise HandshakeRefused("unknown_sim") from None
        sim = self.registry.enabled_sim_for_iccid(iccid)
        if sim is None:
            raise HandshakeRefused(self.registry.refusal_for_iccid(iccid))
        owner = self.registry.sim_for_ip(addr[0])
        if owner is not None and owner.iccid != iccid:
            log.warning("DTLS identity %s from the IP of SIM %s refused", iccid, owner.iccid,
                        extra={"event": "dtls_identity_ip_mismatch", "iccid": iccid})
            raise HandshakeRefused("identity_of_other_sim")
        return self.psks.dtls_key_for(iccid, addr[0])

    def _may_supersede(self, old: DtlsSession, new: DtlsSession) -> bool:
        """Only the SIM's own address may replace a session at the SIM's own address: a host
        elsewhere that holds the key (a private APN's NAT is allowed to) opens a session of its
        own beside it instead of cutting the device off."""
        owner = self.registry.sim_for_ip(old.addr[0])
        if owner is None or old.identity != owner.iccid.encode("ascii"):
            return True
        return new.addr[0] == old.addr[0]

    def _established(self, session: DtlsSession) -> None:
        if session.identity is not None:
            self.psks.handshake_result(session.identity.decode("ascii", "replace"), session.addr[0], session.psk, True)

    def _sessions_of_sim(self, ip: str, candidates: list[DtlsSession]) -> Iterable[DtlsSession]:
        """Rebinding (a new source port) continues only the session of the SIM owning the IP."""
        owner = self.registry.sim_for_ip(ip)
        if owner is None:
            return candidates
        identity = owner.iccid.encode("ascii")
        return [s for s in candidates if s.identity == identity]

    # data path ---------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.dtls.datagram_received(data, addr)

    def _plaintext(self, session: DtlsSession, data: bytes) -> None:
        remote = session.context
        if remote is None:
            remote = session.context = DtlsRemote(self, session)
        self.service.handle(remote, data, self.dispatch)

    def _closed(self, session: DtlsSession, reason: str) -> None:
        session.context = None
        if reason == "handshake_failed_bad_key" and session.identity is not None:
            self.psks.handshake_result(session.identity.decode("ascii", "replace"), session.addr[0], session.psk,
                                       False)

    def send_plaintext(self, session: DtlsSession, data: bytes) -> None:
        if session.state != "established":
            return  # the session ended while its answer was being committed; the device retries
        try:
            self.dtls.send(session, data)
        except ConnectionError:
            pass

    async def shutdown(self) -> None:
        self.dtls.shutdown()
        await super().shutdown()

    async def determine_remote(self, request: Message) -> None:
        return None  # the gateway never opens DTLS sessions itself; it answers on the device's


def dtls_config(coaps: Any) -> DtlsConfig:
    """The engine's limits from the ``[coaps]`` section."""
    return DtlsConfig(idle_timeout=coaps.idle_timeout_seconds, max_sessions=coaps.max_sessions,
                      max_half_open=coaps.max_half_open,
                      handshakes_per_ip_per_second=coaps.handshakes_per_ip_per_second)


async def start_coaps(context: Context, service: CoapService, registry: Any, psks: Any, coaps: Any, *,
                      open_now: bool = True) -> CoapDtlsInterface:
    interface = attach_interface(
        context, lambda mman: CoapDtlsInterface(service, registry, psks, mman, dtls_config(coaps)))
    if open_now:
        interface.open(coaps.bind, coaps.port, coaps.receive_buffer_bytes)
    return interface
