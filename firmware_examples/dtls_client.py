"""Device-side DTLS 1.2 PSK client (asyncio, python-mbedtls), like the 1NCE SDK's
CoAPs uplink: identity = ICCID, key = the PSK's ASCII bytes.

    client = DtlsClient(("127.0.0.1", 5684), identity=b"8988...", psk=b"secret",
                        local_host="127.0.0.10")
    await client.connect()
    await client.send(coap_bytes)
    answer = await client.recv(timeout=5)
    await client.rebind_port()       # new source port, same DTLS session
    await client.close()             # sends close_notify

Standalone on purpose (no gateway imports): it is an example of firmware.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Iterable

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    ClientContext,
    DTLSConfiguration,
    DTLSVersion,
    HandshakeStep,
    WantReadError,
    WantWriteError,
)

Addr = tuple[str, int]

DEFAULT_CIPHERS = (
    "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS-PSK-WITH-AES-128-CCM",
    "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS-PSK-WITH-AES-128-CBC-SHA256",
)


def _suite(name: str) -> str:
    return name.replace("_", "-").upper()


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, client: "DtlsClient") -> None:
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.client._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        pass

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        if not self.closed.done():
            self.closed.set_result(None)


class DtlsClient:
    """One DTLS session to one server, over a UDP socket bound to ``local_host``."""

    def __init__(
        self,
        server: Addr,
        identity: bytes | str,
        psk: bytes,
        *,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        ciphers: Iterable[str] = DEFAULT_CIPHERS,
        retransmit_min: float = 1.0,
        retransmit_max: float = 8.0,
        max_datagram: int = 1400,
    ) -> None:
        self.server = server
        self.identity = identity.decode() if isinstance(identity, bytes) else identity
        self._local = (local_host, local_port)
        self._ctx = ClientContext(
            DTLSConfiguration(
                ciphers=tuple(_suite(c) for c in ciphers),
                lowest_supported_version=DTLSVersion.DTLSv1_2,
                highest_supported_version=DTLSVersion.DTLSv1_2,
                validate_certificates=False,
                pre_shared_key=(self.identity, bytes(psk)),
                handshake_timeout_min=retransmit_min,
                handshake_timeout_max=retransmit_max,
            )
        )
        self._max_datagram = max_datagram
        self._buf = None
        self._endpoint: _Endpoint | None = None
        self._incoming: collections.deque[bytes] = collections.deque(maxlen=256)
        self._plain: collections.deque[bytes] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._rbuf = bytearray(17 * 1024)
        self.closed_by_peer = False

    # --------------------------------------------------------------- public

    @property
    def local_addr(self) -> Addr | None:
        if self._endpoint is None or self._endpoint.transport is None:
            return None
        return self._endpoint.transport.get_extra_info("sockname")[:2]

    @property
    def cipher(self) -> str | None:
        return self._buf.cipher() if self._buf is not None else None

    @property
    def connected(self) -> bool:
        return self._buf is not None and self._buf._handshake_state is HandshakeStep.HANDSHAKE_OVER

    async def connect(self, timeout: float = 15.0) -> None:
        """Open the socket (if needed) and run the handshake (cookie exchange,
        retransmissions on Mbed TLS' timers)."""
        loop = asyncio.get_running_loop()
        if self._endpoint is None:
            await self._open(self._local)
        self._buf = buf = self._ctx.wrap_buffers(None)
        deadline = loop.time() + timeout
        while True:
            try:
                buf.do_handshake()
            except WantWriteError:
                pass
            except WantReadError:
                self._flush()
                if not self._incoming:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError("DTLS handshake timed out") from None
                    # Wake up for a datagram, or after a short while so that
                    # Mbed TLS can retransmit when its timer expired.
                    await self._wait(min(0.1, remaining))
                if self._incoming:
                    buf.receive_from_network(self._incoming.popleft())
                continue
            except TLSError as exc:
                self._flush()  # the alert
                raise ConnectionError(f"DTLS handshake failed: {exc}") from exc
            self._flush()
            if buf._handshake_state is HandshakeStep.HANDSHAKE_OVER:
                return

    async def send(self, data: bytes) -> None:
        """Encrypt ``data`` as one application-data record and send it."""
        if not self.connected:
            raise ConnectionError("not connected")
        try:
            self._buf.write(data)
        except TLSError as exc:
            raise ConnectionError(f"DTLS write failed: {exc}") from exc
        self._flush()

    async def recv(self, timeout: float | None = None) -> bytes:
        """Next decrypted application-data record from the server."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._plain:
            if self.closed_by_peer:
                raise ConnectionResetError("server closed the DTLS session")
            if self._incoming:
                self._decrypt(self._incoming.popleft())
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("no DTLS record received")
            await self._wait(remaining)
        return self._plain.popleft()

    async def rebind_port(self, port: int = 0, host: str | None = None) -> Addr:
        """Close the UDP socket and open a new one on the same host (new port):
        what a NAT rebinding or a firmware that reopens its socket does.  The
        DTLS session is kept; the server must follow it.  (``host`` changes the
        local address too, for tests.)"""
        host = host or self._local[0]
        self._local = (host, self._local[1])
        await self._close_socket()
        await self._open((host, port))
        return self.local_addr  # type: ignore[return-value]

    async def close(self, notify: bool = True) -> None:
        """Send close_notify (unless ``notify`` is False: a crashed device) and
        close the socket."""
        if notify and self.connected:
            try:
                self._buf.shutdown()
            except TLSError:
                pass
            self._flush()
        self._buf = None
        await self._close_socket()

    # ------------------------------------------------------------ internals

    async def _open(self, local: Addr) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(lambda: _Endpoint(self), local_addr=local)
        self._endpoint = proto

    async def _close_socket(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None and endpoint.transport is not None:
            endpoint.transport.close()
            await endpoint.closed  # the socket is really closed (port free) after this

    def _datagram(self, data: bytes, addr) -> None:
        if tuple(addr[:2]) != tuple(self.server):
            return
        self._incoming.append(data)
        if self._wakeup is not None:
            self._wakeup.set()

    async def _wait(self, timeout: float | None) -> None:
        self._wakeup = asyncio.Event()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._wakeup = None

    def _decrypt(self, data: bytes) -> None:
        buf = self._buf
        if buf is None:
            return
        buf.receive_from_network(data)
        while True:
            try:
                n = buf.readinto(self._rbuf, len(self._rbuf))
            except (WantReadError, WantWriteError):
                break
            except TLSError:  # close_notify or fatal alert
                self.closed_by_peer = True
                self._buf = None
                break
            self._plain.append(bytes(self._rbuf[:n]))
        if self._buf is not None:
            self._flush()

    def _flush(self) -> None:
        buf = self._buf
        if buf is None or self._endpoint is None or self._endpoint.transport is None:
            return
        n = len(buf._output_buffer)
        if not n:
            return
        data = buf.peek_outgoing(n)
        buf.consume_outgoing(n)
        for dgram in _datagrams(data, self._max_datagram):
            self._endpoint.transport.sendto(dgram, self.server)


def _datagrams(stream: bytes, max_size: int) -> list[bytes]:
    """Cut the outgoing stream at DTLS record boundaries (record length in
    header bytes 11-12) and pack whole records into datagrams <= max_size."""
    if len(stream) <= max_size:
        return [stream]
    out, cur, i = [], b"", 0
    while i < len(stream):
        end = i + 13 + int.from_bytes(stream[i + 11 : i + 13], "big")
        rec = stream[i:end]
        if cur and len(cur) + len(rec) > max_size:
            out.append(cur)
            cur = b""
        cur += rec
        i = end
    if cur:
        out.append(cur)
    return out
