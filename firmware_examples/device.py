"""Device-side helpers mirroring the 1NCE C SDK: onboarding (``os_auth``) and CoAP over DTLS.

    onboarding = os_auth(("gateway", 5683), source_ip="127.0.0.10")      # GET /bootstrap
    async with CoapsDevice(("gateway", 5684), onboarding, source_ip="127.0.0.10") as device:
        code = await device.post(payload, topic="sensors")              # "2.04"

Like the SDK, ``os_auth`` asks the gateway for the SIM's PSK over plain CoAP (the network
already knows the SIM by its IP), then the device speaks CoAP over DTLS 1.2 with identity =
ICCID and key = the PSK's ASCII bytes.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass

from aiocoap import CON, Message
from aiocoap.numbers.codes import Code

from .coap_client import ACK_RANDOM_FACTOR, ACK_TIMEOUT, MAX_RETRANSMIT, CoapClient, build_request
from .dtls_client import DtlsClient

SDK_URI_HOST = "coap.os.1nce.com"  # what the SDK puts in Uri-Host; the gateway ignores it


class OnboardingError(RuntimeError):
    """``GET /bootstrap`` did not give a PSK; the message has the gateway's answer."""


@dataclass(frozen=True)
class Onboarding:
    iccid: str
    psk: bytes
    url: str | None = None


def os_auth(gateway: tuple[str, int], source_ip: str, timeout: float = 10.0) -> Onboarding:
    """Onboard like the SDK's ``os_auth``: a NON ``GET /bootstrap`` with Uri-Host set."""
    with CoapClient(gateway, source_ip) as client:
        request = build_request(Code.GET, "/bootstrap", confirmable=False, uri_host=SDK_URI_HOST)
        result = client.request(request, timeout=timeout)
    if result.code != "2.05":
        raise OnboardingError(f"bootstrap answered {result.code} {result.payload.decode('utf-8', 'replace')}")
    parts = result.payload.decode("ascii").split(",")
    if len(parts) < 2:
        raise OnboardingError(f"bootstrap answer is not ICCID,PSK: {result.payload!r}")
    return Onboarding(parts[0], parts[1].encode("ascii"), parts[2] if len(parts) > 2 else None)


class CoapsDevice:
    """CoAP requests over one DTLS session (identity = ICCID), with CON retransmission."""

    def __init__(self, server: tuple[str, int], onboarding: Onboarding, source_ip: str) -> None:
        self.dtls = DtlsClient(server, onboarding.iccid, onboarding.psk, local_host=source_ip)
        self._mid = random.randrange(0x10000)

    async def __aenter__(self) -> "CoapsDevice":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 15.0) -> None:
        await self.dtls.connect(timeout)

    async def request(self, message: Message, timeout: float = 30.0) -> tuple[str, bytes]:
        self._mid = (self._mid + 1) & 0xFFFF
        message.mid = self._mid
        message.token = os.urandom(4)
        data = message.encode()
        wait = ACK_TIMEOUT * random.uniform(1.0, ACK_RANDOM_FACTOR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempts = 0
        await self.dtls.send(data)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "timeout", b""
            try:
                raw = await self.dtls.recv(timeout=min(wait, remaining))
            except (asyncio.TimeoutError, TimeoutError):
                if message.mtype == CON and attempts < MAX_RETRANSMIT:
                    attempts += 1
                    wait *= 2
                    await self.dtls.send(data)
                continue
            try:
                reply = Message.decode(raw)
            except Exception:
                continue
            if reply.token != message.token or reply.code == Code.EMPTY:
                continue
            return reply.code.dotted, reply.payload

    async def post(self, payload: bytes, topic: str | None = None, confirmable: bool = True,
                   path: str = "/") -> str:
        message = build_request(Code.POST, path, payload, query=[f"t={topic}"] if topic else None,
                                confirmable=confirmable)
        code, _ = await self.request(message)
        return code

    async def rebind_port(self) -> None:
        """Continue the session from a new source port (a NAT rebinding, a reopened socket)."""
        await self.dtls.rebind_port()

    async def close(self) -> None:
        await self.dtls.close()
