"""What an accounting report means for a SIM: binding, usage, quota, IMEI lock, events, blocks.

Runs on the event loop. Each Accounting-Request becomes one ``Pending`` for the group commit
(its new ``sim_bindings`` row with usage deltas, and its events); the RADIUS answer and the
directory update run as the commit's acknowledgement, so an answered request is durable and its
binding visible to the uplink path. The last state of every reported SIM is kept in memory
(``sessions``) so counters and changes are computed without a store read per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from inspector import bindings as sql
from inspector.records import BindingRow, EventRecord, Pending, Sim

from .. import events
from ..locator.service import cell_from_uli
from .limits import data_limit_bytes
from .location import rat_name
from . import quota
from .quota import QUOTA_EXPIRED_BLOCK, QuotaDefaults
from .radius import AccountingRecord

log = logging.getLogger("nce.connectivity")

MB = 1_000_000
DATA_QUOTA_BLOCK = "DATA_QUOTA_EXHAUSTED"
DATA_LIMIT_BLOCK = "DATA_LIMIT_REACHED"
IMEI_LOCK_BLOCK = "IMEI_LOCK"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_day_cache: tuple[int, int, str] = (0, 0, "")


def utc_day(ms: int) -> str:
    """``YYYY-MM-DD`` (UTC) of a time; the current day's text is kept (this runs per request)."""
    global _day_cache
    start, end, text = _day_cache
    if start <= ms < end:
        return text
    start = ms - ms % 86_400_000
    text = datetime.fromtimestamp(start / 1000, timezone.utc).strftime("%Y-%m-%d")
    _day_cache = (start, start + 86_400_000, text)
    return text


def imei_of(imeisv: str | None) -> str | None:
    """The 14 digits that identify a device (TAC + serial) in an IMEI or IMEISV."""
    return imeisv[:14] if imeisv and len(imeisv) >= 14 else imeisv


class ConnectivityService:
    def __init__(self, directory: Any, committer: Any, router: Any, metrics: Any, *, store: Any,
                 data_quota_mb: float, sms_quota: int, lifetime_years: int,
                 sender: Any = None, secrets: dict[str, str] | None = None, disconnect_port: int = 3799,
                 store_read: Callable[..., Any] | None = None, clock: Callable[[], int] = now_ms) -> None:
        self.directory = directory
        self.committer = committer
        self.router = router
        self.metrics = metrics
        self.store = store
        self.data_quota = int(data_quota_mb * MB)
        self.sms_quota = sms_quota
        self.lifetime_ms = lifetime_years * 365 * 86_400_000
        self.sender = sender  # DisconnectClient, once the gateway opened it
        self.secrets = secrets or {}
        self.disconnect_port = disconnect_port
        self.store_read = store_read  # async: run a repository read off the loop
        self.clock = clock
        self._tasks: set[Any] = set()
        self.sessions: dict[str, BindingRow] = {}
        self.data_used: dict[str, tuple[int, int]] = {}  # iccid -> (total, used) bytes
        self.month = ""  # "YYYY-MM" of month_used
        self.month_used: dict[str, int] = {}  # iccid -> bytes this month
        self.data_limit: int | None = None  # bytes per month, None = no limit
        self.auto_topup: set[str] = set()
        self.threshold_percent = 20
        self.defaults = QuotaDefaults(self.data_quota, self.sms_quota, self.lifetime_ms)
        self.expiry_check_seconds = 3600.0
        self.locator: Any = None  # gateway.locator.service.Locator: cell positions from the user location

    # start-up ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Last states and data quotas from the store (blocking; before the listener opens)."""
        self.sessions = {r.iccid: r for r in self.store.read_with(sql.load_all)}
        self.data_used = {i: (q["total"], q["used"]) for (i, service), q in self.store.read_with(sql.quotas).items()
                          if service == "data"}
        self.data_limit = data_limit_bytes(self.store.read_with(sql.limits).get("data"))
        self.auto_topup = self.store.read_with(sql.auto_topup)
        self.month = utc_day(self.clock())[:7]
        self.month_used = self.store.read_with(sql.month_usage, self.month + "-01")

    def changes_since(self, conn: Any, seq: int) -> tuple[list[BindingRow], dict]:
        """Rows changed since ``seq`` and the quotas of their SIMs (run in the writer thread)."""
        rows = sql.changed_since(conn, seq)
        quotas: dict = {}
        for iccid in {r.iccid for r in rows}:
            quotas.update(sql.quotas(conn, iccid))
        return rows, quotas

    def apply_followed(self, rows: list[BindingRow], quotas: dict) -> None:
        """Take in changes any process made (another gateway's RADIUS, the CLI's top-up): newer
        stored states replace the remembered ones, except a state still waiting for its commit."""
        for row in rows:
            current = self.sessions.get(row.iccid)
            if current is None or (current.change_seq and row.change_seq >= current.change_seq):
                self.sessions[row.iccid] = row
        for (iccid, service), q in quotas.items():
            if service == "data":
                used = max(q["used"], self.data_used.get(iccid, (0, 0))[1])
                self.data_used[iccid] = (q["total"], used)

    def quota_expiry_ms(self, ms: int) -> int:
        return ms + self.lifetime_ms

    # accounting ---------------------------------------------------------------------------------

    def accounting(self, rec: AccountingRecord, respond: tuple) -> None:
        sim = self.directory.sim_for_imsi(rec.imsi) if rec.imsi else None
        if sim is None:
            self.metrics.radius_unknown_imsi.inc()
            log.warning("accounting %s for unknown IMSI %s: answered, not bound", rec.status, rec.imsi,
                        extra={"event": "radius_unknown_imsi", "imsi": rec.imsi, "status": rec.status})
            respond[0](*respond[1:])
            return
        if rec.status not in ("Start", "Interim-Update", "Stop"):
            respond[0](*respond[1:])
            return
        at = self.clock()
        prev = self.sessions.get(sim.iccid)
        same = prev is not None and prev.session_id == rec.session_id and prev.session_id is not None
        if rec.status == "Stop" and prev is not None and prev.ip_address is not None and not same:
            # the Stop of a session that is no longer the SIM's: it must not unbind the new one
            log.info("Stop of old session %s of SIM %s ignored", rec.session_id, sim.iccid,
                     extra={"event": "radius_stale_stop", "iccid": sim.iccid})
            respond[0](*respond[1:])
            return
        ip = None if rec.status == "Stop" else (rec.framed_ip or (prev.ip_address if same and prev else None))
        rx_total, tx_total = rec.output_octets, rec.input_octets
        if same and prev is not None:
            rx_delta = max(0, rx_total - prev.output_octets)
            tx_delta = max(0, tx_total - prev.input_octets)
        else:
            rx_delta, tx_delta = rx_total, tx_total
        row = BindingRow(
            iccid=sim.iccid, ip_address=ip, source="radius", session_id=rec.session_id, nas_ip=rec.nas_ip,
            imeisv=rec.imeisv or (prev.imeisv if prev else None), rat_type=rec.rat_type if rec.rat_type is not None
            else (prev.rat_type if prev else None), apn=rec.apn or (prev.apn if prev else None),
            msisdn=rec.msisdn or (prev.msisdn if prev else None),
            location=events.encode_json(rec.location) if rec.location else (prev.location if prev else None),
            session_started_ms=prev.session_started_ms if same and prev else at,
            input_octets=tx_total, output_octets=rx_total,
            block_reason=prev.block_reason if prev else None, updated_ms=at,
            rx_delta=rx_delta, tx_delta=tx_delta, usage_day=utc_day(at),
            quota_total=self.data_quota, quota_expiry_ms=self.quota_expiry_ms(at))
        current = sim if ip is None or ip == sim.ip_address else replace(sim, ip_address=ip)
        evs = self._events(current, prev, same, rec, row, at)
        block = self._block_for(sim, prev, row, rx_delta + tx_delta)
        if row.block_reason in (DATA_LIMIT_BLOCK, IMEI_LOCK_BLOCK) and block is None:
            # the cause is gone: a new month (or a higher limit), or the locked device (or no lock)
            evs.append(self._net(current, at, "SIM_UNBLOCKED", f"SIM unblocked: {row.block_reason} no longer holds",
                                 {"reason": None, "previousReason": row.block_reason}))
            row.block_reason = None
        if block is not None and row.block_reason is None:
            row.block_reason = block
            kind = "QUOTA_EXHAUSTED" if block == DATA_QUOTA_BLOCK else (
                "LIMIT_REACHED" if block == DATA_LIMIT_BLOCK else "IMEI_LOCK_VIOLATED")
            evs.append(self._net(current, at, kind, f"{block}: the SIM is blocked", {"reason": block}))
            evs.append(self._net(current, at, "SIM_BLOCKED", f"SIM blocked: {block}", {"reason": block}))
        else:
            block = None
        self.sessions[sim.iccid] = row
        self.committer.submit(Pending(None, evs, (self._committed, row, respond, block), bindings=[row]))
        if self.locator is not None and rec.location and (prev is None or row.location != prev.location):
            seen = cell_from_uli(rec.location, rat_name(row.rat_type))
            if seen is not None:
                self.locator.cell_seen(current, seen, "RADIUS", at)

    def _committed(self, row: BindingRow, respond: tuple, block: str | None) -> None:
        self.directory.bind(row.iccid, row.ip_address)
        self.directory.block(row.iccid, row.block_reason)
        respond[0](*respond[1:])
        if block is not None and row.ip_address is not None:
            self.start_reset(row.iccid, block, row)

    def _block_for(self, sim: Sim, prev: BindingRow | None, row: BindingRow, delta: int) -> str | None:
        """A block this report causes: IMEI lock broken, data quota used up, monthly data limit
        reached. (Counts this report's bytes in memory; the store counts them in the commit.)"""
        locked_to = sim.imei or (prev.imeisv if prev else None)
        if sim.imei_lock and locked_to and row.imeisv and imei_of(row.imeisv) != imei_of(locked_to):
            return IMEI_LOCK_BLOCK
        total, used = self.data_used.get(sim.iccid, (self.data_quota, 0))
        used += delta
        if (sim.iccid in self.auto_topup and delta and total - used < total * self.threshold_percent / 100
                and self.directory.block_reason(sim.iccid) != QUOTA_EXPIRED_BLOCK):  # expired: extension only
            total += self.data_quota
            self.start_task(self._auto_topup(sim.iccid))
        self.data_used[sim.iccid] = (total, used)
        month = (row.usage_day or "")[:7]
        if month != self.month:
            self.month, self.month_used = month, {}
        month_used = self.month_used.get(sim.iccid, 0) + delta
        self.month_used[sim.iccid] = month_used
        if used >= total:
            return DATA_QUOTA_BLOCK
        if self.data_limit is not None and month_used >= self.data_limit:
            return DATA_LIMIT_BLOCK
        return None

    async def _auto_topup(self, iccid: str) -> None:
        """Automatic top-up below the threshold: stored, and announced with an event (the
        in-memory quota was raised already, so the report that triggered it is not blocked)."""
        at = self.clock()
        await self.committer.write(self.store.write_with, sql.add_quota, iccid, "data", self.data_quota,
                                   self.quota_expiry_ms(at), self.data_quota, at)
        sim = self.directory.sim_for_iccid(iccid)
        if sim is not None:
            self.emit(self._net(sim, at, "QUOTA_AUTO_TOPUP",
                                f"less than {self.threshold_percent} % of the data quota left: topped up",
                                {"service": "data", "addedBytes": self.data_quota}))

    def _net(self, sim: Sim, at: int, kind: str, description: str, details: dict) -> EventRecord:
        return events.network_event(sim, at, kind, description, details, self.router.routes("NETWORK_EVENT"))

    def _events(self, sim: Sim, prev: BindingRow | None, same: bool, rec: AccountingRecord, row: BindingRow,
                at: int) -> list[EventRecord]:
        out: list[EventRecord] = []
        session = {"sessionId": rec.session_id, "ip": row.ip_address, "apn": row.apn,
                   "rat": rat_name(row.rat_type), "imei": imei_of(row.imeisv), "nas": rec.nas_ip}
        if rec.status == "Stop":
            out.append(self._net(sim, at, "SESSION_DELETED", "PDP context / session deleted", session))
        elif not same or prev is None or prev.ip_address is None:
            out.append(self._net(sim, at, "SESSION_CREATED", "PDP context / session created", session))
        elif prev.ip_address != row.ip_address:
            out.append(self._net(sim, at, "ADDRESS_CHANGED", f"address {prev.ip_address} -> {row.ip_address}",
                                 {**session, "previousIp": prev.ip_address}))
        if prev is not None and prev.imeisv and rec.imeisv and imei_of(prev.imeisv) != imei_of(rec.imeisv):
            out.append(self._net(sim, at, "IMEI_CHANGED", "the SIM is in another device",
                                 {"imei": imei_of(rec.imeisv), "previousImei": imei_of(prev.imeisv)}))
        if rec.location and (prev is None or row.location != prev.location):
            out.append(self._net(sim, at, "LOCATION_UPDATED", f"{rec.location['type']} location update",
                                 {"location": rec.location, "rat": rat_name(row.rat_type)}))
        if row.rx_delta or row.tx_delta:
            out.append(events.usage(sim, at, {
                "sessionId": rec.session_id, "day": row.usage_day, "rxBytes": row.rx_delta, "txBytes": row.tx_delta,
                "sessionRxBytes": row.output_octets, "sessionTxBytes": row.input_octets,
                "apn": row.apn, "rat": rat_name(row.rat_type)}, self.router.routes("USAGE")))
        return out

    # blocks, top-ups, resets (API and CLI) -------------------------------------------------------

    def start_reset(self, iccid: str, reason: str, row: BindingRow | None = None) -> None:
        """Queue a Disconnect-Request in the background (from a commit acknowledgement)."""
        self.start_task(self.reset(iccid, reason, row))

    def start_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: Any) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("connectivity task failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Wait for resets in flight (they end by their timeout)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def reset(self, iccid: str, reason: str, row: BindingRow | None = None) -> dict:
        """Send a Disconnect-Request to the NAS of the SIM's session, record the outcome
        (QUEUED, then ACK, NAK, TIMEOUT, or NO_SESSION / NO_CLIENT without sending) and emit a
        CONNECTION_RESET network event. Returns the stored record."""
        row = row or self.sessions.get(iccid)
        at = self.clock()
        secret = self.secrets.get(row.nas_ip) if row is not None and row.nas_ip else None
        if row is None or row.ip_address is None:
            state = "NO_SESSION"
        elif secret is None or self.sender is None:
            state = "NO_CLIENT"
        else:
            state = "QUEUED"
        reset_id = await self.committer.write(self.store.write_with, sql.add_reset, iccid, reason,
                                              row.nas_ip if row else None, row.session_id if row else None, state, at)
        if state == "QUEUED":
            assert row is not None and secret is not None and self.sender is not None
            state = await self.sender.disconnect((row.nas_ip, self.disconnect_port), secret, {
                "Acct-Session-Id": row.session_id, "Framed-IP-Address": row.ip_address,
                "Calling-Station-Id": row.msisdn, "User-Name": self._imsi(iccid)})
        self.metrics.disconnects.labels(state).inc()
        done = self.clock()
        await self.committer.write(self.store.write_with, sql.finish_reset, reset_id, state, done)
        sim = self.directory.sim_for_iccid(iccid)
        if sim is not None:
            self.emit(self._net(sim, done, "CONNECTION_RESET", f"Disconnect-Request ({reason}): {state}",
                                {"reason": reason, "result": state, "nas": row.nas_ip if row else None,
                                 "sessionId": row.session_id if row else None}))
        log.info("connection reset of %s (%s): %s", iccid, reason, state,
                 extra={"event": "connection_reset", "iccid": iccid, "result": state})
        return {"id": reset_id, "iccid": iccid, "reason": reason, "state": state}

    def _imsi(self, iccid: str) -> str | None:
        sim = self.directory.sim_for_iccid(iccid)
        return sim.imsi if sim else None

    def emit(self, event: EventRecord) -> None:
        self.committer.submit(Pending(None, [event]))

    async def set_block(self, iccid: str, reason: str | None) -> None:
        """Block (or unblock) a SIM: stored, visible at once, a SIM_BLOCKED/SIM_UNBLOCKED event;
        a block also disconnects the SIM's session."""
        at = self.clock()
        await self.committer.write(self.store.write_with, sql.set_block, iccid, reason, at)
        await self._apply_block(iccid, reason, at)

    async def _apply_block(self, iccid: str, reason: str | None, at: int) -> None:
        """What follows a stored block change: memory, directory, event, Disconnect-Request."""
        row = self.sessions.get(iccid)
        if row is not None:
            row.block_reason = reason
        self.directory.block(iccid, reason)
        sim = self.directory.sim_for_iccid(iccid)
        if sim is not None:
            kind = "SIM_BLOCKED" if reason else "SIM_UNBLOCKED"
            self.emit(self._net(sim, at, kind, f"SIM blocked: {reason}" if reason else "SIM unblocked",
                                {"reason": reason}))
        if reason is not None and row is not None and row.ip_address is not None:
            self.start_reset(iccid, reason, row)

    async def topup(self, iccids: list[str], data: int, sms: int) -> None:
        """Add ``data`` bytes and ``sms`` SMS to each SIM's quotas in one transaction (API, CLI);
        :class:`~gateway.connectivity.quota.TopupRefused` (nothing changed) when a SIM's quota
        expired. Lifts a data-quota block that no longer holds; a QUOTA_TOPUP event per SIM."""
        at = self.clock()
        await self.committer.write(self.store.write_with, quota.topup_in, iccids, self.defaults, data, sms, at)
        for iccid in iccids:
            total, used = self.data_used.get(iccid, (self.data_quota, 0))
            self.data_used[iccid] = (total + data, used)
            sim = self.directory.sim_for_iccid(iccid)
            if sim is not None:
                self.emit(self._net(sim, at, "QUOTA_TOPUP", "quota topped up",
                                    {"addedBytes": data, "addedSms": sms}))
            if self.directory.block_reason(iccid) == DATA_QUOTA_BLOCK and used < total + data:
                await self.set_block(iccid, None)

    async def extend(self, iccids: list[str]) -> None:
        """Extend the SIMs' lifetime (API, CLI): both quotas renewed, a QUOTA_EXPIRED block lifted
        (SIM_UNBLOCKED), a QUOTA_EXTENDED event per SIM."""
        at = self.clock()
        unblocked = await self.committer.write(self.store.write_with, quota.extend_in, iccids, self.defaults, at)
        for iccid in iccids:
            sim = self.directory.sim_for_iccid(iccid)
            if sim is not None:
                self.emit(self._net(sim, at, "QUOTA_EXTENDED", "lifetime extended",
                                    {"lifetimeMs": self.lifetime_ms}))
        for iccid in unblocked:
            await self._apply_block(iccid, None, at)

    async def expire_quotas(self) -> list[str]:
        """The expiry sweep: block every SIM whose quota expired (QUOTA_EXPIRED: uplinks refused,
        Disconnect-Request to its NAS, QUOTA_EXPIRED and SIM_BLOCKED events); the SIMs blocked."""
        at = self.clock()
        expired = await self.committer.write(self.store.read_with, quota.expired_sims, at)
        for iccid, expiry in expired:
            sim = self.directory.sim_for_iccid(iccid)
            if sim is not None:
                self.emit(self._net(sim, at, "QUOTA_EXPIRED", f"the quota expired on {quota.iso_day(expiry)}",
                                    {"reason": QUOTA_EXPIRED_BLOCK, "expiryDate": quota.iso_day(expiry)}))
            await self.set_block(iccid, QUOTA_EXPIRED_BLOCK)
            log.warning("SIM %s blocked: its quota expired", iccid,
                        extra={"event": "quota_expired", "iccid": iccid, "expiry_ms": expiry})
        if expired:
            self.metrics.quota_expired.inc(len(expired))
        return [i for i, _ in expired]

    async def expiry_loop(self) -> None:
        """Run the expiry sweep every ``expiry_check_seconds`` (errors logged, the loop goes on)."""
        while True:
            try:
                await self.expire_quotas()
            except Exception:
                log.exception("quota expiry sweep failed")
            await asyncio.sleep(self.expiry_check_seconds)

    async def quota(self, iccid: str, service: str) -> dict:
        """The SIM's quota row (the default when it has none)."""
        rows = await self.store_read(sql.quotas, iccid)
        row = rows.get((iccid, service))
        if row is None:
            total = self.data_quota if service == "data" else self.sms_quota
            row = {"total": total, "used": 0, "expiry_ms": None, "last_volume_added": total, "last_change_ms": None}
        return row

    # new SIMs ------------------------------------------------------------------------------------

    async def announce_new_sims(self) -> int:
        """Emit a LIFECYCLE ``SIM_ADDED`` event for every SIM not yet announced (import, API, any
        process), claimed and stored in one transaction so each SIM is announced exactly once."""
        routes = self.router.routes("LIFECYCLE")
        pending: list[Pending] = []

        def claim_and_store(conn: Any) -> None:
            at = self.clock()
            claimed = sql.claim_unannounced(conn, at)
            if claimed:
                evs = [events.lifecycle(Sim(iccid=i, imsi=imsi, ip_address=ip or ""), at, "SIM_ADDED",
                                        f"SIM {i} was added to the gateway", routes) for i, imsi, ip in claimed]
                pending.append(Pending(None, evs))
                self.store.commit_in(conn, pending)

        await self.committer.write(self.store.write_with, claim_and_store)
        for observer in self.committer.observers:
            observer.committed(pending, 0.0)
        count = len(pending[0].events) if pending else 0
        if count:
            log.info("%d new SIM(s) announced", count, extra={"event": "sims_announced", "count": count})
        return count
