"""Connectivity repository: the SQL of ``sim_bindings``, ``sim_usage_daily``, ``sim_quotas`` and
``sim_resets`` (migration ``0040_connectivity.sql``), in one place.

Every function takes a DB-API connection and uses portable SQL only (``INSERT ... ON CONFLICT
... DO UPDATE`` with table-qualified references, no ``INSERT OR REPLACE``, no ``rowid``), so a
PostgreSQL store can run the same statements; the ``?`` placeholders are the one thing its
driver spells differently (``%s``), to be mapped by the planned store interface.

Ordering rule: ``change_seq`` numbers come from ``meta.bindings_version``, read and written in
the same transaction as the rows. SQLite's single writer makes those transactions serial, so a
follower that reads "rows changed after N" never misses one; on PostgreSQL the ``UPDATE meta``
row lock gives the same serial order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .records import BindingRow

COLUMNS = ("iccid", "ip_address", "source", "session_id", "nas_ip", "imeisv", "rat_type", "apn", "msisdn",
           "location", "session_started_ms", "input_octets", "output_octets", "block_reason", "updated_ms",
           "change_seq")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM sim_bindings"
_UPSERT = (
    f"INSERT INTO sim_bindings ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    " ON CONFLICT (iccid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)


def _row(values: Sequence[Any]) -> BindingRow:
    return BindingRow(*values)


def _values(row: BindingRow) -> tuple:
    return (row.iccid, row.ip_address, row.source, row.session_id, row.nas_ip, row.imeisv, row.rat_type, row.apn,
            row.msisdn, row.location, row.session_started_ms, row.input_octets, row.output_octets,
            row.block_reason, row.updated_ms, row.change_seq)


def version(conn: Any) -> int:
    """The highest ``change_seq`` given out so far."""
    return conn.execute("SELECT value FROM meta WHERE key = 'bindings_version'").fetchone()[0]


def write(conn: Any, rows: Sequence[BindingRow]) -> None:
    """Write connectivity states in order, inside the caller's transaction.

    An address held by another SIM is taken from it first (the UNIQUE constraint on
    ``ip_address`` makes a lingering old binding impossible; that SIM's row gets a new
    ``change_seq`` so followers see it lose the address). Usage and data quota grow by the
    row's deltas.
    """
    seq = version(conn)
    usage = []
    quota = []
    for row in rows:
        if row.ip_address is not None:
            cur = conn.execute("UPDATE sim_bindings SET ip_address = NULL, change_seq = ?, updated_ms = ?"
                               " WHERE ip_address = ? AND iccid <> ?",
                               (seq + 1, row.updated_ms, row.ip_address, row.iccid))
            if cur.rowcount:
                seq += 1
        seq += 1
        row.change_seq = seq
        conn.execute(_UPSERT, _values(row))
        if row.rx_delta or row.tx_delta:
            usage.append((row.iccid, row.usage_day, row.rx_delta, row.tx_delta))
            quota.append((row.iccid, row.quota_total, row.rx_delta + row.tx_delta, row.quota_expiry_ms,
                          row.quota_total, row.updated_ms))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'bindings_version'", (seq,))
    if usage:
        conn.executemany(
            "INSERT INTO sim_usage_daily (iccid, day, rx_bytes, tx_bytes) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (iccid, day) DO UPDATE SET rx_bytes = sim_usage_daily.rx_bytes + excluded.rx_bytes,"
            " tx_bytes = sim_usage_daily.tx_bytes + excluded.tx_bytes", usage)
        conn.executemany(
            "INSERT INTO sim_quotas (iccid, service, total, used, expiry_ms, last_volume_added, last_change_ms)"
            " VALUES (?, 'data', ?, ?, ?, ?, ?)"
            " ON CONFLICT (iccid, service) DO UPDATE SET used = sim_quotas.used + excluded.used", quota)


def load_all(conn: Any) -> list[BindingRow]:
    """Every SIM's connectivity state (start-up)."""
    return [_row(r) for r in conn.execute(_SELECT + " ORDER BY change_seq")]


def changed_since(conn: Any, seq: int, limit: int = 100_000) -> list[BindingRow]:
    """Rows changed after ``seq``, oldest change first (how another process follows)."""
    return [_row(r) for r in conn.execute(_SELECT + " WHERE change_seq > ? ORDER BY change_seq LIMIT ?",
                                          (seq, limit))]


def get(conn: Any, iccid: str) -> BindingRow | None:
    row = conn.execute(_SELECT + " WHERE iccid = ?", (iccid,)).fetchone()
    return _row(row) if row else None


def set_block(conn: Any, iccid: str, reason: str | None, now_ms: int) -> None:
    """Block a SIM (or lift the block with ``None``); a SIM never reported gets a row without address."""
    seq = version(conn) + 1
    conn.execute(
        "INSERT INTO sim_bindings (iccid, ip_address, source, block_reason, updated_ms, change_seq)"
        " VALUES (?, NULL, 'radius', ?, ?, ?) ON CONFLICT (iccid) DO UPDATE SET"
        " block_reason = excluded.block_reason, updated_ms = excluded.updated_ms, change_seq = excluded.change_seq",
        (iccid, reason, now_ms, seq))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'bindings_version'", (seq,))


# usage ---------------------------------------------------------------------------------------

def daily_usage(conn: Any, iccid: str, first_day: str, last_day: str) -> list[tuple[str, int, int]]:
    """(day, rx_bytes, tx_bytes) per UTC day ``YYYY-MM-DD`` in the range, days without traffic left out."""
    return list(conn.execute(
        "SELECT day, rx_bytes, tx_bytes FROM sim_usage_daily WHERE iccid = ? AND day >= ? AND day <= ?"
        " ORDER BY day", (iccid, first_day, last_day)))


# quotas --------------------------------------------------------------------------------------

QUOTA_COLUMNS = ("total", "used", "expiry_ms", "last_volume_added", "last_change_ms")


def quotas(conn: Any, iccid: str | None = None) -> dict[tuple[str, str], dict]:
    """Stored quota rows by (iccid, service); a SIM without a row has the default."""
    sql = f"SELECT iccid, service, {', '.join(QUOTA_COLUMNS)} FROM sim_quotas"
    args: tuple = ()
    if iccid is not None:
        sql += " WHERE iccid = ?"
        args = (iccid,)
    return {(r[0], r[1]): dict(zip(QUOTA_COLUMNS, r[2:])) for r in conn.execute(sql, args)}


def add_quota(conn: Any, iccid: str, service: str, default_total: int, default_expiry_ms: int, amount: int,
              now_ms: int) -> None:
    """Top up: ``amount`` more of the service, starting from the default row if there is none."""
    conn.execute(
        "INSERT INTO sim_quotas (iccid, service, total, used, expiry_ms, last_volume_added, last_change_ms)"
        " VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT (iccid, service) DO UPDATE SET"
        " total = sim_quotas.total + excluded.last_volume_added, last_volume_added = excluded.last_volume_added,"
        " last_change_ms = excluded.last_change_ms",
        (iccid, service, default_total + amount, default_expiry_ms, amount, now_ms))


def ensure_quota(conn: Any, iccid: str, service: str, default_total: int, default_expiry_ms: int, now_ms: int) -> None:
    """Give the SIM its default quota row of ``service`` if it has none (nothing used yet)."""
    conn.execute(
        "INSERT INTO sim_quotas (iccid, service, total, used, expiry_ms, last_volume_added, last_change_ms)"
        " VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT (iccid, service) DO NOTHING",
        (iccid, service, default_total, default_expiry_ms, default_total, now_ms))


def take_quota(conn: Any, iccid: str, service: str, amount: int, now_ms: int) -> bool:
    """Count ``amount`` if that much is left and the quota has not expired, in one statement (so
    concurrent writers cannot both take the last of it on any database); whether it was taken."""
    return conn.execute(
        "UPDATE sim_quotas SET used = used + ? WHERE iccid = ? AND service = ? AND used + ? <= total"
        " AND expiry_ms > ?", (amount, iccid, service, amount, now_ms)).rowcount == 1


def release_quota(conn: Any, iccid: str, service: str, amount: int) -> None:
    """Give ``amount`` back (an MT SMS canceled before it was sent); never below zero."""
    conn.execute("UPDATE sim_quotas SET used = CASE WHEN used > ? THEN used - ? ELSE 0 END"
                 " WHERE iccid = ? AND service = ?", (amount, amount, iccid, service))


def quota_expiry(conn: Any, iccid: str) -> int | None:
    """The earliest expiry of the SIM's quotas (its lifetime's end), None without quota rows."""
    return conn.execute("SELECT MIN(expiry_ms) FROM sim_quotas WHERE iccid = ?", (iccid,)).fetchone()[0]


def expired_unblocked(conn: Any, now_ms: int, reason: str) -> list[tuple[str, int]]:
    """(iccid, expiry) of registered SIMs with a quota expired by ``now_ms`` not blocked for ``reason``."""
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT q.iccid, MIN(q.expiry_ms) FROM sim_quotas q JOIN sims s ON s.iccid = q.iccid"
        " LEFT JOIN sim_bindings b ON b.iccid = q.iccid"
        " WHERE q.expiry_ms <= ? AND (b.block_reason IS NULL OR b.block_reason <> ?)"
        " GROUP BY q.iccid ORDER BY q.iccid", (now_ms, reason))]


def touch(conn: Any, iccid: str, now_ms: int) -> None:
    """Give the SIM's row a new ``change_seq`` (when only its quota changed), so followers
    reread its quotas; a SIM never reported gets a row without address."""
    seq = version(conn) + 1
    conn.execute(
        "INSERT INTO sim_bindings (iccid, ip_address, source, updated_ms, change_seq) VALUES (?, NULL, 'radius', ?, ?)"
        " ON CONFLICT (iccid) DO UPDATE SET change_seq = excluded.change_seq", (iccid, now_ms, seq))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'bindings_version'", (seq,))


# connection resets -----------------------------------------------------------------------------

RESET_COLUMNS = ("id", "iccid", "reason", "nas_ip", "session_id", "state", "requested_ms", "answered_ms")


def add_reset(conn: Any, iccid: str, reason: str, nas_ip: str | None, session_id: str | None, state: str,
              now_ms: int) -> int:
    """Record a queued Disconnect-Request; returns its id (max + 1 under the write lock: portable)."""
    reset_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM sim_resets").fetchone()[0]
    conn.execute("INSERT INTO sim_resets (id, iccid, reason, nas_ip, session_id, state, requested_ms)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)", (reset_id, iccid, reason, nas_ip, session_id, state, now_ms))
    return reset_id


def finish_reset(conn: Any, reset_id: int, state: str, now_ms: int) -> None:
    conn.execute("UPDATE sim_resets SET state = ?, answered_ms = ? WHERE id = ?", (state, now_ms, reset_id))


def resets(conn: Any, iccid: str, limit: int = 50) -> list[dict]:
    rows = conn.execute(f"SELECT {', '.join(RESET_COLUMNS)} FROM sim_resets WHERE iccid = ? ORDER BY id DESC LIMIT ?",
                        (iccid, limit))
    return [dict(zip(RESET_COLUMNS, r)) for r in rows]


# network events of one SIM (kept in `events`) ----------------------------------------------------

def device_events(conn: Any, iccid: str, types: Sequence[str], offset: int, limit: int) -> tuple[int, list[str]]:
    """(total, bodies newest first) of the SIM's events of the given types."""
    marks = ", ".join("?" * len(types))
    # "type != 'TELEMETRY_DATA'" lets the partial index events_by_device serve the query
    where = f"iccid = ? AND type != 'TELEMETRY_DATA' AND type IN ({marks})"
    total = conn.execute(f"SELECT COUNT(*) FROM events WHERE {where}", (iccid, *types)).fetchone()[0]
    rows = conn.execute(f"SELECT body FROM events WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                        (iccid, *types, limit, offset))
    return total, [r[0] for r in rows]


# limits, settings, lifetime --------------------------------------------------------------------

def limits(conn: Any) -> dict[str, int]:
    """Self-set monthly limit option per service (data, smsMo, smsMt)."""
    return dict(conn.execute("SELECT service, limit_id FROM sim_limits"))


def set_limits(conn: Any, chosen: dict[str, int], now_ms: int) -> None:
    conn.executemany("INSERT INTO sim_limits (service, limit_id, updated_ms) VALUES (?, ?, ?)"
                     " ON CONFLICT (service) DO UPDATE SET limit_id = excluded.limit_id, updated_ms = excluded.updated_ms",
                     [(service, limit_id, now_ms) for service, limit_id in chosen.items()])


def auto_topup(conn: Any) -> set[str]:
    """ICCIDs with automatic top-up on."""
    return {r[0] for r in conn.execute("SELECT iccid FROM sim_settings WHERE auto_topup = 1")}


def set_auto_topup(conn: Any, iccids: Sequence[str], enabled: bool, now_ms: int) -> None:
    conn.executemany("INSERT INTO sim_settings (iccid, auto_topup, updated_ms) VALUES (?, ?, ?)"
                     " ON CONFLICT (iccid) DO UPDATE SET auto_topup = excluded.auto_topup, updated_ms = excluded.updated_ms",
                     [(iccid, int(enabled), now_ms) for iccid in iccids])


def extend(conn: Any, iccids: Sequence[str], defaults: dict[str, int], default_expiry_ms: int, lifetime_ms: int,
           now_ms: int) -> None:
    """Extend the lifetime of both quotas of each SIM by ``lifetime_ms``: from its expiry date, or
    from now when it has passed (a SIM without rows gets default rows expiring a lifetime after
    the default expiry)."""
    for iccid in iccids:
        for service, total in defaults.items():
            conn.execute(
                "INSERT INTO sim_quotas (iccid, service, total, used, expiry_ms, last_volume_added, last_change_ms)"
                " VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT (iccid, service) DO UPDATE SET"
                " expiry_ms = CASE WHEN sim_quotas.expiry_ms <= ? THEN ? ELSE sim_quotas.expiry_ms + ? END,"
                " last_change_ms = excluded.last_change_ms",
                (iccid, service, total, default_expiry_ms + lifetime_ms, total, now_ms, now_ms, now_ms + lifetime_ms,
                 lifetime_ms))


def month_usage(conn: Any, first_day: str) -> dict[str, int]:
    """Bytes (rx + tx) per SIM since ``first_day`` (the month's first day)."""
    return dict(conn.execute("SELECT iccid, SUM(rx_bytes + tx_bytes) FROM sim_usage_daily WHERE day >= ?"
                             " GROUP BY iccid", (first_day,)))


# new SIMs announced (sims.announced_ms) ----------------------------------------------------------

def claim_unannounced(conn: Any, now_ms: int, limit: int = 1000) -> list[tuple[str, str, str | None]]:
    """(iccid, imsi, ip_address) of SIMs not yet announced, marked announced in the caller's
    transaction; a SIM another process claimed first is skipped (its UPDATE changes no row)."""
    rows = list(conn.execute("SELECT iccid, imsi, ip_address FROM sims WHERE announced_ms IS NULL ORDER BY iccid"
                             " LIMIT ?", (limit,)))
    claimed = []
    for iccid, imsi, ip in rows:
        if conn.execute("UPDATE sims SET announced_ms = ? WHERE iccid = ? AND announced_ms IS NULL",
                        (now_ms, iccid)).rowcount:
            claimed.append((iccid, imsi, ip))
    return claimed
