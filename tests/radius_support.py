"""FreeRADIUS's ``radclient`` as the mobile core's accounting client, and a gateway config with
RADIUS on."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config

SECRET = "testing123-core"
needs_radclient = pytest.mark.skipif(shutil.which("radclient") is None,
                                     reason="radclient missing: apt-get install freeradius-utils")


def radius_config(tmp_path: Path, **sections: Any) -> Any:
    config = make_config(tmp_path, **sections)
    config.radius.enabled = True
    config.radius.bind = "127.0.0.1"
    config.radius.port = 0
    config.radius.clients = {"127.0.0.1": SECRET}
    config.radius.disconnect_timeout_seconds = 0.5
    config.radius.disconnect_attempts = 2
    return config


def attributes(status: str, imsi: str, ip: str | None = None, session: str = "sess-1", **extra: Any) -> str:
    """radclient's input: one attribute per line (FreeRADIUS dictionary names)."""
    lines = [f"Acct-Status-Type = {status}", f'3GPP-IMSI = "{imsi}"', f'Acct-Session-Id = "{session}"',
             "NAS-IP-Address = 127.0.0.1"]
    if ip:
        lines.append(f"Framed-IP-Address = {ip}")
    for name, value in extra.items():
        name = name.replace("_", "-").lstrip("-")
        lines.append(f'{name} = "{value}"' if isinstance(value, str) and not value.startswith("0x") else
                     f"{name} = {value}")
    return "\n".join(lines) + "\n"


async def radclient(port: int, text: str, secret: str = SECRET, timeout: float = 2.0) -> tuple[int, str]:
    """Send one Accounting-Request; (exit code, output). Exit code 0 means answered."""
    process = await asyncio.create_subprocess_exec(
        "radclient", "-x", "-r", "1", "-t", str(timeout), f"127.0.0.1:{port}", "acct", secret,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate(text.encode())
    return process.returncode or 0, out.decode("utf-8", "replace")


def sample(metric: Any, **labels: str) -> float:
    """The current value of a prometheus counter (with labels, if any)."""
    child = metric.labels(**labels) if labels else metric
    return child._value.get()


class NasStandIn(asyncio.DatagramProtocol):
    """The packet gateway's Dynamic Authorization server (RFC 5176) on pyrad: records every
    Disconnect-Request whose authenticator checks out with the shared secret, answers ACK (or
    ``answer = rp.DisconnectNAK``)."""

    def __init__(self, secret: str = SECRET) -> None:
        from pyrad import packet as rp

        from gateway.connectivity.radius import dictionary

        self.rp = rp
        self.secret = secret.encode()
        self.dict = dictionary()
        self.requests: list[Any] = []
        self.answer = rp.DisconnectACK
        self.arrived = asyncio.Event()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        pkt = self.rp.CoAPacket(packet=data, secret=self.secret, dict=self.dict)
        if pkt.code != self.rp.DisconnectRequest or not pkt.VerifyCoARequest():
            return
        self.requests.append(pkt)
        reply = pkt.CreateReply()
        reply.code = self.answer
        self.transport.sendto(reply.ReplyPacket(), addr)
        self.arrived.set()

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async def _wait() -> None:
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(_wait(), timeout)


async def start_nas() -> tuple[NasStandIn, int]:
    loop = asyncio.get_running_loop()
    transport, nas = await loop.create_datagram_endpoint(NasStandIn, local_addr=("127.0.0.1", 0))
    return nas, transport.get_extra_info("sockname")[1]
