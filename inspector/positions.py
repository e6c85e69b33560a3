"""Stored positions of a device (GPS from BCL location fields and LwM2M object 6), for the
Device Locator's position routes. Portable SQL over the ``positions_by_device`` index."""

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


def device_positions(store: Any, iccid: str, *, start_ms: int | None, end_ms: int | None, source: str | None,
                     newest_first: bool, offset: int, limit: int) -> tuple[int, list[PositionRow]]:
    """(total, one page) of the device's positions in the window, by time."""
    where, args = ["iccid = ?"], [iccid]
    if start_ms is not None:
        where.append("received_ms >= ?")
        args.append(start_ms)
    if end_ms is not None:
        where.append("received_ms < ?")
        args.append(end_ms)
    if source is not None:
        where.append("source = ?")
        args.append(source)
    condition = " AND ".join(where)
    conn = store.connection()
    total = conn.execute(f"SELECT COUNT(*) FROM positions WHERE {condition}", args).fetchone()[0]
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT received_ms, source, protocol, lat, lon FROM positions WHERE {condition}"
                        f" ORDER BY received_ms {order}, seq {order} LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
    return total, [PositionRow(*row) for row in rows]
