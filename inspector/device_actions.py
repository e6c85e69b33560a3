"""The Device Controller's UDP and CoAP requests (migration ``0042_device_actions``), and the one
listing of every device action request (these and LwM2M's ``lwm2m_actions``) the API serves.

Plain functions over a connection, portable SQL. Writes run in the store's writer thread
(``GroupCommitter.write``) or in the CLI process; a status changes only with a condition on
the status it had (``claim``, ``update_open``), so a cancel, an expiry and a result never
overwrite each other, whichever process does them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from inspector.sqlite import now_ms, transaction

COLUMNS = ("id", "iccid", "protocol", "mode", "request", "send_attempts", "attempts_left", "status", "result",
           "ip", "created_ms", "updated_ms", "expires_ms")
OPEN = ("SCHEDULED", "IN_PROGRESS")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM device_actions"


def _row(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(COLUMNS, row))
    item["request"] = json.loads(item["request"])
    item["result"] = json.loads(item["result"]) if item["result"] else None
    return item


def insert(conn: sqlite3.Connection, record: dict[str, Any], per_device: int, total: int) -> str | None:
    """Store a new request unless a limit is reached: returns None, or why not ("device"/"total")."""
    with transaction(conn):
        if conn.execute("SELECT COUNT(*) FROM device_actions WHERE status IN ('SCHEDULED', 'IN_PROGRESS')"
                        " AND iccid = ?", (record["iccid"],)).fetchone()[0] >= per_device:
            return "device"
        if conn.execute("SELECT COUNT(*) FROM device_actions WHERE status IN ('SCHEDULED', 'IN_PROGRESS')"
                        ).fetchone()[0] >= total:
            return "total"
        values = [json.dumps(record[c]) if c in ("request", "result") and record[c] is not None else record[c]
                  for c in COLUMNS]
        conn.execute(f"INSERT INTO device_actions ({', '.join(COLUMNS)}, seq) VALUES "
                     f"({', '.join('?' * len(COLUMNS))}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM device_actions))",
                     values)
    return None


def get(conn: sqlite3.Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (request_id,)).fetchone()
    return _row(row) if row else None


def scheduled(conn: sqlite3.Connection, iccid: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """SCHEDULED requests in creation order (of one device, or all)."""
    where, args = "status = 'SCHEDULED'", []
    if iccid is not None:
        where += " AND iccid = ?"
        args.append(iccid)
    rows = conn.execute(f"{_SELECT} WHERE {where} ORDER BY seq LIMIT ?", (*args, limit))
    return [_row(r) for r in rows]


def waiting_devices(conn: sqlite3.Connection) -> list[tuple[str, bool]]:
    """``(iccid, due)`` of every device with SCHEDULED requests; ``due``: one of them is SEND_NOW
    and was never tried (written by the CLI, or waiting since its device was not heard from)."""
    rows = conn.execute("SELECT iccid, MAX(CASE WHEN mode = 'SEND_NOW' AND attempts_left = send_attempts"
                        " THEN 1 ELSE 0 END) FROM device_actions WHERE status = 'SCHEDULED' GROUP BY iccid")
    return [(r[0], bool(r[1])) for r in rows]


def open_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM device_actions WHERE status IN ('SCHEDULED', 'IN_PROGRESS')"
                        ).fetchone()[0]


def claim(conn: sqlite3.Connection, request_id: str) -> int | None:
    """SCHEDULED → IN_PROGRESS, one attempt used; the attempts left, or None when the request
    was no longer SCHEDULED (sent by someone else, cancelled, expired)."""
    with transaction(conn):
        changed = conn.execute("UPDATE device_actions SET status = 'IN_PROGRESS', attempts_left = attempts_left - 1,"
                               " updated_ms = ? WHERE id = ? AND status = 'SCHEDULED' AND attempts_left > 0",
                               (now_ms(), request_id)).rowcount
        if not changed:
            return None
        return conn.execute("SELECT attempts_left FROM device_actions WHERE id = ?", (request_id,)).fetchone()[0]


def update_open(conn: sqlite3.Connection, request_id: str, status: str, result: dict[str, Any] | None = None,
                ip: str | None = None) -> bool:
    """Set the status (and result) of a request that is still open; whether it was."""
    sets, args = ["status = ?", "updated_ms = ?"], [status, now_ms()]
    if result is not None:
        sets.append("result = ?")
        args.append(json.dumps(result))
    if ip is not None:
        sets.append("ip = ?")
        args.append(ip)
    with transaction(conn):
        return conn.execute(f"UPDATE device_actions SET {', '.join(sets)} WHERE id = ?"
                            " AND status IN ('SCHEDULED', 'IN_PROGRESS')", (*args, request_id)).rowcount == 1


def expire(conn: sqlite3.Connection, now: int) -> list[dict[str, Any]]:
    """SCHEDULED requests past their expiry → FAILED; returns them (as they are now)."""
    with transaction(conn):
        rows = [_row(r) for r in conn.execute(f"{_SELECT} WHERE status = 'SCHEDULED' AND expires_ms <= ?", (now,))]
        result = {"error": "expired: the device sent no uplink before the request's expiry"}
        conn.executemany("UPDATE device_actions SET status = 'FAILED', result = ?, updated_ms = ?"
                         " WHERE id = ? AND status = 'SCHEDULED'", [(json.dumps(result), now, r["id"]) for r in rows])
    for r in rows:
        r.update(status="FAILED", result=result, updated_ms=now)
    return rows


def resume_interrupted(conn: sqlite3.Connection) -> int:
    """At start: requests a stopped gateway left IN_PROGRESS go back to SCHEDULED with at least one
    attempt left (sent again with the device's next uplink: at-least-once)."""
    with transaction(conn):
        return conn.execute("UPDATE device_actions SET status = 'SCHEDULED', updated_ms = ?,"
                            " attempts_left = CASE WHEN attempts_left < 1 THEN 1 ELSE attempts_left END"
                            " WHERE status = 'IN_PROGRESS'", (now_ms(),)).rowcount


def cancel(conn: sqlite3.Connection, *, request_id: str | None = None, iccid: str | None = None) -> list[str]:
    """Cancel open requests (one by id, or all of a device); the ids cancelled."""
    key, value = ("id", request_id) if request_id is not None else ("iccid", iccid)
    with transaction(conn):
        ids = [r[0] for r in conn.execute(f"SELECT id FROM device_actions WHERE {key} = ?"
                                          " AND status IN ('SCHEDULED', 'IN_PROGRESS')", (value,))]
        conn.executemany("UPDATE device_actions SET status = 'CANCELLED', updated_ms = ? WHERE id = ?"
                         " AND status IN ('SCHEDULED', 'IN_PROGRESS')", [(now_ms(), i) for i in ids])
    return ids


def purge(conn: sqlite3.Connection, before_ms: int) -> int:
    with transaction(conn):
        return conn.execute("DELETE FROM device_actions WHERE created_ms < ?"
                            " AND status NOT IN ('SCHEDULED', 'IN_PROGRESS')", (before_ms,)).rowcount


def page(conn: sqlite3.Connection, *, iccid: str | None = None, statuses: Sequence[str] = (),
         protocols: Sequence[str] = (), limit: int = 100, offset: int = 0, newest_first: bool = True,
         order_by: str = "created") -> tuple[list[tuple[str, str]], int]:
    """One page of every device action request (UDP, CoAP and LwM2M), as ``(protocol, id)``, and
    the total. ``order_by`` is ``created`` or ``updated``; ties keep each table's creation order."""
    if order_by not in ("created", "updated"):
        raise ValueError(f"order_by must be created or updated, not {order_by!r}")
    union = ("SELECT protocol, id, iccid, status, created_ms, updated_ms, seq FROM device_actions"
             " UNION ALL SELECT 'LWM2M', id, iccid, status, created_ms, updated_ms, seq FROM lwm2m_actions")
    where, args = [], []
    if iccid:
        where.append("iccid = ?")
        args.append(iccid)
    for column, values in (("status", statuses), ("protocol", protocols)):
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = conn.execute(f"SELECT COUNT(*) FROM ({union}) a{clause}", args).fetchone()[0]
    direction = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT protocol, id FROM ({union}) a{clause} ORDER BY {order_by}_ms {direction},"
                        f" seq {direction} LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
    return [(r[0], r[1]) for r in rows], total
