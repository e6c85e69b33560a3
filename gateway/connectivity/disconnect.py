"""Disconnect-Request (RFC 5176) to the NAS that reported a SIM's session: a connection reset,
and how a block takes effect in the network.

One UDP socket on the event loop sends every request; the reply is matched by identifier and
checked with pyrad (Response Authenticator over the request's authenticator and the shared
secret). A request unanswered after ``timeout`` is sent again, ``attempts`` times in all, with the
same identifier and authenticator (RFC 5176 §2.3), then recorded as TIMEOUT. At most 256
requests are in flight (one per identifier); more wait for a free one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyrad import packet as rp

from .radius import dictionary

log = logging.getLogger("nce.disconnect")

ACK, NAK, TIMEOUT = "ACK", "NAK", "TIMEOUT"


class DisconnectClient(asyncio.DatagramProtocol):
    def __init__(self, *, timeout: float, attempts: int) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.dict = dictionary()
        self.transport: asyncio.DatagramTransport | None = None
        self._waiting: dict[int, tuple[rp.CoAPacket, asyncio.Future]] = {}
        self._free = asyncio.Semaphore(256)
        self._next_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if len(data) < 20:
            return
        entry = self._waiting.get(data[1])
        if entry is None:
            return
        request, future = entry
        try:
            reply = request.CreateReply(packet=data)
        except Exception:
            log.info("undecodable Disconnect reply from %s", addr[0])
            return
        if not request.VerifyReply(reply, data):
            log.warning("Disconnect reply from %s fails its authenticator (wrong secret?)", addr[0],
                        extra={"event": "disconnect_bad_reply"})
            return
        if not future.done():
            future.set_result(ACK if reply.code == rp.DisconnectACK else NAK)

    async def disconnect(self, nas: tuple[str, int], secret: str, attributes: dict[str, Any]) -> str:
        """Send one Disconnect-Request; returns ACK, NAK or TIMEOUT."""
        assert self.transport is not None
        async with self._free:
            ident = self._identifier()
            request = rp.CoAPacket(rp.DisconnectRequest, ident, secret.encode(), dict=self.dict)
            for name, value in attributes.items():
                if value is not None:
                    request[name] = value
            raw = request.RequestPacket()
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            self._waiting[ident] = (request, future)
            try:
                for _ in range(self.attempts):
                    self.transport.sendto(raw, nas)
                    try:
                        return await asyncio.wait_for(asyncio.shield(future), self.timeout)
                    except asyncio.TimeoutError:
                        continue
                return TIMEOUT
            finally:
                del self._waiting[ident]

    def _identifier(self) -> int:
        for _ in range(256):
            ident = self._next_id
            self._next_id = (self._next_id + 1) % 256
            if ident not in self._waiting:
                return ident
        raise RuntimeError("no free RADIUS identifier")  # cannot happen: the semaphore allows 256

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_disconnect_client(timeout: float, attempts: int) -> DisconnectClient:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DisconnectClient(timeout=timeout, attempts=attempts), local_addr=("0.0.0.0", 0))
    return protocol
