"""The lifetime quotas and monthly limits of a SIM's services, checked and counted in one place.

One SMS counter: every MT SMS (API, CLI) and every MO SMS (from the SMSC) counts, part by part,
against the SIM's SMS quota (``[connectivity] sms_quota``, ``sim_quotas`` service ``sms``, the
row ``/quota/sms`` shows) and against the account's monthly MT-SMS or MO-SMS limit
(``POST /v1/sims/limits``). :func:`charge_sms` checks and counts inside the caller's write
transaction: the quota is taken by one conditional UPDATE (``used + n <= total``), so two SMS
can never both take the last one, on SQLite or PostgreSQL. The monthly limits are counted from
the ``sms`` rows: exact with SQLite's single writer; on PostgreSQL two SMS at the same instant
could both pass a limit's last unit (the limit is the customer's own cost cap, the quota is not).

The quota's expiry date is its lifetime: after it no SMS is counted, no top-up is taken
(:func:`check_topup`), and the sweep (:func:`expired_sims`, run by the connectivity service every
``connectivity.expiry_check_seconds``) blocks the SIM with reason ``QUOTA_EXPIRED`` until an
extension (:func:`extend_in`) renews it. These functions take a DB-API connection and are shared
by the API (through :class:`~gateway.connectivity.service.ConnectivityService`) and the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from inspector import bindings as sql
from inspector.records import EventRecord, Sim
from inspector import sms as sms_repo

from .. import events
from .limits import OPTIONS

MT, MO = "MT", "MO"
QUOTA_EXPIRED_BLOCK = "QUOTA_EXPIRED"
#: why an SMS is refused (the ``reason`` of :class:`SmsRefused`)
SMS_QUOTA_EXHAUSTED, SMS_QUOTA_EXPIRED, SMS_LIMIT_REACHED = "SMS_QUOTA_EXHAUSTED", "QUOTA_EXPIRED", "SMS_LIMIT_REACHED"
_LIMIT_SERVICE = {MT: "smsMt", MO: "smsMo"}


@dataclass(frozen=True)
class QuotaDefaults:
    """What a SIM without a stored quota row has (``[connectivity]``)."""

    data_total: int  # bytes
    sms_total: int
    lifetime_ms: int

    @classmethod
    def of(cls, config: Any) -> QuotaDefaults:
        """From a ``ConnectivityConfig``."""
        return cls(int(config.data_quota_mb * 1_000_000), config.sms_quota, config.lifetime_years * 365 * 86_400_000)

    def total(self, service: str) -> int:
        return self.data_total if service == "data" else self.sms_total


class SmsRefused(Exception):
    """No SMS may be counted for the SIM; ``reason`` is one of SMS_QUOTA_EXHAUSTED,
    QUOTA_EXPIRED, SMS_LIMIT_REACHED and the message says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TopupRefused(Exception):
    """A top-up of SIMs whose quota expired: their lifetime must be extended first. The message
    is 1NCE's (sim-management.json, 422 of the top-up routes) with the SIMs and their expiry."""

    def __init__(self, expired: list[tuple[str, int]]) -> None:
        self.iccids = [i for i, _ in expired]
        super().__init__("The following SIMs are expired and cannot be modified via API. Only extensions are "
                         "permitted: " + ", ".join(f"{i} (expired {iso_day(e)})" for i, e in expired)
                         + "; extend them first (POST /v1/sims/extension, or nce-gateway sims extend)")


def iso_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class SmsCharge:
    """What :func:`charge_sms` counted: the SMS left after it (0: the quota is now used up)."""

    left: int
    total: int


def charge_sms(conn: Any, iccid: str, direction: str, count: int, defaults: QuotaDefaults, now_ms: int) -> SmsCharge:
    """Count ``count`` SMS (parts) of ``direction`` (MT or MO) against the SIM's SMS quota and the
    monthly limit of that direction, in the caller's transaction; :class:`SmsRefused` (nothing
    counted) when the quota expired, has fewer than ``count`` left, or the month's limit would be
    passed. The quota is taken by one conditional UPDATE (atomic on SQLite and PostgreSQL alike),
    first: on PostgreSQL that row stays locked to the commit, so a concurrent charge of the same
    SIM waits for it and then counts this SMS in the month (a refusal below rolls the take back).
    The month's count comes from the ``sms`` table (rows of this direction since the 1st, canceled
    ones excluded), so this must run before the new SMS row is inserted."""
    sql.ensure_quota(conn, iccid, "sms", defaults.sms_total, now_ms + defaults.lifetime_ms, now_ms)
    taken = sql.take_quota(conn, iccid, "sms", count, now_ms)
    row = sql.quotas(conn, iccid)[(iccid, "sms")]
    limit_id = sql.limits(conn).get(_LIMIT_SERVICE[direction])
    if limit_id is not None and limit_id in OPTIONS[_LIMIT_SERVICE[direction]] and row["expiry_ms"] > now_ms:
        limit = int(OPTIONS[_LIMIT_SERVICE[direction]][limit_id][0])
        month = iso_day(now_ms)[:7] + "-01"
        this_month = sms_repo.sms_month_count(conn, iccid, direction, month)
        if this_month + count > limit:
            raise SmsRefused(SMS_LIMIT_REACHED, f"SIM {iccid} has {direction} SMS {this_month} of its monthly limit "
                                                f"of {limit}; this message needs {count} more")
    if not taken:
        if row["expiry_ms"] <= now_ms:
            raise SmsRefused(SMS_QUOTA_EXPIRED, "The following SIMs are expired and cannot be modified via API. "
                                                f"Only extensions are permitted: {iccid} (expired "
                                                f"{iso_day(row['expiry_ms'])}); extend it (POST /v1/sims/extension)"
                                                " before sending SMS")
        raise SmsRefused(SMS_QUOTA_EXHAUSTED, f"SIM {iccid} has used {row['used']} of its {row['total']} SMS; this "
                                              f"message needs {count} more: top it up (POST /v1/sims/{iccid}/topup)")
    return SmsCharge(left=row["total"] - row["used"], total=row["total"])  # ``used`` counts this SMS


def refund_sms(conn: Any, iccid: str, count: int) -> None:
    """Give back the SMS of an MT SMS canceled before it reached the SMSC."""
    sql.release_quota(conn, iccid, "sms", count)


def check_topup(conn: Any, iccids: Sequence[str], now_ms: int) -> None:
    """:class:`TopupRefused` naming every SIM whose quota expired (a top-up cannot revive it)."""
    expired = []
    for iccid in iccids:
        expiry = sql.quota_expiry(conn, iccid)
        if expiry is not None and expiry <= now_ms:
            expired.append((iccid, expiry))
    if expired:
        raise TopupRefused(expired)


def extend_in(conn: Any, iccids: Sequence[str], defaults: QuotaDefaults, now_ms: int) -> list[str]:
    """Extend both quotas of each SIM by one lifetime (from now when it had expired, else from its
    expiry date) and lift a ``QUOTA_EXPIRED`` block; the SIMs unblocked."""
    sql.extend(conn, iccids, {"data": defaults.data_total, "sms": defaults.sms_total},
               now_ms + defaults.lifetime_ms, defaults.lifetime_ms, now_ms)
    unblocked = []
    for iccid in iccids:
        row = sql.get(conn, iccid)
        if row is not None and row.block_reason == QUOTA_EXPIRED_BLOCK:
            sql.set_block(conn, iccid, None, now_ms)
            unblocked.append(iccid)
    return unblocked


def expired_sims(conn: Any, now_ms: int) -> list[tuple[str, int]]:
    """(iccid, expiry) of SIMs whose quota expired and that are not yet blocked for it."""
    return sql.expired_unblocked(conn, now_ms, QUOTA_EXPIRED_BLOCK)


class SmsCharger:
    """``charge(conn, parts)`` for the SMS repository (``inspector.sms.queue_mt``/``store_mo``);
    ``result`` holds what it counted once it ran."""

    def __init__(self, defaults: QuotaDefaults, iccid: str, direction: str, now_ms: int) -> None:
        self.defaults, self.iccid, self.direction, self.now_ms = defaults, iccid, direction, now_ms
        self.result: SmsCharge | None = None

    def __call__(self, conn: Any, count: int) -> SmsCharge:
        self.result = charge_sms(conn, self.iccid, self.direction, count, self.defaults, self.now_ms)
        return self.result

    @property
    def used_up(self) -> bool:
        """Whether this SMS took the last of the quota (a QUOTA_EXHAUSTED event is due)."""
        return self.result is not None and self.result.left == 0


def sms_charge(defaults: QuotaDefaults, iccid: str, direction: str, now_ms: int) -> SmsCharger:
    return SmsCharger(defaults, iccid, direction, now_ms)


def sms_used_up_event(sim: Sim, at: int, routes: tuple[int, ...]) -> EventRecord:
    """The NETWORK_EVENT ``QUOTA_EXHAUSTED`` (service ``sms``) when an SMS took the last one: the
    SIM keeps its data service, further SMS are refused until a top-up."""
    return events.network_event(sim, at, "QUOTA_EXHAUSTED", "the SMS quota is used up: SMS are refused",
                                {"service": "sms", "reason": SMS_QUOTA_EXHAUSTED}, routes)


def sms_refund(iccid: str):
    """``refund(conn, parts)`` for ``inspector.sms.cancel_mt``."""
    def refund(conn: Any, count: int) -> None:
        refund_sms(conn, iccid, count)
    return refund


def topup_in(conn: Any, iccids: Sequence[str], defaults: QuotaDefaults, data: int, sms: int, now_ms: int) -> None:
    """Add ``data`` bytes and ``sms`` SMS to each SIM's quotas, all or nothing: refused with
    :class:`TopupRefused` before any change when one SIM's quota expired. Each SIM's binding row
    gets a new ``change_seq`` so every running gateway rereads its quotas."""
    check_topup(conn, iccids, now_ms)
    for iccid in iccids:
        sql.add_quota(conn, iccid, "data", defaults.data_total, now_ms + defaults.lifetime_ms, data, now_ms)
        sql.add_quota(conn, iccid, "sms", defaults.sms_total, now_ms + defaults.lifetime_ms, sms, now_ms)
        sql.touch(conn, iccid, now_ms)
