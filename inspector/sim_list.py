"""SIM listing for the API: filters, sort, page, total count (one read transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .records import Sim
from .sqlite import now_ms, transaction

FILTERABLE = ("iccid", "imsi", "ip_address", "msisdn", "imei", "label", "status")


@dataclass(frozen=True, slots=True)
class SimRow:
    sim: Sim
    created_ms: int
    updated_ms: int


_COLUMNS = "iccid, imsi, ip_address, msisdn, imei, label, status, imei_lock, created_ms, updated_ms"


def _row(r: Sequence[Any]) -> SimRow:
    return SimRow(Sim(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])), r[8], r[9])


def _where(filters: Mapping[str, str]) -> tuple[str, list[Any]]:
    bad = set(filters) - set(FILTERABLE)
    if bad:
        raise ValueError(f"cannot filter by {', '.join(sorted(bad))}")
    if not filters:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in filters), list(filters.values())


def _order(sort: Iterable[tuple[str, bool]]) -> str:
    """``[(column, descending)]`` → ORDER BY; the ICCID always breaks ties (stable pages). Empty
    values sort as the smallest on every backend (PostgreSQL's default is the opposite)."""
    parts = []
    for column, descending in sort:
        if column not in FILTERABLE:
            raise ValueError(f"cannot sort by {column}")
        parts.append(f"{column} {'DESC NULLS LAST' if descending else 'ASC NULLS FIRST'}")
    if not any(p.startswith("iccid ") for p in parts):
        parts.append("iccid ASC")
    return " ORDER BY " + ", ".join(parts)


def list_sims(store: Any, *, filters: Mapping[str, str] | None = None, sort: Iterable[tuple[str, bool]] = (),
              offset: int = 0, limit: int | None = None) -> tuple[int, list[SimRow]]:
    """(total matching, the requested slice)."""
    where, args = _where(filters or {})
    order = _order(sort)
    conn = store.connection()
    conn.execute("BEGIN")
    try:
        total = conn.execute(f"SELECT COUNT(*) FROM sims{where}", args).fetchone()[0]
        sql = f"SELECT {_COLUMNS} FROM sims{where}{order}"
        page_args = list(args)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            page_args += [limit, offset]
        rows = [_row(r) for r in conn.execute(sql, page_args)]
    finally:
        conn.execute("COMMIT")
    return total, rows


def get_sim_row(store: Any, iccid: str) -> SimRow | None:
    row = store.connection().execute(f"SELECT {_COLUMNS} FROM sims WHERE iccid = ?", (iccid,)).fetchone()
    return _row(row) if row else None


def update_sims(store: Any, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Apply ``(iccid, {column: value})`` changes in one transaction, all or none.

    Returns the ICCIDs that do not exist (and changes nothing) when any is unknown.
    """
    conn = store.connection()
    with transaction(conn):
        missing = [iccid for iccid, _ in updates
                   if conn.execute("SELECT 1 FROM sims WHERE iccid = ?", (iccid,)).fetchone() is None]
        if missing:
            return missing
        ts = now_ms()
        for iccid, changes in updates:
            bad = set(changes) - {"status", "label", "imei_lock"}
            if bad:
                raise ValueError(f"cannot change {', '.join(sorted(bad))}")
            if not changes:
                continue
            assignments = ", ".join(f"{k} = ?" for k in changes)
            values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
            conn.execute(f"UPDATE sims SET {assignments}, updated_ms = ? WHERE iccid = ?", (*values, ts, iccid))
    return []
