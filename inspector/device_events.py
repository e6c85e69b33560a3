"""The events the gateway raised for one device other than telemetry (lifecycle, errors,
locations, ...), newest first: what the console's device page and
``GET /v1/inspect/devices/{id}/events`` show. Telemetry is the device's message history.

Portable SQL; the condition on ``type`` matches the partial index ``events_by_device``, so one
indexed range is read per call and telemetry costs no index work when it is committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    id: str
    type: str
    created_ms: int
    body: dict[str, Any]


def device_events(store: Any, iccid: str, limit: int, before_seq: int | None = None,
                  event_type: str | None = None) -> list[EventRow]:
    """At most ``limit`` events of ``iccid``, newest first, older than ``before_seq`` when given."""
    sql = "SELECT seq, id, type, created_ms, body FROM events WHERE iccid = ? AND type != 'TELEMETRY_DATA'"
    args: list[Any] = [iccid]
    if before_seq is not None:
        sql += " AND seq < ?"
        args.append(before_seq)
    if event_type is not None:
        sql += " AND type = ?"
        args.append(event_type)
    return _newest(store, sql, args, limit)


def gateway_events(store: Any, limit: int, event_type: str | None = None) -> list[EventRow]:
    """Events that concern no device (integration failures, test messages), newest first."""
    sql = "SELECT seq, id, type, created_ms, body FROM events WHERE iccid IS NULL AND type != 'TELEMETRY_DATA'"
    args: list[Any] = []
    if event_type is not None:
        sql += " AND type = ?"
        args.append(event_type)
    return _newest(store, sql, args, limit)


def _newest(store: Any, sql: str, args: list[Any], limit: int) -> list[EventRow]:
    rows = store.connection().execute(f"{sql} ORDER BY seq DESC LIMIT ?", [*args, limit]).fetchall()
    return [EventRow(seq, event_id, kind, created, json.loads(body)) for seq, event_id, kind, created, body in rows]
