"""Device Authenticator: which SIM sent this packet.

``SimRegistry`` is the one read-only directory the transports, the LwM2M server and the API ask
(``sim_for_ip``, ``sim_for_iccid``, ``sim_for_imsi``, ``enabled_sim_for_ip``, ...). Behind it:

* SIM master data from the ``sims`` table, with each SIM's **static** address (the CSV import);
* **dynamic** address bindings reported by the mobile core over RADIUS accounting
  (``sim_bindings``, see docs/connectivity.md), and blocks (quota, limit, IMEI lock).

Which source wins: a RADIUS session is the network's current truth, so while a SIM has one, its
address is the session's (its static address no longer names it), and an address bound to a SIM
by RADIUS names that SIM even if another SIM has it as its static address. Without a session a
SIM is found at its static address.

Lookups are dict reads (constant time). A reload of the master data builds new dicts and swaps
them whole; a binding change updates only the addresses it touches. Both hold ``_lock`` so the
reload (run in a reader thread) and binding changes (event loop) never lose each other's work;
readers take no lock. The SIM objects handed out carry the address in force, so an event built
from one takes the address from the binding at receive time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from inspector.records import BindingRow, Sim

log = logging.getLogger("nce.identity")


class SimRegistry:
    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._master: dict[str, Sim] = {}  # iccid -> SIM as stored (static address)
        self._static: dict[str, str] = {}  # static address -> iccid
        self._bound: dict[str, str] = {}  # iccid -> address bound by RADIUS
        self._bound_ip: dict[str, str] = {}  # address bound by RADIUS -> iccid
        self._blocked: dict[str, str] = {}  # iccid -> reason
        self._by_ip: dict[str, Sim] = {}
        self._by_iccid: dict[str, Sim] = {}
        self._by_imsi: dict[str, Sim] = {}
        self.version = -1
        self.bindings_seq = 0
        self._listeners: list[Callable[[], None]] = []
        self._lost_listeners: list[Callable[[set[str]], None]] = []

    # the read-only directory (hot path) ---------------------------------------------------

    def sim_for_ip(self, ip: str) -> Sim | None:
        """The SIM an address names now, whatever its status."""
        return self._by_ip.get(ip)

    def sim_for_iccid(self, iccid: str) -> Sim | None:
        return self._by_iccid.get(iccid)

    def sim_for_imsi(self, imsi: str) -> Sim | None:
        return self._by_imsi.get(imsi)

    def enabled_sim_for_ip(self, ip: str) -> Sim | None:
        """The SIM an address names if it may send (enabled and not blocked)."""
        sim = self._by_ip.get(ip)
        if sim is None or sim.status != "Enabled" or (self._blocked and sim.iccid in self._blocked):
            return None
        return sim

    def enabled_sim_for_iccid(self, iccid: str) -> Sim | None:
        sim = self._by_iccid.get(iccid)
        if sim is None or sim.status != "Enabled" or (self._blocked and sim.iccid in self._blocked):
            return None
        return sim

    def refusal_for_ip(self, ip: str) -> str:
        """Why ``enabled_sim_for_ip`` said no: the metric label of the rejection."""
        return self._refusal(self._by_ip.get(ip))

    def refusal_for_iccid(self, iccid: str) -> str:
        """The same for a DTLS identity (ICCID) and ``enabled_sim_for_iccid``."""
        return self._refusal(self._by_iccid.get(iccid))

    def _refusal(self, sim: Sim | None) -> str:
        if sim is None:
            return "unknown_sim"
        return "blocked_sim" if sim.iccid in self._blocked else "disabled_sim"

    def block_reason(self, iccid: str) -> str | None:
        return self._blocked.get(iccid)

    def bound_address(self, iccid: str) -> str | None:
        """The address RADIUS bound to the SIM, if it has a session."""
        return self._bound.get(iccid)

    @property
    def by_iccid(self) -> dict[str, Sim]:
        """Deprecated read-only view (ICCID → SIM with its address in force): use
        ``sim_for_iccid`` or ``iccid in registry``. Kept for code written before the directory."""
        return self._by_iccid

    @property
    def by_ip(self) -> dict[str, Sim]:
        """Deprecated read-only view (address → SIM): use ``sim_for_ip``."""
        return self._by_ip

    def __len__(self) -> int:
        return len(self._by_iccid)

    def state_counts(self) -> dict[str, int]:
        """SIMs by state, each SIM counted once: ``disabled``; else ``blocked`` (quota, limit, IMEI
        lock); else ``online`` (a RADIUS session) or ``offline``. O(SIMs): for dashboards, not the hot path."""
        counts = {"online": 0, "offline": 0, "blocked": 0, "disabled": 0}
        for iccid, sim in self._by_iccid.items():
            if sim.status != "Enabled":
                counts["disabled"] += 1
            elif iccid in self._blocked:
                counts["blocked"] += 1
            elif iccid in self._bound:
                counts["online"] += 1
            else:
                counts["offline"] += 1
        return counts

    def __contains__(self, iccid: object) -> bool:
        return iccid in self._by_iccid

    # listeners ----------------------------------------------------------------------------

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every reload of the master data."""
        self._listeners.append(listener)

    def on_access_lost(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener(iccids)`` with the SIMs that lost an address or the right to send
        (disabled, blocked, address moved or unbound), e.g. to close their DTLS sessions.
        Called on the thread that made the change."""
        self._lost_listeners.append(listener)

    def _lost(self, iccids: set[str]) -> None:
        if iccids:
            for listener in self._lost_listeners:
                listener(iccids)

    # master data --------------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild from the store's SIM table (blocking; call from a worker thread when large)."""
        version = self._store.sims_version()
        sims = self._store.all_sims()
        with self._lock:
            before = {i for i, s in self._by_iccid.items() if s.status == "Enabled"}
            self._master = {s.iccid: s for s in sims}
            self._static = {s.ip_address: s.iccid for s in sims if s.ip_address}
            by_iccid = {s.iccid: self._current(s) for s in sims}
            by_ip: dict[str, Sim] = {}
            for sim in sims:
                if sim.ip_address and sim.iccid not in self._bound and sim.ip_address not in self._bound_ip:
                    by_ip[sim.ip_address] = by_iccid[sim.iccid]
            for ip, iccid in self._bound_ip.items():
                if iccid in by_iccid:
                    by_ip[ip] = by_iccid[iccid]
            self._by_iccid, self._by_ip = by_iccid, by_ip
            self._by_imsi = {s.imsi: by_iccid[s.iccid] for s in sims}
            self.version = version
            after = {i for i, s in by_iccid.items() if s.status == "Enabled"}
        for listener in self._listeners:
            listener()
        self._lost(before - after)

    def _current(self, sim: Sim) -> Sim:
        """The SIM with the address in force (the bound one while it has a session)."""
        ip = self._bound.get(sim.iccid)
        return sim if ip is None or ip == sim.ip_address else dataclasses.replace(sim, ip_address=ip)

    # bindings -----------------------------------------------------------------------------

    def load_bindings(self) -> None:
        """Read every stored binding and block (blocking: start-up, from a worker thread)."""
        from inspector import bindings

        self.apply_rows(self._store.read_with(bindings.load_all))

    def follow_bindings(self) -> int:
        """Apply rows other processes changed since the last one seen (blocking); returns how many."""
        from inspector import bindings

        rows = self._store.read_with(bindings.changed_since, self.bindings_seq)
        self.apply_rows(rows)
        return len(rows)

    def apply_rows(self, rows: Iterable[BindingRow]) -> None:
        """Make the stored state of these rows the directory's (idempotent; in change order)."""
        lost: set[str] = set()
        with self._lock:
            for row in rows:
                lost |= self._set_binding(row.iccid, row.ip_address)
                lost |= self._set_block(row.iccid, row.block_reason)
                if row.change_seq > self.bindings_seq:
                    self.bindings_seq = row.change_seq
        self._lost(lost)

    def bind(self, iccid: str, ip: str | None) -> None:
        """Bind (or with ``None`` unbind) a SIM's address; whoever held the address loses it."""
        with self._lock:
            lost = self._set_binding(iccid, ip)
        self._lost(lost)

    def block(self, iccid: str, reason: str | None) -> None:
        with self._lock:
            lost = self._set_block(iccid, reason)
        self._lost(lost)

    def _set_block(self, iccid: str, reason: str | None) -> set[str]:
        if reason is None:
            self._blocked.pop(iccid, None)
            return set()
        new = iccid not in self._blocked
        self._blocked[iccid] = reason
        return {iccid} if new else set()

    def _set_binding(self, iccid: str, ip: str | None) -> set[str]:
        old = self._bound.get(iccid)
        if old == ip:
            return set()
        lost: set[str] = set()
        touched = {a for a in (old, ip) if a}
        if old is not None:
            del self._bound[iccid]
            self._bound_ip.pop(old, None)
            lost.add(iccid)
        if ip is not None:
            holder = self._bound_ip.get(ip)
            if holder is not None and holder != iccid:
                del self._bound[holder]
                lost.add(holder)
                self._refresh_sim(holder, touched)
            self._bound[iccid] = ip
            self._bound_ip[ip] = iccid
        self._refresh_sim(iccid, touched)
        for address in touched:
            self._refresh_address(address)
        return lost

    def _refresh_sim(self, iccid: str, touched: set[str]) -> None:
        """Re-derive one SIM's object; its static address is among the addresses to refresh."""
        master = self._master.get(iccid)
        if master is None:
            return
        current = self._current(master)
        self._by_iccid[iccid] = current
        self._by_imsi[master.imsi] = current
        if master.ip_address:
            touched.add(master.ip_address)

    def _refresh_address(self, ip: str) -> None:
        """Who an address names: its RADIUS binding, else the SIM with it as static address and
        no session of its own, else nobody."""
        iccid = self._bound_ip.get(ip)
        if iccid is None:
            static = self._static.get(ip)
            if static is not None and static not in self._bound:
                iccid = static
        sim = self._by_iccid.get(iccid) if iccid is not None else None
        if sim is None:
            self._by_ip.pop(ip, None)
        else:
            self._by_ip[ip] = sim
