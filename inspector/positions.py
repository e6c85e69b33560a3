"""Stored positions of devices (GPS from BCL location fields and LwM2M object 6; CellTower from the
cell table, with the cell's range as accuracy), for the Device Locator's routes. Portable SQL over
the ``positions_by_device`` index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PositionRow:
    received_ms: int
    source: str
    protocol: str
    lat: float
    lon: float
    accuracy: float | None = None
    metadata: str | None = None
    iccid: str = ""


_FIELDS = "received_ms, source, protocol, lat, lon, accuracy, metadata, iccid"


def device_positions(store: Any, iccid: str, *, start_ms: int | None, end_ms: int | None, source: str | None,
                     newest_first: bool, offset: int, limit: int) -> tuple[int, list[PositionRow]]:
    """(total, one page) of the device's positions in the window, by time."""
    where, args = _conditions(iccid, source, start_ms, end_ms)
    condition = " AND ".join(where)
    conn = store.connection()
    total = conn.execute(f"SELECT COUNT(*) FROM positions WHERE {condition}", args).fetchone()[0]
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT {_FIELDS} FROM positions WHERE {condition}"
                        f" ORDER BY received_ms {order}, seq {order} LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
    return total, [PositionRow(*row) for row in rows]


def _conditions(iccid: str | None, source: str | None, start_ms: int | None,
                end_ms: int | None) -> tuple[list[str], list[Any]]:
    """WHERE terms and their arguments for the filters that are set."""
    where, args = ["1 = 1"], []
    for column, op, value in (("iccid", "=", iccid), ("source", "=", source),
                              ("received_ms", ">=", start_ms), ("received_ms", "<", end_ms)):
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(value)
    return where, args


@dataclass(frozen=True, slots=True)
class LatestFilter:
    iccid: str | None = None
    source: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    box: tuple[float, float, float, float] | None = None  # lon from, lon to, lat from, lat to


def latest_positions(store: Any, flt: LatestFilter, *, newest_first: bool, offset: int,
                     limit: int) -> tuple[int, list[PositionRow]]:
    """(devices, one page) of each device's latest position among those matching the filter."""
    where, args = _conditions(flt.iccid, flt.source, flt.start_ms, flt.end_ms)
    if flt.box is not None:
        where.append("lon >= ? AND lon <= ? AND lat >= ? AND lat <= ?")
        args.extend(flt.box)
    inner = f"SELECT MAX(seq) FROM positions WHERE {' AND '.join(where)} GROUP BY iccid"
    conn = store.connection()
    total = conn.execute(f"SELECT COUNT(*) FROM ({inner}) latest_seqs", args).fetchone()[0]
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT {_FIELDS} FROM positions WHERE seq IN ({inner})"
                        f" ORDER BY received_ms {order}, iccid LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
    return total, [PositionRow(*row) for row in rows]


def cell_positions(store: Any, iccid: str, start_ms: int, end_ms: int, limit: int = 1000) -> list[PositionRow]:
    """A device's CellTower positions in the window, oldest first (the activity route)."""
    rows = store.connection().execute(
        f"SELECT {_FIELDS} FROM positions WHERE iccid = ? AND source = 'CellTower' AND received_ms >= ?"
        " AND received_ms < ? ORDER BY received_ms, seq LIMIT ?", (iccid, start_ms, end_ms, limit)).fetchall()
    return [PositionRow(*row) for row in rows]
