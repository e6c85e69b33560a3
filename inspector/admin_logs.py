"""Administration logs in the store: one row per change made through the API or the CLI.

Portable SQL (plain inserts, indexed ranges, COUNT and GROUP BY), so the table carries over to
another store backend. Ordering: newest first by ``seq``, which the store gives out increasing
at commit time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .sqlite import transaction

COLUMNS = ("id", "created_ms", "source", "actor", "role", "ip", "type", "category", "iccid", "integration_id",
           "message", "description")


@dataclass(frozen=True, slots=True)
class AdminLog:
    id: str
    created_ms: int
    source: str
    actor: str
    role: str
    ip: str | None
    type: str
    category: str
    iccid: str | None
    integration_id: str | None
    message: str
    description: str


@dataclass(frozen=True, slots=True)
class AdminLogQuery:
    type: str | None = None
    iccid: str | None = None
    category: str | None = None
    actor: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None


def record(store: Any, entry: AdminLog, payload: Any) -> None:
    conn = store.connection()
    with transaction(conn):
        conn.execute(f"INSERT INTO admin_logs ({', '.join(COLUMNS)}, payload) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                     (*(getattr(entry, c) for c in COLUMNS), None if payload is None else json.dumps(payload)))


def _where(q: AdminLogQuery) -> tuple[str, list[Any]]:
    conditions, args = [], []
    for column in ("type", "iccid", "category", "actor"):
        value = getattr(q, column)
        if value is not None:
            conditions.append(f"{column} = ?")
            args.append(value)
    if q.start_ms is not None:
        conditions.append("created_ms >= ?")
        args.append(q.start_ms)
    if q.end_ms is not None:
        conditions.append("created_ms < ?")
        args.append(q.end_ms)
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", args


def page(store: Any, q: AdminLogQuery, offset: int, limit: int) -> tuple[int, list[AdminLog]]:
    where, args = _where(q)
    conn = store.connection()
    total = conn.execute(f"SELECT COUNT(*) FROM admin_logs{where}", args).fetchone()[0]
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM admin_logs{where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                        [*args, limit, offset]).fetchall()
    return total, [AdminLog(*row) for row in rows]


def payload(store: Any, log_id: str) -> tuple[bool, Any]:
    """(exists, the stored payload or None)."""
    row = store.connection().execute("SELECT payload FROM admin_logs WHERE id = ?", (log_id,)).fetchone()
    if row is None:
        return False, None
    return True, None if row[0] is None else json.loads(row[0])


def times(store: Any, category: str | None) -> list[tuple[int, str | None]]:
    """(created_ms, iccid) of every log (of a category): the statistics group them by local day."""
    sql = "SELECT created_ms, iccid FROM admin_logs"
    args: list[Any] = []
    if category is not None:
        sql += " WHERE category = ?"
        args.append(category)
    return [(ms, iccid) for ms, iccid in store.connection().execute(sql, args).fetchall()]
