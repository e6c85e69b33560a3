"""SQLite implementation of the store: the embedded default.

One file in WAL mode. All writes of the gateway go through one writer thread (see
``committer.GroupCommitter``), so SQLite's single-writer lock is never contended inside the
process; other processes (the CLI) wait on ``busy_timeout``. Each thread gets its own connection.

**The file is private to the gateway's user.** It holds the token signing key, PSKs and
webhook secrets: a new store is created 0600 in a folder created 0700, and SQLite gives the
``-wal`` and ``-shm`` files the database file's permissions. An existing store (or ``-wal``/
``-shm``) that others may read is made private with a loud warning; when that is not possible
(another user owns it) the store refuses to open.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .. import bindings as bindings_sql
from .. import multirow
from .. import savings as savings_sql
from ..records import EventRecord, OutboxItem, Pending, Sim
from .migrations import migrations, refuse_unknown, split_sql
from .errors import StoreError
from ..secretbox import MARK, SecretBox, SecretsKeyError, is_sealed

log = logging.getLogger("nce.store")

T = TypeVar("T")
#: the per-device message index (device_messages) is filled this often at most under load ...
DEVICE_FILL_SECONDS = 0.5
#: ... or as soon as this many messages wait for it
DEVICE_FILL_ROWS = 20_000
#: messages copied per fill transaction at most (a long backlog goes in several)
DEVICE_FILL_CHUNK = 100_000
SIM_COLUMNS = ("iccid", "imsi", "ip_address", "msisdn", "imei", "label", "status", "imei_lock")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _sim_from_row(row: Sequence) -> Sim:
    return Sim(
        iccid=row[0], imsi=row[1], ip_address=row[2], msisdn=row[3], imei=row[4],
        label=row[5], status=row[6], imei_lock=bool(row[7]),
    )


class SqliteStore:
    """The gateway's durable state in one SQLite file."""

    #: whether independent gateway processes (other hosts) may share this store: a SQLite file
    #: is shared only by the workers of one supervisor, who know it (gateway/workers.py)
    shared = False

    def change_listener(self, on_change: Callable[[str | None], None]) -> Any:
        """None: SQLite has no change notifications (followers poll, the CLI uses the control
        sockets). PostgreSQL's returns a listener (inspector/store/pg_listen.py)."""
        return None

    def __init__(self, path: str | Path, synchronous: str = "full", secrets_key: str | None = None) -> None:
        """``secrets_key``: encrypt secrets at rest (inspector.secretbox); None keeps them plain."""
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._opened: dict[int, Any] = {}  # thread id -> its connection
        self._opened_lock = threading.Lock()
        self._unfilled = 0  # messages committed by this process since its last device index fill
        self._filled_at = 0.0  # time.monotonic() of that fill
        try:
            self.secrets = SecretBox(secrets_key) if secrets_key else None
        except SecretsKeyError as exc:
            raise StoreError(str(exc)) from None
        if self.path != ":memory:":
            make_private(Path(self.path))
        self._migrate()
        self._check_secrets()
        self.fill_device_index()  # what a killed process committed but did not index yet

    # connections -----------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
            self._local.conn = conn
            self._keep(conn)
        return conn

    def _keep(self, conn: Any) -> None:
        """Remember a thread's new connection, so :meth:`close` can close it from any thread. A
        thread id the OS reused belongs to a thread that ended: its connection goes now."""
        with self._opened_lock:
            previous = self._opened.get(threading.get_ident())
            self._opened[threading.get_ident()] = conn
        if previous is not None and previous is not conn:
            previous.close()

    def close(self) -> None:
        """Close the connection of every thread (a stopped gateway keeps no file or server
        connection open); a later use connects again."""
        with self._opened_lock:
            opened, self._opened = list(self._opened.values()), {}
            self._local = threading.local()
        for conn in opened:
            try:
                conn.close()
            except Exception:  # a connection already broken: nothing left to close
                pass

    def _migrate(self) -> None:
        conn = self.connection()
        with transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
            applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        known = migrations()
        refuse_unknown(self.path, applied, [name for name, _ in known])
        for name, script in known:
            if name in applied:
                continue
            with transaction(conn):
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)", (name, now_ms()))

    # secrets at rest ------------------------------------------------------------------------

    def seal(self, data: bytes) -> bytes:
        return self.secrets.seal(data) if self.secrets is not None else data

    def unseal(self, data: bytes) -> bytes:
        if is_sealed(data):
            if self.secrets is None:
                raise StoreError(f"{self.path} holds encrypted secrets: set NCE_SECRETS_KEY or [store] secrets_key_file")
            try:
                return self.secrets.open(data)
            except SecretsKeyError as exc:
                raise StoreError(f"{self.path}: {exc}") from None
        return data

    def _config_secrets(self, config: dict, change: Callable[[str], str]) -> dict:
        """The integration config with its secret values (header values, external_id) changed."""
        if not config.get("headers") and not config.get("external_id"):
            return config
        out = dict(config)
        if out.get("headers"):
            out["headers"] = {k: change(v) for k, v in out["headers"].items()}
        if out.get("external_id"):
            out["external_id"] = change(out["external_id"])
        return out

    def _seal_text(self, text: str) -> str:
        return self.seal(text.encode("utf-8")).decode("ascii") if self.secrets is not None else text

    def _open_text(self, text: str) -> str:
        return self.unseal(text.encode("utf-8")).decode("utf-8") if is_sealed(text) else text

    def _check_secrets(self) -> None:
        """Without a key: refuse a store with sealed secrets. With one: check that it opens them,
        and seal the secrets written before the key was set."""
        conn = self.connection()
        sealed_psk = conn.execute("SELECT key FROM psks WHERE substr(key, 1, ?) = ? LIMIT 1",
                                  (len(MARK), MARK)).fetchone()
        sealed_key = conn.execute("SELECT secret FROM api_signing_keys WHERE substr(secret, 1, ?) = ? LIMIT 1",
                                  (len(MARK), MARK)).fetchone()
        sealed_config = conn.execute("SELECT config FROM integrations WHERE instr(config, ?) > 0 LIMIT 1",
                                     (MARK.decode(),)).fetchone()
        for row in (sealed_psk, sealed_key):
            if row is not None:
                self.unseal(bytes(row[0]))  # raises without the key or with a wrong one
        if sealed_config is not None:
            self._config_secrets(json.loads(sealed_config[0]), self._open_text)
        if self.secrets is None:
            return
        with transaction(conn):
            plain_psks = conn.execute("SELECT iccid, protocol, key FROM psks WHERE substr(key, 1, ?) != ?",
                                      (len(MARK), MARK)).fetchall()
            conn.executemany("UPDATE psks SET key = ? WHERE iccid = ? AND protocol = ?",
                             [(self.seal(bytes(k)), i, p) for i, p, k in plain_psks])
            keys = conn.execute("SELECT kid, secret FROM api_signing_keys WHERE substr(secret, 1, ?) != ?",
                                (len(MARK), MARK)).fetchall()
            conn.executemany("UPDATE api_signing_keys SET secret = ? WHERE kid = ?",
                             [(self.seal(bytes(s)), kid) for kid, s in keys])
            for integration_id, text in conn.execute("SELECT id, config FROM integrations").fetchall():
                config = json.loads(text)
                sealed = self._config_secrets(config, self._seal_text)
                if sealed != config:
                    conn.execute("UPDATE integrations SET config = ? WHERE id = ?", (json.dumps(sealed), integration_id))
        if plain_psks or keys:
            log.info("secrets sealed with the secrets key", extra={"event": "secrets_sealed", "psks": len(plain_psks),
                                                                   "signing_keys": len(keys)})

    # SIM registry -------------------------------------------------------------------------

    def all_sims(self) -> list[Sim]:
        rows = self.connection().execute(f"SELECT {', '.join(SIM_COLUMNS)} FROM sims ORDER BY iccid")
        return [_sim_from_row(r) for r in rows]

    def get_sim(self, iccid: str) -> Sim | None:
        row = self.connection().execute(
            f"SELECT {', '.join(SIM_COLUMNS)} FROM sims WHERE iccid = ?", (iccid,)
        ).fetchone()
        return _sim_from_row(row) if row else None

    def sims_version(self) -> int:
        return self.connection().execute("SELECT value FROM meta WHERE key = 'sims_version'").fetchone()[0]

    def upsert_sims(self, sims: Iterable[Sim]) -> int:
        """Insert or replace SIMs in one transaction: all of them or none."""
        ts = now_ms()
        rows = [
            (s.iccid, s.imsi, s.ip_address, s.msisdn, s.imei, s.label, s.status, int(s.imei_lock), ts, ts)
            for s in sims
        ]
        try:
            with transaction(self.connection()) as conn:
                conn.executemany(
                    """INSERT INTO sims (iccid, imsi, ip_address, msisdn, imei, label, status, imei_lock,
                                         created_ms, updated_ms)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (iccid) DO UPDATE SET imsi = excluded.imsi, ip_address = excluded.ip_address,
                           msisdn = excluded.msisdn, imei = excluded.imei, label = excluded.label,
                           status = excluded.status, imei_lock = excluded.imei_lock,
                           updated_ms = excluded.updated_ms""",
                    rows,
                )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"SIM import refused by the store: {exc}") from None
        return len(rows)

    def update_sim(self, iccid: str, **fields: object) -> Sim | None:
        """Change some columns of one SIM; returns the new SIM or None if it does not exist."""
        bad = set(fields) - set(SIM_COLUMNS[1:])
        if bad:
            raise StoreError(f"unknown SIM field(s): {', '.join(sorted(bad))}")
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
            try:
                with transaction(self.connection()) as conn:
                    conn.execute(f"UPDATE sims SET {assignments}, updated_ms = ? WHERE iccid = ?",
                                 (*values, now_ms(), iccid))
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"SIM {iccid}: {exc}") from None
        return self.get_sim(iccid)

    # repositories that take a connection (inspector/bindings.py) -------------------------

    def read_with(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(connection, *args)`` on this thread's connection (a repository read)."""
        return fn(self.connection(), *args)

    def write_with(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(connection, *args)`` in one write transaction (a repository write)."""
        with transaction(self.connection()) as conn:
            return fn(conn, *args)

    # pre-shared keys ---------------------------------------------------------------------

    def psks_version(self) -> int:
        return self.connection().execute("SELECT value FROM meta WHERE key = 'psks_version'").fetchone()[0]

    def all_psks(self) -> list[tuple[str, str, bytes, bool, int]]:
        """(iccid, protocol, key, user_set, created_ms) of every key."""
        rows = self.connection().execute("SELECT iccid, protocol, key, user_set, created_ms FROM psks")
        return [(r[0], r[1], self.unseal(bytes(r[2])), bool(r[3]), r[4]) for r in rows]

    def set_psk(self, iccid: str, protocol: str, key: bytes, user_set: bool, created_ms: int | None = None,
                grace_ms: int = 0) -> None:
        """Store a key. When it changes the SIM's DTLS key (the key set last, of any protocol),
        the old DTLS key stays valid for ``grace_ms`` (``psk_previous``), in the same transaction."""
        created_ms = created_ms if created_ms is not None else now_ms()
        with transaction(self.connection()) as conn:
            self.set_psk_in(conn, iccid, protocol, key, user_set, created_ms, grace_ms)

    def set_psk_in(self, conn: sqlite3.Connection, iccid: str, protocol: str, key: bytes, user_set: bool,
                   created_ms: int, grace_ms: int = 0) -> None:
        """:meth:`set_psk` inside a transaction the caller holds (a bulk import: many keys, one commit)."""
        self._serialize(conn, "psk", iccid)
        old = conn.execute("SELECT key FROM psks WHERE iccid = ? ORDER BY created_ms DESC LIMIT 1",
                           (iccid,)).fetchone()
        conn.execute(
            "INSERT INTO psks (iccid, protocol, key, user_set, created_ms) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (iccid, protocol) DO UPDATE SET key = excluded.key, user_set = excluded.user_set,"
            " created_ms = excluded.created_ms",
            (iccid, protocol, self.seal(key), int(user_set), created_ms))
        previous = self.unseal(bytes(old[0])) if old is not None else None
        if previous is not None and previous != key and grace_ms > 0:
            conn.execute("INSERT INTO psk_previous (iccid, key, until_ms) VALUES (?, ?, ?) ON CONFLICT (iccid)"
                         " DO UPDATE SET key = excluded.key, until_ms = excluded.until_ms",
                         (iccid, self.seal(previous), created_ms + grace_ms))
        elif previous is not None and previous != key:
            conn.execute("DELETE FROM psk_previous WHERE iccid = ?", (iccid,))

    def previous_psks(self) -> list[tuple[str, bytes, int]]:
        """(iccid, key, until_ms) of the keys still valid after a rotation (expired ones included)."""
        return [(r[0], self.unseal(bytes(r[1])), r[2])
                for r in self.connection().execute("SELECT iccid, key, until_ms FROM psk_previous")]

    # translation templates -----------------------------------------------------------------

    def templates_version(self) -> int:
        return self.connection().execute("SELECT value FROM meta WHERE key = 'templates_version'").fetchone()[0]

    def all_templates(self) -> list[dict]:
        rows = self.connection().execute(
            "SELECT id, name, template, protocols, status, created_ms, updated_ms FROM templates ORDER BY created_ms, id")
        keys = ("id", "name", "template", "protocols", "status", "created_ms", "updated_ms")
        out = []
        for row in rows:
            item = dict(zip(keys, row))
            item["protocols"] = json.loads(item["protocols"])
            out.append(item)
        return out

    def save_template(self, row: dict) -> None:
        """Insert or replace one template (the caller checked the one-active-per-protocol rule)."""
        with transaction(self.connection()) as conn:
            conn.execute(
                "INSERT INTO templates (id, name, template, protocols, status, created_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " template = excluded.template, protocols = excluded.protocols, status = excluded.status,"
                " updated_ms = excluded.updated_ms",
                (row["id"], row["name"], row["template"], json.dumps(row["protocols"]), row["status"],
                 row["created_ms"], row["updated_ms"]))

    def delete_template(self, template_id: str) -> bool:
        with transaction(self.connection()) as conn:
            return conn.execute("DELETE FROM templates WHERE id = ?", (template_id,)).rowcount > 0

    # messages and events (the hot path) ----------------------------------------------------

    def commit(self, batch: Sequence[Pending]) -> None:
        """Make a group of uplinks durable in ONE transaction (one WAL fsync at most).

        Sequence numbers are assigned here, under the write lock, so events and their outbox
        rows can be inserted with ``executemany`` instead of one round trip per row.
        """
        with transaction(self.connection()) as conn:
            self.commit_in(conn, batch)

    def commit_in(self, conn: sqlite3.Connection, batch: Sequence[Pending]) -> None:
        """The body of :meth:`commit`, inside a transaction the caller holds (so a repository
        write and its events can be one transaction)."""
        msg_seq, ev_seq = self._take_sequences(conn, batch)
        messages = []
        latest: dict[tuple[str, str], int] = {}
        events = []
        outbox = []
        positions: list[tuple[object, ...]] = []
        binding_rows = []
        for pending in batch:
            if pending.bindings:
                binding_rows.extend(pending.bindings)
            if pending.positions:
                positions.extend((p.iccid, p.received_ms, p.source, p.protocol, p.lat, p.lon, p.accuracy, p.metadata)
                                 for p in pending.positions)
            m = pending.message
            if m is not None:
                msg_seq += 1
                messages.append((msg_seq, m.iccid, m.protocol, m.received_ms, m.topic, m.payload,
                                 m.translated, m.error, m.event_id))
                latest[(m.iccid, m.protocol)] = msg_seq
            for e in pending.events:
                ev_seq += 1
                events.append((ev_seq, e.event_id, e.type, e.iccid, e.created_ms, e.body))
                for integration_id in e.routes:
                    outbox.append((integration_id, ev_seq, e.iccid))
        if messages:
            self._unfilled += len(messages)
            multirow.insert(conn, "INSERT INTO messages (seq, iccid, protocol, received_ms, topic, payload,"
                            " translated, error, event_id)", messages)
            multirow.insert(conn, "INSERT INTO latest (iccid, protocol, message_seq)",
                            [(k[0], k[1], v) for k, v in latest.items()],
                            tail="ON CONFLICT (iccid, protocol) DO UPDATE SET message_seq = excluded.message_seq")
        if events:
            multirow.insert(conn, "INSERT INTO events (seq, id, type, iccid, created_ms, body)", events)
        if outbox:
            multirow.insert(conn, "INSERT INTO outbox (integration_id, event_seq, iccid)", outbox)
        if messages:
            savings_sql.add_savings(conn, messages)  # Energy Saver's bytes saved, in this transaction
        if binding_rows:
            bindings_sql.write(conn, binding_rows)
        if positions:
            conn.executemany(
                "INSERT INTO positions (iccid, received_ms, source, protocol, lat, lon, accuracy, metadata)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                positions,
            )
        for pending in batch:
            if pending.extra is not None:
                pending.extra(conn)

    # the per-device message index (migrations/0048_device_messages.sql) ----------------------

    def device_index_due(self) -> bool:
        """Whether the messages committed since the last fill should be indexed now: every
        ``DEVICE_FILL_SECONDS`` under load, at once when ``DEVICE_FILL_ROWS`` wait."""
        return self._unfilled > 0 and (self._unfilled >= DEVICE_FILL_ROWS
                                       or time.monotonic() - self._filled_at >= DEVICE_FILL_SECONDS)

    def device_indexed_upto(self) -> int:
        """The highest message seq copied to ``device_messages``: every message at or below it is
        there (or purged from both), none above it is."""
        row = self.connection().execute("SELECT value FROM meta WHERE key = 'device_messages_upto'").fetchone()
        return int(row[0]) if row else 0

    def fill_device_index(self, chunk: int = DEVICE_FILL_CHUNK) -> int:
        """Copy the keys of the messages above the mark to ``device_messages``, sorted by device
        (each leaf page written once per fill, not once per group commit), and move the mark, in
        one write transaction per ``chunk`` messages; returns how many were copied. Derived from
        ``messages`` only, so it is idempotent and resumes after a kill."""
        self._unfilled = 0
        self._filled_at = time.monotonic()
        copied = 0
        while True:
            with transaction(self.connection()) as conn:
                row = conn.execute("SELECT value FROM meta WHERE key = 'device_messages_upto'").fetchone()
                mark = int(row[0]) if row else 0
                # under the write lock no commit is under way: every seq up to here is committed
                top = min(self.last_sequence("messages"), mark + chunk)
                if top <= mark:
                    return copied
                copied += conn.execute(
                    "INSERT OR IGNORE INTO device_messages (iccid, received_ms, seq, protocol)"
                    " SELECT iccid, received_ms, seq, protocol FROM messages WHERE seq > ? AND seq <= ?"
                    " ORDER BY iccid, received_ms, seq", (mark, top)).rowcount
                conn.execute("UPDATE meta SET value = ? WHERE key = 'device_messages_upto'", (top,))

    def _take_sequences(self, conn: sqlite3.Connection, batch: Sequence[Pending]) -> tuple[int, int]:
        """The last message and event numbers before ``batch``: the batch numbers its rows from
        there. SQLite: the highest ever used (sqlite_sequence remembers them after the rows are
        gone; explicit inserts keep it up to date); the one writer keeps them from being taken twice."""
        used = dict(conn.execute("SELECT name, seq FROM sqlite_sequence WHERE name IN ('messages', 'events')"))
        return used.get("messages", 0), used.get("events", 0)

    def _serialize(self, conn: sqlite3.Connection, *key: str) -> None:
        """Inside a write transaction: wait for other writers of ``key`` (a read-then-write that
        must not interleave). SQLite's one writer already does; PostgreSQL takes a lock."""

    def last_sequence(self, name: str) -> int:
        """The highest number given out by sequence ``name`` ('messages', 'events'): SQLite's one
        writer makes every row at or below it committed."""
        row = self.connection().execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def append_events(self, events: Sequence[EventRecord]) -> None:
        """Store events that belong to no device message (errors, lifecycle, tests)."""
        self.commit([Pending(message=None, events=list(events))])

    def events(self, *, event_type: str | None = None, limit: int = 1000) -> list[dict]:
        """Most recent events first, as parsed envelopes (for the CLI and tests)."""
        sql = "SELECT body FROM events"
        args: tuple = ()
        if event_type:
            sql += " WHERE type = ?"
            args = (event_type,)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [json.loads(r[0]) for r in self.connection().execute(sql, (*args, limit))]

    def messages(self, iccid: str | None = None, limit: int = 1000) -> list[dict]:
        """Most recent messages first (for the CLI and tests; the API has its own queries)."""
        sql = ("SELECT seq, iccid, protocol, received_ms, topic, payload, translated, error, event_id"
               " FROM messages")
        args: tuple = ()
        if iccid:
            sql += " WHERE iccid = ?"
            args = (iccid,)
        sql += " ORDER BY seq DESC LIMIT ?"
        keys = ("seq", "iccid", "protocol", "received_ms", "topic", "payload", "translated", "error", "event_id")
        return [dict(zip(keys, row)) for row in self.connection().execute(sql, (*args, limit))]

    def latest(self, iccid: str) -> dict[str, int]:
        """Seq of the latest message per protocol of one SIM."""
        rows = self.connection().execute("SELECT protocol, message_seq FROM latest WHERE iccid = ?", (iccid,))
        return dict(rows.fetchall())

    def positions(self, iccid: str, limit: int = 100) -> list[dict]:
        """Latest positions of one device, newest first."""
        rows = self.connection().execute(
            "SELECT received_ms, source, protocol, lat, lon FROM positions WHERE iccid = ? ORDER BY seq DESC LIMIT ?",
            (iccid, limit))
        return [dict(zip(("received_ms", "source", "protocol", "lat", "lon"), row)) for row in rows]

    # integrations and outbox -----------------------------------------------------------

    def integrations_version(self) -> int:
        return self.connection().execute(
            "SELECT value FROM meta WHERE key = 'integrations_version'").fetchone()[0]

    def list_integrations(self) -> list[dict]:
        rows = self.connection().execute(
            "SELECT id, uuid, name, kind, origin, config, state, created_ms, updated_ms, restarts"
            " FROM integrations ORDER BY id")
        keys = ("id", "uuid", "name", "kind", "origin", "config", "state", "created_ms", "updated_ms", "restarts")
        out = []
        for row in rows:
            item = dict(zip(keys, row))
            item["config"] = self._config_secrets(json.loads(item["config"]), self._open_text)
            out.append(item)
        return out

    def upsert_integration(self, *, uuid: str, name: str, kind: str, origin: str, config: dict,
                           state: str) -> int:
        """Create or update (by name) an integration; a new one gets ``state``, an existing one keeps its state."""
        ts = now_ms()
        config = self._config_secrets(config, self._seal_text)
        # the name's uniqueness is the table's constraint: one statement, no check-then-insert
        with transaction(self.connection()) as conn:
            row = conn.execute(
                "INSERT INTO integrations (uuid, name, kind, origin, config, state, created_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,"
                " origin = excluded.origin, config = excluded.config, updated_ms = excluded.updated_ms RETURNING id",
                (uuid, name, kind, origin, json.dumps(config), state, ts, ts)).fetchone()
        return int(row[0])

    def delete_integration(self, integration_id: int) -> None:
        conn = self.connection()
        with transaction(conn):
            conn.execute("DELETE FROM outbox WHERE integration_id = ?", (integration_id,))
            conn.execute("DELETE FROM integrations WHERE id = ?", (integration_id,))

    def set_integration_state(self, integration_id: int, state: str, reset_attempts: bool = False) -> None:
        """Set the state; ``reset_attempts`` makes it a restart: every waiting event starts again
        from attempt 1 and the restart count moves (the running gateway replaces the worker)."""
        conn = self.connection()
        with transaction(conn):
            conn.execute("UPDATE integrations SET state = ?, updated_ms = ?, restarts = restarts + ? WHERE id = ?",
                         (state, now_ms(), int(reset_attempts), integration_id))
            if reset_attempts:
                conn.execute("UPDATE outbox SET attempts = 0, next_attempt_ms = 0 WHERE integration_id = ?",
                             (integration_id,))

    def load_outbox(self, integration_id: int, after_seq: int, limit: int) -> list[OutboxItem]:
        rows = self.connection().execute(
            "SELECT o.seq, o.event_seq, o.iccid, o.attempts, o.next_attempt_ms, e.body, e.type, e.created_ms,"
            " o.replayed FROM outbox o JOIN events e ON e.seq = o.event_seq"
            " WHERE o.integration_id = ? AND o.seq > ? ORDER BY o.seq LIMIT ?",
            (integration_id, after_seq, limit),
        )
        # A replayed row (inspector/replay.py) delivers the stored event marked "replayed": true.
        return [OutboxItem(row[0], row[1], row[2], row[3], row[4], mark_replayed(row[5]) if row[8] else row[5],
                           row[6], row[7]) for row in rows]

    def outbox_depth(self, integration_id: int) -> int:
        return self.connection().execute(
            "SELECT COUNT(*) FROM outbox WHERE integration_id = ?", (integration_id,)).fetchone()[0]

    def finish_outbox(self, delivered: Sequence[int], attempts: Sequence[tuple[int, int, int]],
                      restarts: int | None = None) -> None:
        """Delete delivered rows and record failed attempts ``(seq, attempts, next_attempt_ms)``.

        With ``restarts`` (the restart count the worker started with), attempts are recorded only
        while the integration was not restarted since: a restart's reset is never overwritten by
        counts a worker of the previous round still had in memory.
        """
        conn = self.connection()
        with transaction(conn):
            if delivered:
                conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in delivered])
            if attempts and restarts is None:
                conn.executemany("UPDATE outbox SET attempts = ?, next_attempt_ms = ? WHERE seq = ?",
                                 [(a, n, s) for s, a, n in attempts])
            elif attempts:
                conn.executemany(
                    "UPDATE outbox SET attempts = ?, next_attempt_ms = ? WHERE seq = ? AND"
                    " (SELECT restarts FROM integrations i WHERE i.id = outbox.integration_id) = ?",
                    [(a, n, s, restarts) for s, a, n in attempts])

    # retention ---------------------------------------------------------------------------

    def purge(self, before_ms: int, chunk: int = 10000) -> dict[str, int]:
        """Delete history older than ``before_ms`` in small transactions (never one huge lock).

        Undelivered outbox rows whose event is purged are dropped with it; the count is returned
        so the caller can log and count them.
        """
        conn = self.connection()
        counts = {"messages": 0, "events": 0, "outbox": 0, "positions": 0, "admin_logs": 0, "cell_misses": 0}
        with transaction(conn):
            counts["outbox"] = conn.execute(
                "DELETE FROM outbox WHERE event_seq IN (SELECT seq FROM events WHERE created_ms < ?)",
                (before_ms,)).rowcount
        for table, column in (("events", "created_ms"), ("messages", "received_ms"), ("positions", "received_ms"),
                              ("admin_logs", "created_ms"), ("cell_misses", "received_ms")):
            while True:
                with transaction(conn):
                    if table == "messages":  # their device index entries leave in the same transaction
                        gone = conn.execute(
                            "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE received_ms < ? LIMIT ?)"
                            " RETURNING iccid, received_ms, seq", (before_ms, chunk)).fetchall()
                        conn.executemany("DELETE FROM device_messages WHERE iccid = ? AND received_ms = ? AND seq = ?",
                                         sorted(tuple(r) for r in gone))
                        n = len(gone)
                    else:
                        n = conn.execute(
                            f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE {column} < ? LIMIT ?)",
                            (before_ms, chunk)).rowcount
                counts[table] += n
                if n < chunk:
                    break
        if counts["messages"]:
            with transaction(conn):
                conn.execute("DELETE FROM latest WHERE message_seq NOT IN (SELECT seq FROM messages)")
        return counts


def make_private(path: Path) -> None:
    """Create the store's folder (0700) and file (0600) if missing; make an existing file and
    its ``-wal``/``-shm`` private (0600) with a warning when others may read or write them."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    for item in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(item.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077 == 0:
            continue
        try:
            os.chmod(item, mode & 0o700)
        except OSError as exc:
            raise StoreError(f"{item} can be read by other users (mode {mode:04o}) and cannot be made private "
                             f"({exc.strerror}): it holds the token signing key and device keys. Run "
                             f"`chmod 600 {item}` as its owner, or start the gateway as that user") from None
        log.warning("store file was readable by other users; made private",
                    extra={"event": "store_made_private", "path": str(item), "mode_was": f"{mode:04o}",
                           "mode_now": f"{mode & 0o700:04o}"})


def mark_replayed(body: str) -> str:
    """The delivered JSON of a replayed event (inspector/replay.py): the stored envelope plus
    ``"replayed": true``, its ``id`` unchanged."""
    # Stored envelopes are compact JSON objects written by gateway/events.py: adding the last
    # member is a splice (no parse per delivered row); anything else is parsed and rewritten.
    if body.endswith("}") and body != "{}":
        return body[:-1] + ',"replayed":true}'
    envelope = json.loads(body)
    envelope["replayed"] = True
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """An immediate (write-locking) transaction: committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_split_sql = split_sql  # the name tests and older callers import
