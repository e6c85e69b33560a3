"""Geofences and the last decided state (INSIDE/OUTSIDE) of each device in each of them.

The state is written in the same transaction as the ENTER/EXIT events it caused (``write_states``
as a ``Pending.extra``), so a restart neither repeats nor loses an event. Portable SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_COLUMNS = "id, name, kind, device_id, geometry, event_types, event_sources, created_ms, updated_ms"


@dataclass(slots=True)
class GeofenceRow:
    id: str
    name: str
    kind: str
    device_id: str | None
    geometry: dict[str, Any]
    event_types: list[str]
    event_sources: list[str]
    created_ms: int
    updated_ms: int


def _row(values: Sequence) -> GeofenceRow:
    return GeofenceRow(values[0], values[1], values[2], values[3], json.loads(values[4]), json.loads(values[5]),
                       json.loads(values[6]), values[7], values[8])


def version(conn: Any) -> int:
    """Moved by a trigger with every change of ``geofences`` (followed by every process)."""
    return conn.execute("SELECT value FROM meta WHERE key = 'geofences_version'").fetchone()[0]


def all_geofences(conn: Any) -> list[GeofenceRow]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM geofences ORDER BY created_ms, id")]


def page(conn: Any, offset: int, limit: int) -> tuple[int, list[GeofenceRow]]:
    total = conn.execute("SELECT COUNT(*) FROM geofences").fetchone()[0]
    rows = conn.execute(f"SELECT {_COLUMNS} FROM geofences ORDER BY created_ms, id LIMIT ? OFFSET ?",
                        (limit, offset)).fetchall()
    return total, [_row(r) for r in rows]


def get(conn: Any, geofence_id: str) -> GeofenceRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM geofences WHERE id = ?", (geofence_id,)).fetchone()
    return _row(row) if row else None


def insert(conn: Any, row: GeofenceRow) -> None:
    conn.execute(f"INSERT INTO geofences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (row.id, row.name, row.kind, row.device_id, json.dumps(row.geometry), json.dumps(row.event_types),
                  json.dumps(row.event_sources), row.created_ms, row.updated_ms))


def update(conn: Any, row: GeofenceRow) -> None:
    """Name, event types and sources (the geometry of a geofence does not change, as in 1NCE OS)."""
    conn.execute("UPDATE geofences SET name = ?, event_types = ?, event_sources = ?, updated_ms = ? WHERE id = ?",
                 (row.name, json.dumps(row.event_types), json.dumps(row.event_sources), row.updated_ms, row.id))


def delete(conn: Any, geofence_id: str) -> bool:
    conn.execute("DELETE FROM geofence_states WHERE geofence_id = ?", (geofence_id,))
    return conn.execute("DELETE FROM geofences WHERE id = ?", (geofence_id,)).rowcount > 0


def states(conn: Any) -> dict[tuple[str, str], str]:
    """(geofence id, iccid) → INSIDE or OUTSIDE."""
    return {(g, i): s for g, i, s in conn.execute("SELECT geofence_id, iccid, state FROM geofence_states")}


def write_states(conn: Any, changes: Sequence[tuple[str, str, str, int]]) -> None:
    """(geofence id, iccid, state, changed_ms) rows, in the caller's transaction."""
    conn.executemany(
        "INSERT INTO geofence_states (geofence_id, iccid, state, changed_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (geofence_id, iccid) DO UPDATE SET state = excluded.state, changed_ms = excluded.changed_ms",
        changes)
