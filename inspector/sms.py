"""The SMS repository: MT SMS (and their outbox), MO SMS, SMS usage per SIM and day.

Every function takes the store (``SqliteStore``) and runs in the thread it is called from:
writes in the gateway's writer thread (``committer.write``), reads in a reader thread. The SQL
is plain (no SQLite-only functions) so that a PostgreSQL store can run it unchanged apart from
the placeholders. Counting an SMS against the SIM's quota and limits (a ``charge`` the caller
passes, gateway/connectivity/quota.py) and inserting it share one transaction.

Statuses: ``QUEUED`` (accepted, not all parts at the SMSC yet), ``SENT`` (every part accepted
by the SMSC), ``DELIVERED``, ``FAILED``, ``EXPIRED``, ``CANCELED`` (MT); ``RECEIVED`` (MO).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .records import EventRecord, Pending
from .sqlite import transaction

QUEUED, SENT, DELIVERED, FAILED, EXPIRED, CANCELED, RECEIVED = (
    "QUEUED", "SENT", "DELIVERED", "FAILED", "EXPIRED", "CANCELED", "RECEIVED")
FINAL = (DELIVERED, FAILED, EXPIRED, CANCELED)
#: the numeric ids of SmsStatus in the API (1NCE documents only 4 = DELIVERED)
STATUS_IDS = {QUEUED: 1, SENT: 2, CANCELED: 3, DELIVERED: 4, FAILED: 5, EXPIRED: 6, RECEIVED: 7}
MT, MO = "MT", "MO"

COLUMNS = ("id", "iccid", "direction", "msisdn", "source_address", "source_address_type", "dcs", "udh", "payload",
           "parts", "status", "submit_ms", "expiry_ms", "delivery_ms", "final_ms", "last_attempt_ms",
           "next_attempt_ms", "attempts", "error", "day")
SORT_COLUMNS = ("id", "status", "submit_ms", "delivery_ms", "direction")
#: counts (or gives back) SMS parts against a SIM's quota inside a transaction; refuses by raising
Charge = Callable[[Any, int], Any]


def day_of(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def _conn(store: Any) -> Any:
    return store.connection()


# usage (the counting against quotas and limits is gateway/connectivity/quota.py) -------------------------------------------------------------------------------

def sms_month_count(conn: Any, iccid: str, direction: str, first_day: str) -> int:
    """SMS (parts) of one direction (MT, MO) the SIM sent or received since ``first_day``, canceled
    ones excluded: what the monthly MT-SMS and MO-SMS limits are checked against."""
    return int(conn.execute("SELECT COALESCE(SUM(parts), 0) FROM sms WHERE iccid = ? AND direction = ? AND day >= ?"
                            " AND status <> 'CANCELED'", (iccid, direction, first_day)).fetchone()[0])


def sms_daily(conn: Any, iccid: str, first_day: str, last_day: str) -> dict[str, tuple[int, int]]:
    """Day → (MT, MO) SMS parts in the range, canceled ones excluded (for /usage)."""
    out: dict[str, list[int]] = {}
    for day, direction, count in conn.execute(
            "SELECT day, direction, SUM(parts) FROM sms WHERE iccid = ? AND day >= ? AND day <= ?"
            " AND status <> 'CANCELED' GROUP BY day, direction", (iccid, first_day, last_day)):
        out.setdefault(day, [0, 0])[0 if direction == "MT" else 1] = int(count)
    return {d: (v[0], v[1]) for d, v in out.items()}


# MT SMS ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewMt:
    iccid: str
    msisdn: str
    source_address: str
    source_address_type: int
    dcs: int
    udh: str | None
    payload: str
    expiry_ms: int | None
    parts: Sequence[tuple[bytes, int]]  # (short_message, esm_class)


def queue_mt(store: Any, sms: NewMt, now_ms: int, charge: Charge | None = None) -> int:
    """Store an MT SMS and its parts (the outbox); its id. ``charge(conn, parts)`` counts the
    parts against the SIM's quota and limits in the same transaction, and refuses by raising
    (then nothing is stored)."""
    with transaction(_conn(store)) as conn:
        if charge is not None:
            charge(conn, len(sms.parts))
        cur = conn.execute(
            "INSERT INTO sms (iccid, direction, msisdn, source_address, source_address_type, dcs, udh, payload,"
            " parts, status, submit_ms, expiry_ms, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sms.iccid, MT, sms.msisdn, sms.source_address, sms.source_address_type, sms.dcs, sms.udh, sms.payload,
             len(sms.parts), QUEUED, now_ms, sms.expiry_ms, day_of(now_ms)))
        sms_id = int(cur.lastrowid)
        conn.executemany(
            "INSERT INTO sms_parts (sms_id, part, short_message, esm_class, status) VALUES (?, ?, ?, ?, ?)",
            [(sms_id, i, body, esm, QUEUED) for i, (body, esm) in enumerate(sms.parts, 1)])
    return sms_id


@dataclass
class OutgoingPart:
    part: int
    short_message: bytes
    esm_class: int


@dataclass
class Outgoing:
    """An MT SMS the sender still has to submit (parts without a message id)."""

    id: int
    iccid: str
    msisdn: str
    source_address: str
    source_address_type: int
    dcs: int
    expiry_ms: int | None
    attempts: int
    parts: list[OutgoingPart]


def due_mt(store: Any, now_ms: int, limit: int, exclude: Sequence[int] = ()) -> list[Outgoing]:
    """QUEUED MT SMS whose next attempt is due, oldest first."""
    conn = _conn(store)
    rows = conn.execute(
        "SELECT id, iccid, msisdn, source_address, source_address_type, dcs, expiry_ms, attempts FROM sms"
        " WHERE status = ? AND direction = ? AND next_attempt_ms <= ? ORDER BY id LIMIT ?",
        (QUEUED, MT, now_ms, limit + len(exclude))).fetchall()
    out = []
    skip = set(exclude)
    for row in rows:
        if row[0] in skip:
            continue
        parts = [OutgoingPart(p, bytes(body), esm) for p, body, esm in conn.execute(
            "SELECT part, short_message, esm_class FROM sms_parts WHERE sms_id = ? AND message_id IS NULL"
            " ORDER BY part", (row[0],))]
        out.append(Outgoing(*row, parts=parts))
    return out[:limit]


def parts_sent(store: Any, parts: Sequence[tuple[int, int, str]], now_ms: int) -> list[bool]:
    """Record the SMSC's message ids of parts ``(sms id, part, message id)`` in one transaction
    (the sender batches them: one commit per part was the sender's limit); for each, whether it
    was the last part of its SMS (the SMS is then SENT)."""
    out = []
    with transaction(_conn(store)) as conn:
        for sms_id, part, message_id in parts:
            conn.execute("UPDATE sms_parts SET message_id = ?, status = ? WHERE sms_id = ? AND part = ?",
                         (message_id, SENT, sms_id, part))
            left = conn.execute("SELECT COUNT(*) FROM sms_parts WHERE sms_id = ? AND message_id IS NULL",
                                (sms_id,)).fetchone()[0]
            conn.execute("UPDATE sms SET last_attempt_ms = ?, status = CASE WHEN ? = 0 AND status = ? THEN ? ELSE"
                         " status END WHERE id = ?", (now_ms, left, QUEUED, SENT, sms_id))
            out.append(left == 0)
    return out


def mt_retry(store: Any, sms_id: int, attempts: int, next_attempt_ms: int, error: str, now_ms: int) -> None:
    with transaction(_conn(store)) as conn:
        conn.execute("UPDATE sms SET attempts = ?, next_attempt_ms = ?, error = ?, last_attempt_ms = ? WHERE id = ?",
                     (attempts, next_attempt_ms, error, now_ms, sms_id))


def mt_final(store: Any, sms_id: int, status: str, error: str | None, now_ms: int) -> None:
    """End an MT SMS that will not be (further) sent: FAILED or EXPIRED."""
    with transaction(_conn(store)) as conn:
        conn.execute("UPDATE sms SET status = ?, error = ?, final_ms = ? WHERE id = ? AND status IN (?, ?)",
                     (status, error, now_ms, sms_id, QUEUED, SENT))


_RECEIPT_STATES = {DELIVERED: 3, EXPIRED: 2, FAILED: 1}  # the worst part decides


def apply_receipt(store: Any, message_id: str, status: str, now_ms: int) -> tuple[int, str] | None:
    """A delivery receipt for one part; (sms id, the SMS's status now) or None when no part
    with this message id waits for a receipt. The SMS is DELIVERED when every part is, FAILED or EXPIRED as soon as one
    part is."""
    with transaction(_conn(store)) as conn:
        # only a part still waiting for its receipt matches: an SMSC may give out an id again (after
        # its own restart), and a repeated receipt changes nothing
        row = conn.execute("SELECT sms_id, part FROM sms_parts WHERE message_id = ? AND status = ?"
                           " ORDER BY sms_id DESC LIMIT 1", (message_id, SENT)).fetchone()
        if row is None:
            return None
        sms_id, part = row
        conn.execute("UPDATE sms_parts SET status = ? WHERE sms_id = ? AND part = ?", (status, sms_id, part))
        states = [r[0] for r in conn.execute("SELECT status FROM sms_parts WHERE sms_id = ?", (sms_id,))]
        current = conn.execute("SELECT status FROM sms WHERE id = ?", (sms_id,)).fetchone()[0]
        bad = [s for s in states if s in (FAILED, EXPIRED)]
        if bad:
            new = min(bad, key=lambda s: _RECEIPT_STATES[s])
        elif all(s == DELIVERED for s in states):
            new = DELIVERED
        else:
            new = current
        if new != current and current not in (FAILED, EXPIRED, CANCELED):
            conn.execute("UPDATE sms SET status = ?, final_ms = ?, delivery_ms = CASE WHEN ? = ? THEN ? ELSE"
                         " delivery_ms END WHERE id = ?", (new, now_ms, new, DELIVERED, now_ms, sms_id))
            current = new
    return sms_id, current


def cancel_mt(store: Any, iccid: str, sms_id: int, now_ms: int, refund: Charge | None = None) -> str | None:
    """Cancel an MT SMS none of whose parts reached the SMSC; None when there is no such SMS,
    else its status after the call (CANCELED, or the status that prevented it). ``refund(conn,
    parts)`` gives its SMS back to the quota in the same transaction."""
    with transaction(_conn(store)) as conn:
        row = conn.execute("SELECT status, direction FROM sms WHERE id = ? AND iccid = ?", (sms_id, iccid)).fetchone()
        if row is None:
            return None
        status, direction = row
        sent = conn.execute("SELECT COUNT(*) FROM sms_parts WHERE sms_id = ? AND message_id IS NOT NULL",
                            (sms_id,)).fetchone()[0]
        if direction != MT or status != QUEUED or sent:
            return status if status != QUEUED else SENT
        conn.execute("UPDATE sms SET status = ?, final_ms = ? WHERE id = ?", (CANCELED, now_ms, sms_id))
        conn.execute("UPDATE sms_parts SET status = ? WHERE sms_id = ?", (CANCELED, sms_id))
        if refund is not None:
            parts = conn.execute("SELECT parts FROM sms WHERE id = ?", (sms_id,)).fetchone()[0]
            refund(conn, parts)
    return CANCELED


# MO SMS ----------------------------------------------------------------------------------------

def store_mo_part(store: Any, msisdn: str, reference: int, total: int, number: int, dcs: int, body: bytes,
                  now_ms: int) -> list[tuple[int, int, bytes]]:
    """Keep one part of a concatenated MO SMS (a repeated part replaces the earlier copy); every
    part held for that message so far as (number, dcs, body)."""
    with transaction(_conn(store)) as conn:
        conn.execute("DELETE FROM sms_mo_parts WHERE msisdn = ? AND reference = ? AND total = ? AND number = ?",
                     (msisdn, reference, total, number))
        conn.execute("INSERT INTO sms_mo_parts (msisdn, reference, total, number, dcs, body, received_ms)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", (msisdn, reference, total, number, dcs, body, now_ms))
        rows = conn.execute("SELECT number, dcs, body FROM sms_mo_parts WHERE msisdn = ? AND reference = ? AND"
                            " total = ? ORDER BY number", (msisdn, reference, total)).fetchall()
    return [(n, d, bytes(b)) for n, d, b in rows]


@dataclass(frozen=True)
class NewMo:
    iccid: str
    msisdn: str
    destination: str
    dcs: int
    payload: str
    parts: int
    received_ms: int
    concat: tuple[int, int] | None  # (reference, total) of the held parts to drop


def mo_writer(sms: NewMo, ids: list[int]) -> Any:
    """The write that stores an MO SMS inside the group commit of its event (``Pending.extra``);
    the new id is appended to ``ids``. It cannot fail on data: no constraint it could break."""
    def write(conn: Any) -> None:
        cur = conn.execute(
            "INSERT INTO sms (iccid, direction, msisdn, source_address, dcs, payload, parts, status, submit_ms,"
            " delivery_ms, final_ms, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sms.iccid, MO, sms.msisdn, sms.msisdn, sms.dcs, sms.payload, sms.parts, RECEIVED, sms.received_ms,
             sms.received_ms, sms.received_ms, day_of(sms.received_ms)))
        ids.append(int(cur.lastrowid))
        if sms.concat is not None:
            conn.execute("DELETE FROM sms_mo_parts WHERE msisdn = ? AND reference = ? AND total = ?",
                         (sms.msisdn, *sms.concat))
    return write


def store_mo(store: Any, sms: NewMo, pending: Pending, charge: Charge, if_used_up: EventRecord | None = None) -> int:
    """Count an MO SMS against its SIM's quota and monthly MO limit (``charge`` refuses by raising:
    nothing stored), store it and its event (``pending``) in one transaction; its id. When the SMS
    took the last of the quota (``charge.used_up``), ``if_used_up`` is added to the events."""
    ids: list[int] = []
    with transaction(_conn(store)) as conn:
        charge(conn, sms.parts)
        if if_used_up is not None and getattr(charge, "used_up", False):
            pending.events.append(if_used_up)
        mo_writer(sms, ids)(conn)
        store.commit_in(conn, [pending])
    return ids[0]


def purge_mo_parts(store: Any, before_ms: int) -> int:
    """Drop parts of MO messages that never completed."""
    with transaction(_conn(store)) as conn:
        return conn.execute("DELETE FROM sms_mo_parts WHERE received_ms < ?", (before_ms,)).rowcount


# reading -------------------------------------------------------------------------------------------

def _row(values: Sequence) -> dict:
    return dict(zip(COLUMNS, values))


def list_sms(store: Any, iccid: str, *, offset: int = 0, limit: int = 10,
             sort: Sequence[tuple[str, bool]] = ()) -> tuple[int, list[dict]]:
    conn = _conn(store)
    total = conn.execute("SELECT COUNT(*) FROM sms WHERE iccid = ?", (iccid,)).fetchone()[0]
    order = ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in sort if c in SORT_COLUMNS) or "id DESC"
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM sms WHERE iccid = ? ORDER BY {order}, id DESC"
                        " LIMIT ? OFFSET ?", (iccid, limit, offset))
    return total, [_row(r) for r in rows]


def get_sms(store: Any, iccid: str, sms_id: int) -> dict | None:
    row = _conn(store).execute(f"SELECT {', '.join(COLUMNS)} FROM sms WHERE iccid = ? AND id = ?",
                               (iccid, sms_id)).fetchone()
    return _row(row) if row else None


def counts_by_status(store: Any) -> dict[str, int]:
    """SMS per direction and status (``MT QUEUED``: the outbox depth), for status and metrics."""
    rows = _conn(store).execute("SELECT direction, status, COUNT(*) FROM sms GROUP BY direction, status")
    return {f"{d} {s}": int(n) for d, s, n in rows}
