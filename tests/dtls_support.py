"""Test harness for the DTLS engine: a real asyncio UDP socket on loopback that
feeds :class:`DtlsServer`, answering every CoAP request with 2.04 Changed (so
libcoap's coap-client can be used) or echoing the plaintext."""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

from aiocoap import CHANGED, Message
from aiocoap.numbers.types import Type
from mbedtls.exceptions import TLSError
from mbedtls.tls import ClientContext, DTLSConfiguration, DTLSVersion, WantReadError, WantWriteError

from gateway.transports.dtls import DtlsConfig, DtlsServer, DtlsSession

ICCID = b"8988228066600000001"
PSK = b"s3cretPSK-0001"


def coap_changed(request: bytes) -> bytes | None:
    """The 2.04 answer to a CoAP request (piggybacked ACK for CON, NON for NON)."""
    try:
        req = Message.decode(request)
    except Exception:
        return None
    if not req.code.is_request():
        return None
    resp = Message(code=CHANGED)
    if req.mtype == Type.CON:
        resp.mtype, resp.mid = Type.ACK, req.mid
    else:
        resp.mtype, resp.mid = Type.NON, (req.mid + 1) & 0xFFFF
    resp.token = req.token
    return resp.encode()


class DtlsHarness(asyncio.DatagramProtocol):
    def __init__(
        self,
        keys: dict[bytes, bytes] | None = None,
        config: DtlsConfig | None = None,
        mode: str = "coap",
        **server_kwargs,
    ) -> None:
        self.keys = dict(keys if keys is not None else {ICCID: PSK})
        self.config = config or DtlsConfig()
        self.mode = mode
        self.received: list[tuple[DtlsSession, bytes]] = []
        self.psk_lookups: list[tuple[bytes, tuple[str, int]]] = []
        self.closed: list[tuple[DtlsSession, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.server_kwargs = server_kwargs
        self.server: DtlsServer | None = None
        self.on_data: Callable[[DtlsSession, bytes], None] | None = None

    def _psk(self, identity: bytes, addr):
        self.psk_lookups.append((identity, addr))
        return self.keys.get(identity)

    def _app(self, session: DtlsSession, data: bytes) -> None:
        self.received.append((session, data))
        if self.on_data is not None:
            self.on_data(session, data)
            return
        if self.mode == "echo":
            self.server.send(session, data)
        elif self.mode == "coap":
            answer = coap_changed(data)
            if answer is not None:
                self.server.send(session, answer)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "DtlsHarness":
        loop = asyncio.get_running_loop()
        self.server = DtlsServer(
            psk_for_identity=self._psk,
            sendto=lambda data, addr: self.transport.sendto(data, addr),
            on_application_data=self._app,
            config=self.config,
            loop=loop,
            on_session_closed=lambda s, r: self.closed.append((s, r)),
            **self.server_kwargs,
        )
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        return self

    @property
    def addr(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    @property
    def port(self) -> int:
        return self.addr[1]

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # floods: no kernel drops

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.server.datagram_received(data, addr)

    def error_received(self, exc) -> None:
        pass

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown(notify=False)
        if self.transport is not None:
            self.transport.close()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


# --------------------------------------------------------------------------
# Synthetic peers for floods: python-mbedtls client buffers over plain sockets.



def client_context(identity: bytes = ICCID, psk: bytes = PSK, suite: str = "TLS-PSK-WITH-AES-128-CCM-8"):
    return ClientContext(
        DTLSConfiguration(
            ciphers=(suite,),
            lowest_supported_version=DTLSVersion.DTLSv1_2,
            highest_supported_version=DTLSVersion.DTLSv1_2,
            validate_certificates=False,
            pre_shared_key=(identity.decode(), psk),
        )
    )


def step_out(buf) -> bytes:
    """Run handshake steps until the client waits for the network (or is done:
    ValueError "handshake already over"); return its output."""
    try:
        while True:
            try:
                buf.do_handshake()
            except WantWriteError:
                pass
    except (WantReadError, ValueError):
        pass
    n = len(buf._output_buffer)
    data = buf.peek_outgoing(n) if n else b""
    buf.consume_outgoing(n)
    return data


def client_hello(ctx=None) -> bytes:
    """A fresh, valid first ClientHello (no cookie)."""
    return step_out((ctx or client_context()).wrap_buffers(None))


def half_open(server: tuple[str, int], local_ip: str, ctx=None, timeout: float = 1.0,
              hold: list[socket.socket] | None = None) -> str:
    """Do the cookie round trip, send the ClientHello with cookie, then go
    silent: leaves a half-open handshake on the server (if it accepted it).
    Returns "flight" if the server answered with its flight, else "silent".
    With ``hold`` the socket stays open (appended there), so the next call from the same IP
    cannot get the same ephemeral port and take the place of this half-open handshake."""
    ctx = ctx or client_context()
    buf = ctx.wrap_buffers(None)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((local_ip, 0))
        s.settimeout(timeout)
        s.sendto(step_out(buf), server)
        hvr, _ = s.recvfrom(4096)
        buf.receive_from_network(hvr)
        s.sendto(step_out(buf), server)
        try:
            s.recvfrom(4096)
            return "flight"
        except socket.timeout:
            return "silent"
    except (socket.timeout, TLSError):
        return "silent"
    finally:
        if hold is None:
            s.close()
        else:
            hold.append(s)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 1024
