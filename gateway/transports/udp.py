"""Plain UDP uplink (port 4445): each datagram from a known SIM's address is one message.

UDP has no answer, so there is nothing to wait for: the datagram goes to the pipeline and the
group commit makes it durable shortly after.
"""

from __future__ import annotations

import logging
from typing import Any

from ..metrics import Metrics
from .sockets import Address, UdpEndpoint

log = logging.getLogger("nce.udp")


class UdpUplink:
    def __init__(self, registry: Any, pipeline: Any, metrics: Metrics, max_payload: int) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.metrics = metrics
        self.max_payload = max_payload
        self.endpoint = UdpEndpoint(self.datagram_received)
        self._received = metrics.received_by["UDP"]
        self.on_heard: Any = None  # (sim, (ip, port)) -> None: the Device Controller

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._received.inc()
        sim = self.registry.enabled_sim_for_ip(addr[0])
        if sim is None:
            self.metrics.reject("UDP", self.registry.refusal_for_ip(addr[0]))
            return
        if len(data) > self.max_payload:
            self.metrics.reject("UDP", "oversize")
            return
        if self.on_heard is not None:
            self.on_heard(sim, addr)
        self.pipeline.uplink(sim, "UDP", data)
