"""Plain UDP uplink (port 4445): each datagram from a known SIM's address is one message.

UDP has no answer, so there is nothing to wait for: the datagram goes to the pipeline and the
group commit makes it durable shortly after.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..metrics import Metrics
from .sockets import enlarge_receive_buffer

log = logging.getLogger("nce.udp")


class UdpUplink(asyncio.DatagramProtocol):
    def __init__(self, registry: Any, pipeline: Any, metrics: Metrics, max_payload: int) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.metrics = metrics
        self.max_payload = max_payload
        self.transport: asyncio.DatagramTransport | None = None
        self._received = metrics.received_by["UDP"]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._received.inc()
        sim = self.registry.enabled_sim_for_ip(addr[0])
        if sim is None:
            reason = "disabled_sim" if addr[0] in self.registry.by_ip else "unknown_sim"
            self.metrics.reject("UDP", reason)
            return
        if len(data) > self.max_payload:
            self.metrics.reject("UDP", "oversize")
            return
        self.pipeline.uplink(sim, "UDP", data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)


async def start_udp(registry: Any, pipeline: Any, metrics: Metrics, bind: str, port: int,
                    max_payload: int, receive_buffer: int) -> tuple[asyncio.DatagramTransport, UdpUplink]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: UdpUplink(registry, pipeline, metrics, max_payload), local_addr=(bind, port))
    enlarge_receive_buffer(transport.get_extra_info("socket"), receive_buffer)
    return transport, protocol
