"""Leases in the store: which process runs a duty that must run once (gateway/duties.py).

A lease is a row (name, holder, expires). Contract, the same for every backend:

- ``take`` gives the lease to ``holder`` when nobody holds it, when ``holder`` already holds
  it (a renewal) or when the current holder's lease has expired; it answers whether
  ``holder`` holds it now. It is one conditional upsert, so two processes taking at once
  cannot both win (SQLite serialises writers; PostgreSQL's ``ON CONFLICT`` locks the row).
- ``release`` gives it up, only if ``holder`` still holds it (a late release after the lease
  moved must not free the new holder's lease).
- Times are epoch milliseconds of the caller's clock: processes sharing one store must share
  one clock (one host; NTP between hosts, with ``ttl`` well above the clock skew).

The writes expect to run in a write transaction (``store.write_with``). Portable SQL: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` is SQLite 3.24+ and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

TAKE = ("INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
        "WHERE leases.holder = excluded.holder OR leases.expires < ?")


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    expires: int


def take(conn: sqlite3.Connection, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
    """Take or renew ``name`` for ``ttl_ms`` from ``now_ms``; True if ``holder`` holds it now."""
    if ttl_ms <= 0:
        raise ValueError("a lease needs a positive time to live")
    return conn.execute(TAKE, (name, holder, now_ms + ttl_ms, now_ms)).rowcount == 1


def release(conn: sqlite3.Connection, name: str, holder: str) -> bool:
    """Give ``name`` up if ``holder`` holds it; True if it did."""
    return conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)).rowcount == 1


def release_all(conn: sqlite3.Connection, holder: str) -> int:
    """Give up every lease of ``holder`` (a clean stop, or a holder known to be dead)."""
    return conn.execute("DELETE FROM leases WHERE holder = ?", (holder,)).rowcount


def holders(conn: sqlite3.Connection) -> list[Lease]:
    """Every lease, expired or not (for status and for finding dead holders on this host)."""
    return [Lease(*row) for row in conn.execute("SELECT name, holder, expires FROM leases ORDER BY name")]


def holder_of(conn: sqlite3.Connection, name: str, now_ms: int) -> str | None:
    """Who holds ``name`` now (None when nobody does or the lease expired)."""
    row: Any = conn.execute("SELECT holder FROM leases WHERE name = ? AND expires >= ?", (name, now_ms)).fetchone()
    return None if row is None else row[0]
