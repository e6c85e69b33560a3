"""Device Authenticator: which SIM sent this packet.

The registry lives in the store; this class keeps an in-memory index (source IP → SIM, ICCID →
SIM) for the hot path and swaps it whole when the store says the registry changed, so a lookup
is one dict access and never sees a half-built index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from inspector.records import Sim

log = logging.getLogger("nce.identity")


class SimRegistry:
    def __init__(self, store: Any) -> None:
        self._store = store
        self.by_ip: dict[str, Sim] = {}
        self.by_iccid: dict[str, Sim] = {}
        self.version = -1
        self._listeners: list[Callable[[], None]] = []

    def reload(self) -> None:
        """Rebuild the index from the store (blocking; call from a worker thread when large)."""
        version = self._store.sims_version()
        sims = self._store.all_sims()
        self.by_ip = {s.ip_address: s for s in sims}
        self.by_iccid = {s.iccid: s for s in sims}
        self.version = version
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every reload (e.g. DTLS drops sessions of disabled SIMs)."""
        self._listeners.append(listener)

    def enabled_sim_for_ip(self, ip: str) -> Sim | None:
        sim = self.by_ip.get(ip)
        return sim if sim is not None and sim.status == "Enabled" else None

    def enabled_sim_for_iccid(self, iccid: str) -> Sim | None:
        sim = self.by_iccid.get(iccid)
        return sim if sim is not None and sim.status == "Enabled" else None

    def refusal_for_ip(self, ip: str) -> str:
        """The rejection reason for traffic from ``ip`` that found no enabled SIM."""
        return "unknown_sim" if ip not in self.by_ip else "disabled_sim"

    def refusal_for_iccid(self, iccid: str) -> str:
        """The same for a DTLS identity (ICCID)."""
        return "unknown_sim" if iccid not in self.by_iccid else "disabled_sim"
