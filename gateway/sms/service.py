"""The SMS service: MT SMS queued by the API and sent from the store, MO SMS stored and forwarded.

* **MT**: the API checks the quota and commits the SMS with its parts (the
  outbox) before the API answers. The sender task submits due SMS (at most ``window`` at once,
  parts of one SMS in order) whenever it is woken and at least every second, so SMS queued by
  another process (``nce-gateway sms send``) or left by a crash or an SMSC outage go out too.
* **Receipts**: a ``deliver_sm`` with a delivery-receipt ``esm_class`` updates its part and SMS.
* **MO**: a ``deliver_sm`` from a SIM's MSISDN is stored with its ``MO_SMS`` event in one commit,
  then answered. Parts of a concatenated SMS are stored one by one (each answered once stored)
  and the SMS is made when the last arrives. An unknown MSISDN is answered and counted, not
  stored; a SIM without SMS left (quota used up or expired, monthly MO limit reached) is
  answered ``ESME_RX_R_APPN``, logged and counted. MT and MO SMS count against the connectivity
  SMS quota and monthly limits, checked and counted with the insert (gateway/connectivity/quota.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge

from inspector import sms as repo
from inspector.records import Pending, Sim

from .. import events
from ..connectivity.quota import (MO, SMS_LIMIT_REACHED, SMS_QUOTA_EXHAUSTED, SMS_QUOTA_EXPIRED, QuotaDefaults,
                                  SmsRefused, sms_charge, sms_used_up_event)
from ..config import SmsConfig
from . import codec
from .smpp import (BOUND, ESME_RX_R_APPN, STATES, ConnectionLost, SessionSettings, SmppError,
                   SmppSession, text_of)

log = logging.getLogger("nce.sms")
#: submit_sm answers that say "not now" rather than "never": ESME_RSYSERR, ESME_RMSGQFUL, ESME_RX_T_APPN
TRANSIENT_STATUSES = frozenset({0x08, 0x14, 0x64})
ESM_RECEIPT_TYPES = (0x04, 0x20)
OUTBOX_BATCH = 100  # due MT SMS read from the store at a time  # SMSC delivery receipt, intermediate notification
_RECEIPT_STATES = {2: repo.DELIVERED, 3: repo.EXPIRED, 4: repo.FAILED, 5: repo.FAILED, 8: repo.FAILED}
_RECEIPT_TEXT = {"DELIVRD": repo.DELIVERED, "EXPIRED": repo.EXPIRED, "DELETED": repo.FAILED,
                 "UNDELIV": repo.FAILED, "REJECTD": repo.FAILED}
#: nce_sms_mo_total / nce_sms_mt_total outcome of each refusal reason
REFUSAL_LABELS = {SMS_QUOTA_EXHAUSTED: "over_quota", SMS_QUOTA_EXPIRED: "quota_expired",
                   SMS_LIMIT_REACHED: "over_limit"}
_RECEIPT_FIELDS = re.compile(r"(id|stat):(\S+)", re.IGNORECASE)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def validity_period(expiry_ms: int) -> str:
    """SMPP absolute time (``YYMMDDhhmmss000+``, UTC)."""
    return time.strftime("%y%m%d%H%M%S", time.gmtime(expiry_ms / 1000)) + "000+"


class SmsMetrics:
    def __init__(self, registry: Any) -> None:
        r = registry
        self.mt = Counter("nce_sms_mt_total", "MT SMS by outcome (queued, sent, delivered, failed, expired, "
                          "canceled; refused: over_quota, quota_expired, over_limit)", ["outcome"], registry=r)
        self.mo = Counter("nce_sms_mo_total", "MO SMS by outcome (stored, part, unknown_msisdn, refused: over_quota, "
                          "quota_expired, over_limit)",
                          ["outcome"], registry=r)
        self.receipts = Counter("nce_sms_receipts_total", "Delivery receipts by status (unmatched: no such part)",
                                ["status"], registry=r)
        self.state = Gauge("nce_smpp_state", "1 for the SMPP session's current state", ["state"], registry=r)
        self.throttled = Counter("nce_smpp_throttled_total", "submit_sm answered ESME_RTHROTTLED", registry=r)
        self.binds = Counter("nce_smpp_binds_total", "Successful binds to the SMSC", registry=r)

    def set_state(self, state: str) -> None:
        for s in STATES:
            self.state.labels(s).set(1 if s == state else 0)
        if state == BOUND:
            self.binds.inc()


class SmsService:
    def __init__(self, config: SmsConfig, *, store: Any, registry: Any, committer: Any, router: Any,
                 read: Callable[..., Awaitable[Any]], metrics_registry: Any, quota: QuotaDefaults) -> None:
        self.config = config
        self.quota = quota  # the connectivity quotas (one SMS counter: gateway/connectivity/quota.py)
        self.store = store
        self.registry = registry
        self.committer = committer
        self.router = router
        self.read = read
        self.metrics = SmsMetrics(metrics_registry)
        self.session: SmppSession | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._in_flight: set[int] = set()
        self._slots = asyncio.Semaphore(config.window)
        self._mo_lock = asyncio.Lock()
        self._sent: list[tuple[int, int, str, asyncio.Future]] = []
        self._recorder: asyncio.Task | None = None
        self._msisdn_index: tuple[int, dict[str, Sim]] = (-2, {})
        self.metrics.set_state("DISCONNECTED")

    # life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        settings = SessionSettings(
            host=c.host, port=c.port, system_id=c.system_id, password=c.password, system_type=c.system_type,
            tls=c.tls, ca_file=c.ca_file, window=c.window, enquire_link_seconds=c.enquire_link_seconds,
            response_timeout_seconds=c.response_timeout_seconds, reconnect_min_seconds=c.reconnect_min_seconds,
            reconnect_max_seconds=c.reconnect_max_seconds, throttle_min_seconds=c.throttle_min_seconds,
            throttle_max_seconds=c.throttle_max_seconds)
        self.session = SmppSession(settings, self.on_deliver, self._state_changed, self.metrics.throttled.inc)
        self.session.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sender(), name="sms-sender"),
                       loop.create_task(self._housekeeping(), name="sms-housekeeping")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.stop()

    def _state_changed(self, state: str) -> None:
        self.metrics.set_state(state)
        if state == BOUND:
            self._wake.set()

    def status(self) -> dict[str, Any]:
        """What /health and ``nce-gateway sms status`` show."""
        s = self.session
        return {"enabled": True, "smsc": f"{self.config.host}:{self.config.port}", "tls": self.config.tls,
                "system_id": self.config.system_id, "state": s.state if s else "DISCONNECTED",
                "last_error": (s.last_error if s else "") or None, "binds": s.binds if s else 0,
                "throttled": s.throttled if s else 0}

    # MT -----------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def _sender(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self.session is None or self.session.state != BOUND:
                continue
            try:
                due = await self.read(repo.due_mt, self.store, now_ms(), OUTBOX_BATCH, tuple(self._in_flight))
            except Exception:
                log.exception("reading the SMS outbox failed")
                continue
            for sms in due:
                await self._slots.acquire()
                self._in_flight.add(sms.id)
                task = asyncio.get_running_loop().create_task(self._send_guarded(sms))
                task.add_done_callback(lambda _t, i=sms.id: (self._in_flight.discard(i), self._slots.release()))
            if len(due) == OUTBOX_BATCH:
                self._wake.set()  # more are waiting: read again at once, not after the poll interval

    async def _send_guarded(self, sms: repo.Outgoing) -> None:
        try:
            await self._send_one(sms)
        except Exception:  # e.g. the store: the SMS stays QUEUED and is picked up again
            log.exception("sending MT SMS %d failed; it stays queued", sms.id)

    async def _send_one(self, sms: repo.Outgoing) -> None:
        assert self.session is not None
        write = self.committer.write
        if sms.expiry_ms is not None and sms.expiry_ms <= now_ms():
            await write(repo.mt_final, self.store, sms.id, repo.EXPIRED, "expired before it could be sent", now_ms())
            self.metrics.mt.labels("expired").inc()
            return
        fields: dict[str, Any] = {
            "source_addr": sms.source_address, "source_addr_ton": _ton(sms.source_address_type),
            "source_addr_npi": 0 if sms.source_address_type == 208 else 1,
            "destination_addr": sms.msisdn, "dest_addr_ton": 1, "dest_addr_npi": 1,
            "data_coding": sms.dcs, "registered_delivery": 1}
        if sms.expiry_ms is not None:
            fields["validity_period"] = validity_period(sms.expiry_ms)
        for part in sms.parts:
            try:
                message_id = await self.session.submit(short_message=part.short_message, esm_class=part.esm_class,
                                                       **fields)
            except SmppError as exc:
                if exc.status in TRANSIENT_STATUSES:
                    await write(repo.mt_retry, self.store, sms.id, sms.attempts + 1,
                                now_ms() + int(self.config.retry_seconds * 1000), str(exc), now_ms())
                    return
                await write(repo.mt_final, self.store, sms.id, repo.FAILED, str(exc), now_ms())
                self.metrics.mt.labels("failed").inc()
                log.warning("SMSC refused an MT SMS", extra={"event": "sms_mt_refused", "sms_id": sms.id,
                                                             "iccid": sms.iccid, "error": str(exc)})
                return
            except ConnectionLost as exc:
                await write(repo.mt_retry, self.store, sms.id, sms.attempts + 1,
                            now_ms() + int(self.config.retry_seconds * 1000), str(exc), now_ms())
                return
            last = await self._record_sent(sms.id, part.part, message_id)
            if last:
                self.metrics.mt.labels("sent").inc()
                log.info("MT SMS sent", extra={"event": "sms_mt_sent", "sms_id": sms.id, "iccid": sms.iccid})

    async def _record_sent(self, sms_id: int, part: int, message_id: str) -> bool:
        """Store a part's message id; ids that arrive while a write runs go into the next one
        (a group commit of its own: one fsync per part capped the sender at ~80 SMS/s)."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._sent.append((sms_id, part, message_id, future))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._record_batches())
        return await future

    async def _record_batches(self) -> None:
        while self._sent:
            batch, self._sent = self._sent, []
            try:
                lasts = await self.committer.write(repo.parts_sent, self.store, [b[:3] for b in batch], now_ms())
            except Exception as exc:
                for *_, future in batch:
                    future.set_exception(exc)
                continue
            for (*_, future), last in zip(batch, lasts):
                future.set_result(last)

    # deliver_sm ---------------------------------------------------------------------------------

    async def on_deliver(self, pdu: Any) -> int:
        esm = (pdu.esm_class or 0) & 0x3C
        if esm in ESM_RECEIPT_TYPES:
            return await self._receipt(pdu)
        if esm:
            return 0  # SME acknowledgements: nothing to keep
        return await self._mo(pdu)

    async def _receipt(self, pdu: Any) -> int:
        message_id, status = receipt_of(pdu)
        if message_id is None or status is None:
            self.metrics.receipts.labels("unreadable" if message_id is None else "intermediate").inc()
            return 0
        result = await self.committer.write(repo.apply_receipt, self.store, message_id, status, now_ms())
        for delay in (0.05, 0.2, 0.5, 1.0, 2.0):
            # a fast SMSC sends the receipt right behind the submit_sm_resp, possibly before the
            # part's message id is written: wait for the submits in flight before calling it unmatched
            if result is not None or not self._in_flight:
                break
            await asyncio.sleep(delay)
            result = await self.committer.write(repo.apply_receipt, self.store, message_id, status, now_ms())
        self.metrics.receipts.labels(status.lower() if result else "unmatched").inc()
        if result is not None and result[1] in repo.FINAL:
            self.metrics.mt.labels(result[1].lower()).inc()
        return 0

    def sim_for_msisdn(self, msisdn: str) -> Sim | None:
        version, index = self._msisdn_index
        if version != self.registry.version:
            index = {}
            for sim in self.registry.by_iccid.values():
                if sim.msisdn:
                    index[normalise_msisdn(sim.msisdn)] = sim
            self._msisdn_index = (self.registry.version, index)
        return index.get(normalise_msisdn(msisdn))

    async def _mo(self, pdu: Any) -> int:
        msisdn = text_of(pdu.source_addr)
        sim = self.sim_for_msisdn(msisdn)
        if sim is None:
            self.metrics.mo.labels("unknown_msisdn").inc()
            log.warning("MO SMS from an unknown MSISDN: answered, not forwarded",
                        extra={"event": "sms_mo_unknown", "msisdn": msisdn})
            return 0
        dcs = pdu.data_coding or 0
        short_message = bytes(pdu.short_message or b"") or bytes(getattr(pdu, "message_payload", b"") or b"")
        udh, body, concat = (codec.parse_udh(short_message) if pdu.esm_class & 0x40
                             else (b"", short_message, None))
        received = now_ms()
        async with self._mo_lock:
            parts = 1
            if concat is not None and concat.total > 1:
                held = await self.committer.write(repo.store_mo_part, self.store, msisdn, concat.reference,
                                                  concat.total, concat.number, dcs, body, received)
                if len(held) < concat.total:
                    self.metrics.mo.labels("part").inc()
                    return 0
                body = b"".join(b for _, _, b in held)
                parts = concat.total
            payload = codec.decode_payload(body, dcs)
            new = repo.NewMo(sim.iccid, msisdn, text_of(pdu.destination_addr), dcs, payload, parts, received,
                             (concat.reference, concat.total) if concat is not None and parts > 1 else None)
            event = events.mo_sms(sim, received, {"msisdn": msisdn, "destinationAddress": new.destination,
                                                  "dcs": dcs, "payload": payload, "parts": parts},
                                  self.router.routes("MO_SMS"))
            pending = Pending(None, [event])
            charge = sms_charge(self.quota, sim.iccid, MO, received)
            if_used_up = sms_used_up_event(sim, received, self.router.routes("NETWORK_EVENT"))
            try:
                sms_id = await self.committer.write(repo.store_mo, self.store, new, pending, charge, if_used_up)
            except SmsRefused as exc:
                self.metrics.mo.labels(REFUSAL_LABELS[exc.reason]).inc()
                log.warning("MO SMS refused (ESME_RX_R_APPN): %s", exc,
                            extra={"event": "sms_mo_refused", "iccid": sim.iccid, "reason": exc.reason})
                return ESME_RX_R_APPN
            for observer in self.committer.observers:  # wake the integrations' workers
                observer.committed([pending], 0.0)
        self.metrics.mo.labels("stored").inc()
        log.info("MO SMS received", extra={"event": "sms_mo", "iccid": sim.iccid, "sms_id": sms_id,
                                           "parts": parts})
        return 0

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(min(3600.0, self.config.mo_parts_ttl_seconds))
            try:
                cutoff = now_ms() - int(self.config.mo_parts_ttl_seconds * 1000)
                dropped = await self.committer.write(repo.purge_mo_parts, self.store, cutoff)
                if dropped:
                    log.warning("parts of incomplete MO SMS dropped", extra={"event": "sms_mo_parts_dropped",
                                                                            "count": dropped})
            except Exception:
                log.exception("dropping old MO SMS parts failed")


def receipt_of(pdu: Any) -> tuple[str | None, str | None]:
    """(SMSC message id, SMS status) of a delivery receipt: the TLVs receipted_message_id and
    message_state when present, else the ``id:... stat:...`` text of SMPP 3.4 appendix B."""
    message_id = text_of(getattr(pdu, "receipted_message_id", None)) or None
    state = getattr(pdu, "message_state", None)
    status = _RECEIPT_STATES.get(state) if state is not None else None
    fields = {k.lower(): v for k, v in _RECEIPT_FIELDS.findall(bytes(pdu.short_message or b"").decode("latin-1"))}
    message_id = message_id or fields.get("id")
    if status is None and "stat" in fields:
        status = _RECEIPT_TEXT.get(fields["stat"].upper())
    if state is not None and status is None and state in (1, 6, 7):
        return message_id, None  # ENROUTE / ACCEPTED / UNKNOWN: not final
    return message_id, status


def normalise_msisdn(value: str) -> str:
    """Digits only, without a leading ``+`` or ``00``: SMSCs and SIM files write numbers both ways."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits[2:] if value.strip().startswith("00") else digits


def _ton(source_address_type: int) -> int:
    return {145: 1, 161: 2, 208: 5}.get(source_address_type, 1)

