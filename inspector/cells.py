"""The cell table (OpenCelliD's columns): upsert from an import, count, and the lookup that turns
the cell a device uses into a position. Portable SQL (``ON CONFLICT ... DO UPDATE`` is in SQLite
and PostgreSQL); the primary key (mcc, mnc, cell, area, radio) serves the lookup by cell id with
or without the area (an ECGI carries no TAC)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: the table's columns in OpenCelliD's CSV order (``net`` is the MNC, ``range`` is cell_range)
COLUMNS = ("radio", "mcc", "mnc", "area", "cell", "unit", "lon", "lat", "cell_range", "samples", "changeable",
           "created", "updated", "average_signal")

_UPSERT = (f"INSERT INTO cells ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
           " ON CONFLICT (mcc, mnc, cell, area, radio) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("radio", "mcc", "mnc", "area", "cell")))


@dataclass(frozen=True, slots=True)
class Cell:
    radio: str
    mcc: int
    mnc: int
    area: int
    cell: int
    lon: float
    lat: float
    cell_range: int


def upsert(conn: Any, rows: Sequence[tuple]) -> None:
    """Insert or replace cells (tuples in ``COLUMNS`` order), in the caller's transaction."""
    conn.executemany(_UPSERT, rows)


def count(conn: Any) -> dict[str, int]:
    """Cells per radio."""
    return {radio: n for radio, n in conn.execute("SELECT radio, COUNT(*) FROM cells GROUP BY radio ORDER BY radio")}


def add_miss(conn: Any, iccid: str, received_ms: int, protocol: str, metadata: str) -> None:
    """A cell id the table did not know, kept for the activity route (FAILED)."""
    conn.execute("INSERT INTO cell_misses (iccid, received_ms, protocol, metadata) VALUES (?, ?, ?, ?)",
                 (iccid, received_ms, protocol, metadata))


def misses(conn: Any, iccid: str, start_ms: int, end_ms: int, limit: int = 1000) -> list[tuple[int, str, str]]:
    """(received_ms, protocol, metadata JSON) of the device's misses in the window, oldest first."""
    return conn.execute("SELECT received_ms, protocol, metadata FROM cell_misses WHERE iccid = ? AND received_ms >= ?"
                        " AND received_ms < ? ORDER BY received_ms, seq LIMIT ?",
                        (iccid, start_ms, end_ms, limit)).fetchall()


def lookup(conn: Any, mcc: int, mnc: int, cell: int, area: int | None = None,
           radios: Iterable[str] | None = None) -> Cell | None:
    """The cell with this id in this network (and area, and one of these radios, when given);
    of several matches the one seen by most samples."""
    where, args = ["mcc = ?", "mnc = ?", "cell = ?"], [mcc, mnc, cell]
    if area is not None:
        where.append("area = ?")
        args.append(area)
    radio_list = list(radios or ())
    if radio_list:
        where.append(f"radio IN ({', '.join('?' * len(radio_list))})")
        args.extend(radio_list)
    row = conn.execute(f"SELECT radio, mcc, mnc, area, cell, lon, lat, cell_range FROM cells WHERE {' AND '.join(where)}"
                       " ORDER BY samples DESC LIMIT 1", args).fetchone()
    return Cell(*row) if row else None
