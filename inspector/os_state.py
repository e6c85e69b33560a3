"""Store code of the smaller 1NCE OS features (migration 0044): settings and agreements, the
on/off state of device endpoints, PSK import jobs and plugin states (savings: inspector/savings.py).

Portable SQL only (plain inserts, ``ON CONFLICT ... DO UPDATE``, GROUP BY), so the tables carry
over to another store backend. Every function takes the store and runs on the calling thread's
connection: writes go through the group committer's thread, reads through a reader.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .sqlite import transaction

def now_ms() -> int:
    return time.time_ns() // 1_000_000


# settings and agreements --------------------------------------------------------------------

def settings(store: Any) -> dict[str, str]:
    return dict(store.connection().execute("SELECT name, state FROM os_settings").fetchall())


def settings_version(store: Any) -> int:
    """Moved by a trigger with every change of ``os_settings`` (followed by every process)."""
    return store.connection().execute("SELECT value FROM meta WHERE key = 'os_settings_version'").fetchone()[0]


def set_setting(store: Any, name: str, state: str, by: str) -> None:
    conn = store.connection()
    with transaction(conn):
        conn.execute("INSERT INTO os_settings (name, state, updated_ms, updated_by) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms,"
                     " updated_by = excluded.updated_by", (name, state, now_ms(), by))


def accept_agreement(store: Any, name: str, by: str) -> None:
    """Record the acceptance (the first one stays: an agreement is accepted once)."""
    conn = store.connection()
    with transaction(conn):
        if conn.execute("SELECT 1 FROM os_agreements WHERE name = ?", (name,)).fetchone() is None:
            conn.execute("INSERT INTO os_agreements (name, accepted_ms, accepted_by) VALUES (?, ?, ?)",
                         (name, now_ms(), by))


def agreement(store: Any, name: str) -> tuple[int, str] | None:
    row = store.connection().execute("SELECT accepted_ms, accepted_by FROM os_agreements WHERE name = ?",
                                     (name,)).fetchone()
    return (row[0], row[1]) if row else None


# endpoints ------------------------------------------------------------------------------------

def endpoint_states(store: Any) -> dict[str, tuple[bool, dict[str, str]]]:
    rows = store.connection().execute("SELECT protocol, active, settings FROM endpoint_states").fetchall()
    return {p: (bool(a), json.loads(s) if s else {}) for p, a, s in rows}


def endpoints_version(store: Any) -> int:
    """Moved by a trigger with every change of ``endpoint_states`` (followed by every process)."""
    return store.connection().execute("SELECT value FROM meta WHERE key = 'endpoints_version'").fetchone()[0]


def set_endpoint_state(store: Any, protocol: str, active: bool, endpoint_settings: dict[str, str]) -> None:
    conn = store.connection()
    with transaction(conn):
        conn.execute("INSERT INTO endpoint_states (protocol, active, settings, updated_ms) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (protocol) DO UPDATE SET active = excluded.active, settings = excluded.settings,"
                     " updated_ms = excluded.updated_ms",
                     (protocol, int(active), json.dumps(endpoint_settings, sort_keys=True), now_ms()))


# PSK import jobs ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PskJob:
    id: str
    created_ms: int
    updated_ms: int
    status: str
    source: str
    amount: int
    done: int
    failed: int


@dataclass(frozen=True, slots=True)
class PskJobRow:
    line: int
    iccid: str | None
    protocol: str | None
    ok: bool
    reason: str | None


_JOB = "id, created_ms, updated_ms, status, source, amount, done, failed"


def create_psk_job(store: Any, job_id: str, source: str, amount: int) -> None:
    conn = store.connection()
    now = now_ms()
    with transaction(conn):
        conn.execute(f"INSERT INTO psk_jobs ({_JOB}) VALUES (?, ?, ?, 'IN_PROGRESS', ?, ?, 0, 0)",
                     (job_id, now, now, source, amount))


def add_psk_job_rows(store: Any, job_id: str, rows: Sequence[PskJobRow], finished: bool) -> None:
    """Record results of some rows (no key in them) and advance the job's counters."""
    conn = store.connection()
    with transaction(conn):
        add_psk_job_rows_in(conn, job_id, rows, finished)


def add_psk_job_rows_in(conn: Any, job_id: str, rows: Sequence[PskJobRow], finished: bool) -> None:
    """:func:`add_psk_job_rows` inside a transaction the caller holds (with the keys themselves)."""
    conn.executemany("INSERT INTO psk_job_rows (job_id, line, iccid, protocol, ok, reason) VALUES (?, ?, ?, ?, ?, ?)",
                     [(job_id, r.line, r.iccid, r.protocol, int(r.ok), r.reason) for r in rows])
    done = sum(1 for r in rows if r.ok)
    conn.execute("UPDATE psk_jobs SET done = done + ?, failed = failed + ?, updated_ms = ?,"
                 " status = CASE WHEN ? = 1 THEN 'DONE' ELSE status END WHERE id = ?",
                 (done, len(rows) - done, now_ms(), int(finished), job_id))


def psk_jobs(store: Any, offset: int, limit: int) -> tuple[int, list[PskJob]]:
    conn = store.connection()
    total = conn.execute("SELECT COUNT(*) FROM psk_jobs").fetchone()[0]
    rows = conn.execute(f"SELECT {_JOB} FROM psk_jobs ORDER BY created_ms DESC, id LIMIT ? OFFSET ?",
                        (limit, offset)).fetchall()
    return total, [PskJob(*row) for row in rows]


def psk_job(store: Any, job_id: str) -> tuple[PskJob, list[PskJobRow]] | None:
    conn = store.connection()
    row = conn.execute(f"SELECT {_JOB} FROM psk_jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    rows = conn.execute("SELECT line, iccid, protocol, ok, reason FROM psk_job_rows WHERE job_id = ? ORDER BY line",
                        (job_id,)).fetchall()
    return PskJob(*row), [PskJobRow(line, iccid, protocol, bool(ok), reason) for line, iccid, protocol, ok, reason in rows]


def purge_psk_jobs(store: Any, before_ms: int) -> int:
    conn = store.connection()
    with transaction(conn):
        conn.execute("DELETE FROM psk_job_rows WHERE job_id IN (SELECT id FROM psk_jobs WHERE created_ms < ?)",
                     (before_ms,))
        return conn.execute("DELETE FROM psk_jobs WHERE created_ms < ?", (before_ms,)).rowcount


# plugins --------------------------------------------------------------------------------------

def plugin_states(store: Any) -> dict[str, tuple[str, int, int, str | None]]:
    rows = store.connection().execute("SELECT id, status, created_ms, updated_ms, message FROM plugin_states")
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows.fetchall()}


def set_plugin_state(store: Any, plugin_id: str, status: str, message: str | None = None) -> None:
    conn = store.connection()
    now = now_ms()
    with transaction(conn):
        conn.execute("INSERT INTO plugin_states (id, status, created_ms, updated_ms, message) VALUES (?, ?, ?, ?, ?)"
                     " ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms,"
                     " message = excluded.message", (plugin_id, status, now, now, message))
