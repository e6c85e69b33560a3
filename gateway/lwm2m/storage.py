"""The LwM2M tables of the store (migration ``0010_lwm2m``): plain functions over a connection.

Writes run in the store's writer thread (``GroupCommitter.write``), so they are serialised with
the group commits; reads run in the gateway's reader threads or in the CLI process.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from inspector.sqlite import now_ms, transaction

REGISTRATION_COLUMNS = ("id", "iccid", "lifetime", "version", "binding", "queue", "sms", "links", "transport",
                        "ip", "port", "registered_ms", "updated_ms", "expires_ms")
ACTION_COLUMNS = ("id", "iccid", "action", "resource", "data", "mode", "send_attempts", "attempts_left", "status",
                  "result", "ip", "created_ms", "updated_ms")
OPEN_STATUSES = ("SCHEDULED", "IN_PROGRESS")


# registrations ---------------------------------------------------------------------------

def apply_registration_ops(conn: sqlite3.Connection, ops: Sequence[tuple]) -> list[bool]:
    """Apply ``("put", row)``, ``("touch", id, expires_ms, updated_ms, ip, port)`` and ``("delete", id)``
    in one transaction (runs of the same kind with ``executemany``). Returns, per op, whether a
    ``put`` was the SIM's first registration ever."""
    first: list[bool] = []
    insert = (f"INSERT INTO lwm2m_registrations ({', '.join(REGISTRATION_COLUMNS)})"
              f" VALUES ({', '.join('?' * len(REGISTRATION_COLUMNS))}) ON CONFLICT (id) DO UPDATE SET "
              + ", ".join(f"{c} = excluded.{c}" for c in REGISTRATION_COLUMNS if c not in ("id", "registered_ms")))
    with transaction(conn):
        for kind, run in _runs(ops):
            if kind == "put":
                rows = [op[1] for op in run]
                # a SIM that registered twice in one batch: its last row replaces the earlier ones
                # (``iccid`` is UNIQUE; one SIM's two Registers must not fail the whole batch)
                last = list({r[1]: r for r in rows}.values())
                conn.executemany("DELETE FROM lwm2m_registrations WHERE iccid = ? AND id != ?",
                                 [(r[1], r[0]) for r in last])
                conn.executemany(insert, last)
                iccids = list(dict.fromkeys(r[1] for r in rows))
                known: set[str] = set()
                for i in range(0, len(iccids), 500):
                    chunk = iccids[i:i + 500]
                    known.update(r[0] for r in conn.execute(
                        f"SELECT iccid FROM lwm2m_devices WHERE iccid IN ({', '.join('?' * len(chunk))})", chunk))
                for r in rows:
                    is_first = r[1] not in known
                    known.add(r[1])
                    first.append(is_first)
                conn.executemany("INSERT OR IGNORE INTO lwm2m_devices (iccid, first_registered_ms) VALUES (?, ?)",
                                 [(r[1], r[11]) for r in rows])
            elif kind == "touch":
                conn.executemany("UPDATE lwm2m_registrations SET expires_ms = ?, updated_ms = ?, ip = ?, port = ?"
                                 " WHERE id = ?", [(op[2], op[3], op[4], op[5], op[1]) for op in run])
                first.extend(False for _ in run)
            else:
                conn.executemany("DELETE FROM lwm2m_registrations WHERE id = ?", [(op[1],) for op in run])
                first.extend(False for _ in run)
    return first


def _runs(ops: Sequence[tuple]) -> list[tuple[str, list[tuple]]]:
    runs: list[tuple[str, list[tuple]]] = []
    for op in ops:
        if runs and runs[-1][0] == op[0]:
            runs[-1][1].append(op)
        else:
            runs.append((op[0], [op]))
    return runs


def registration_version(conn: sqlite3.Connection, iccid: str, now_ms: int) -> str | None:
    """The LwM2M version of a device's unexpired stored registration (held by any process), or None."""
    row = conn.execute("SELECT version FROM lwm2m_registrations WHERE iccid = ? AND expires_ms >= ?",
                       (iccid, now_ms)).fetchone()
    return None if row is None else row[0]


def load_registration(conn: sqlite3.Connection, iccid: str) -> tuple | None:
    """One device's stored registration row (the columns of :func:`load_registrations`)."""
    return conn.execute(f"SELECT {', '.join(REGISTRATION_COLUMNS)} FROM lwm2m_registrations WHERE iccid = ?",
                        (iccid,)).fetchone()


def load_registrations(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute(f"SELECT {', '.join(REGISTRATION_COLUMNS)} FROM lwm2m_registrations").fetchall()


# observations ----------------------------------------------------------------------------

def add_observation(conn: sqlite3.Connection, iccid: str, path: str) -> None:
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO lwm2m_observations (iccid, path, created_ms) VALUES (?, ?, ?)",
                     (iccid, path, now_ms()))


def remove_observation(conn: sqlite3.Connection, iccid: str, path: str) -> int:
    with transaction(conn):
        return conn.execute("DELETE FROM lwm2m_observations WHERE iccid = ? AND path = ?", (iccid, path)).rowcount


def observations_of(conn: sqlite3.Connection, iccid: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT path FROM lwm2m_observations WHERE iccid = ? ORDER BY path",
                                       (iccid,))]


# device actions --------------------------------------------------------------------------

def action_from_row(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(ACTION_COLUMNS, row))
    item["result"] = json.loads(item["result"]) if item["result"] else None
    return item


def insert_action(conn: sqlite3.Connection, action: dict[str, Any]) -> None:
    with transaction(conn):
        conn.execute(
            f"INSERT INTO lwm2m_actions ({', '.join(ACTION_COLUMNS)}) VALUES ({', '.join('?' * len(ACTION_COLUMNS))})",
            tuple(json.dumps(action[c]) if c == "result" and action[c] is not None else action[c]
                  for c in ACTION_COLUMNS))


def get_action(conn: sqlite3.Connection, action_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {', '.join(ACTION_COLUMNS)} FROM lwm2m_actions WHERE id = ?",
                       (action_id,)).fetchone()
    return action_from_row(row) if row else None


def open_actions(conn: sqlite3.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {', '.join(ACTION_COLUMNS)} FROM lwm2m_actions"
                        " WHERE status IN ('SCHEDULED', 'IN_PROGRESS') ORDER BY seq LIMIT ?", (limit,))
    return [action_from_row(r) for r in rows]


def list_actions(conn: sqlite3.Connection, *, iccid: str | None = None, statuses: Sequence[str] = (),
                 limit: int = 100, offset: int = 0, newest_first: bool = True,
                 order_by: str = "created") -> tuple[list[dict[str, Any]], int]:
    """A page of actions and the total; ``order_by`` ``created`` or ``updated`` (ties: creation order)."""
    if order_by not in ("created", "updated"):
        raise ValueError(f"order_by must be created or updated, not {order_by!r}")
    where, args = [], []
    if iccid:
        where.append("iccid = ?")
        args.append(iccid)
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        args.extend(statuses)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = conn.execute(f"SELECT COUNT(*) FROM lwm2m_actions{clause}", args).fetchone()[0]
    direction = "DESC" if newest_first else "ASC"
    order = f"updated_ms {direction}, seq {direction}" if order_by == "updated" else f"seq {direction}"
    rows = conn.execute(f"SELECT {', '.join(ACTION_COLUMNS)} FROM lwm2m_actions{clause}"
                        f" ORDER BY {order} LIMIT ? OFFSET ?", (*args, limit, offset))
    return [action_from_row(r) for r in rows], total


def update_action(conn: sqlite3.Connection, action_id: str, *, only_if_open: bool = False, **fields: Any) -> bool:
    """Change columns of one action; with ``only_if_open`` only while it is SCHEDULED/IN_PROGRESS
    (so a cancel and a result never overwrite each other). Returns whether a row changed."""
    fields["updated_ms"] = now_ms()
    if "result" in fields and fields["result"] is not None:
        fields["result"] = json.dumps(fields["result"])
    sets = ", ".join(f"{k} = ?" for k in fields)
    sql = f"UPDATE lwm2m_actions SET {sets} WHERE id = ?"
    if only_if_open:
        sql += " AND status IN ('SCHEDULED', 'IN_PROGRESS')"
    with transaction(conn):
        return conn.execute(sql, (*fields.values(), action_id)).rowcount == 1


def cancel_actions(conn: sqlite3.Connection, *, action_id: str | None = None, iccid: str | None = None) -> list[str]:
    """Cancel open actions (one by id, or all of a device); returns the ids cancelled."""
    with transaction(conn):
        if action_id is not None:
            rows = conn.execute("SELECT id FROM lwm2m_actions WHERE id = ? AND status IN ('SCHEDULED', 'IN_PROGRESS')",
                                (action_id,)).fetchall()
        else:
            rows = conn.execute("SELECT id FROM lwm2m_actions WHERE iccid = ?"
                                " AND status IN ('SCHEDULED', 'IN_PROGRESS')", (iccid,)).fetchall()
        ids = [r[0] for r in rows]
        conn.executemany("UPDATE lwm2m_actions SET status = 'CANCELLED', updated_ms = ? WHERE id = ?",
                         [(now_ms(), i) for i in ids])
    return ids


def purge_actions(conn: sqlite3.Connection, before_ms: int) -> int:
    with transaction(conn):
        return conn.execute("DELETE FROM lwm2m_actions WHERE created_ms < ?"
                            " AND status NOT IN ('SCHEDULED', 'IN_PROGRESS')", (before_ms,)).rowcount
