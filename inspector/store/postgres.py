"""PostgreSQL implementation of the store (psycopg 3): one database shared by several processes.

**Same SQL, one translation.** The SQL of :class:`~inspector.store.sqlite.SqliteStore` and of the
repositories in ``inspector/`` is written portable; :class:`PgConnection` gives it the sqlite3
connection API (``execute``/``executemany``/``fetchone``/``rowcount``/``lastrowid``) and
translates the few SQLite idioms left (store/dialect.py). So this class inherits the SQLite
store and overrides only where the two databases behave differently:

- **Sequence numbers** (messages, events): SQLite's one writer hands them out; here a commit takes
  them with ``UPDATE store_sequences ... RETURNING``, whose row lock is held to the commit, so
  numbers become visible in increasing order (``last_sequence`` = N means all rows <= N are visible).
- **One writer at a time**, as SQLite: ``transaction()`` (``BEGIN IMMEDIATE``) takes a
  transaction-level advisory lock, so the repositories that read then write (quotas, a PSK
  rotation reading the old key) stay correct with several processes; readers never wait (MVCC).
  Finer locks (per key: ``_serialize``) are in place for when this one is relaxed (issue #16, item 2).
- **Retention**: ``messages`` is partitioned by day (``received_ms``); ``purge`` drops the
  partitions that lie wholly before the limit (instant, no dead rows; their ``device_messages``
  entries are deleted in the same transaction) and deletes the rest by rows.
- **Errors**: a lost connection raises :class:`StoreUnavailable` (nothing was committed; the next
  call reconnects); a broken constraint raises ``sqlite3.IntegrityError``, the class the
  repositories written for SQLite already catch.

Each thread has its own connection, in autocommit mode; ``transaction()`` sends BEGIN/COMMIT.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import psycopg

from ..records import Pending
from ..secretbox import SecretBox, SecretsKeyError
from .dialect import translate
from .errors import StoreError, StoreUnavailable
from .migrations import postgres_migrations, refuse_unknown
from .sqlite import SqliteStore, now_ms, transaction

log = logging.getLogger("nce.store")

T = TypeVar("T")
_SAFE_AGAIN = re.compile(r"\s*(SELECT\b|BEGIN\b)", re.IGNORECASE)
DAY_MS = 86_400_000
MIGRATION_LOCK = 0x4E4345  # pg_advisory_xact_lock key while migrating ("NCE")
WRITER_LOCK = 0x4E434557  # pg_advisory_xact_lock key of every write transaction ("NCEW")


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _params(params: Iterable[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    # SQLite stores booleans as integers; PostgreSQL would refuse a boolean for a BIGINT column
    if isinstance(params, dict):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    return [int(p) if isinstance(p, bool) else p for p in params]


class PgCursor:
    """The part of sqlite3.Cursor the store's code uses."""

    def __init__(self, conn: PgConnection, cursor: psycopg.Cursor[Any] | None) -> None:
        self._conn = conn
        self._cursor = cursor

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cursor is None or self._cursor.description is None:
            return None
        return self._conn._run(self._cursor.fetchone)

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._cursor is None or self._cursor.description is None:
            return []
        return self._conn._run(self._cursor.fetchall)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount if self._cursor is not None else -1

    @property
    def description(self) -> Any:
        return self._cursor.description if self._cursor is not None else None

    @property
    def lastrowid(self) -> int | None:
        """The identity value the last INSERT of this connection generated (``lastval()``)."""
        row = self._conn.execute("SELECT lastval()").fetchone()
        return int(row[0]) if row else None


class PgConnection:
    """A psycopg connection with the sqlite3 connection API the store's SQL is written for."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {redact(self.url)}: {str(exc).strip()}") from None

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> PgCursor:
        if sql == "ROLLBACK" and self.closed:
            return PgCursor(self, None)  # the server ended the transaction with the connection
        idle = self._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        try:
            return self._execute(sql, params)
        except StoreUnavailable:
            # The connection died while idle (a server restart): a read, or the BEGIN of a
            # transaction, did nothing yet, so it is safe once more on a new connection.
            if not (idle and _SAFE_AGAIN.match(sql)):
                raise
            self._conn = self._connect()
            return self._execute(sql, params)

    def _execute(self, sql: str, params: Iterable[Any] | dict[str, Any]) -> PgCursor:
        cursor = self._run(self._conn.cursor)
        self._run(lambda: cursor.execute(translate(sql), _params(params)))
        if sql == "BEGIN IMMEDIATE":
            # SQLite's BEGIN IMMEDIATE makes this the only writer until COMMIT, and the repositories
            # written for it (quotas, read-then-write) rely on that: the same here, across processes.
            self._run(lambda: cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,)))
        return PgCursor(self, cursor)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> PgCursor:
        cursor = self._run(self._conn.cursor)
        self._run(lambda: cursor.executemany(translate(sql), [_params(r) for r in rows]))
        return PgCursor(self, cursor)

    def _run(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except psycopg.errors.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc).strip().splitlines()[0]) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if self._conn.closed or self._conn.broken:
                raise StoreUnavailable(f"PostgreSQL at {redact(self.url)}: {str(exc).strip()}") from None
            raise StoreError(str(exc).strip()) from None
        except psycopg.Error as exc:  # one error tree: the rest of the gateway never sees psycopg's
            raise StoreError(str(exc).strip()) from exc

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed or self._conn.broken)

    def commit(self) -> None:  # autocommit: transactions are explicit (transaction())
        pass

    def close(self) -> None:
        self._conn.close()


class PostgresStore(SqliteStore):
    """The gateway's durable state in one PostgreSQL database."""

    shared = True  # any number of gateway processes, on any hosts, may use one database

    def change_listener(self, on_change: Callable[[str | None], None]) -> Any:
        """A (not yet started) LISTEN connection calling ``on_change`` for each change of a
        follower's version counter (inspector/store/pg_listen.py)."""
        from .pg_listen import ChangeListener
        return ChangeListener(self.url, on_change)

    def __init__(self, url: str, secrets_key: str | None = None, partition_days_ahead: int = 3) -> None:
        self.url = url
        self.path = redact(url)
        self.synchronous = "FULL"  # PostgreSQL commits durably (synchronous_commit = on)
        self.partition_days_ahead = partition_days_ahead
        self._local = threading.local()
        self._opened: dict[int, Any] = {}
        self._opened_lock = threading.Lock()
        self._unfilled = 0
        self._filled_at = 0.0
        try:
            self.secrets = SecretBox(secrets_key) if secrets_key else None
        except SecretsKeyError as exc:
            raise StoreError(str(exc)) from None
        self._migrate()
        self.ensure_partitions()
        self._check_secrets()
        self.fill_device_index()

    # connections -----------------------------------------------------------------------

    def connection(self) -> PgConnection:  # type: ignore[override]
        """This thread's connection (made again after the server went away)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = PgConnection(self.url)
            self._local.conn = conn
            self._keep(conn)
        return conn

    def _migrate(self) -> None:
        conn = self.connection()
        with transaction(conn):  # type: ignore[arg-type]
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))  # one process migrates
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ms BIGINT)")
            applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            known = postgres_migrations()
            refuse_unknown(self.path, applied, [name for name, _ in known])
            for name, statements in known:
                if name in applied:
                    continue
                for statement in statements:
                    conn._conn.execute(statement.encode("utf-8"))  # no parameters: sent as written
                conn.execute("INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)", (name, now_ms()))
                log.info("migration applied", extra={"event": "store_migrated", "migration": name})

    # what differs from SQLite ----------------------------------------------------------------

    def _take_sequences(self, conn: Any, batch: Sequence[Pending]) -> tuple[int, int]:
        """Take the numbers the batch needs; the row locks are held to the commit (in order)."""
        n_messages = sum(1 for p in batch if p.message is not None)
        n_events = sum(len(p.events) for p in batch)
        if not n_messages and not n_events:
            return 0, 0
        rows = conn.execute(  # one round trip for both (writers are serialized: no lock-order question)
            "UPDATE store_sequences SET seq = seq + CASE name WHEN 'messages' THEN ? ELSE ? END"
            " WHERE name IN ('messages', 'events') RETURNING name, seq", (n_messages, n_events)).fetchall()
        last = dict(rows)
        return int(last["messages"]) - n_messages, int(last["events"]) - n_events

    def last_sequence(self, name: str) -> int:
        row = self.connection().execute("SELECT seq FROM store_sequences WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _serialize(self, conn: Any, *key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (":".join(key),))

    # retention by daily partitions -------------------------------------------------------

    def _partitions(self) -> list[tuple[str, int]]:
        """(name, first day's ms) of the daily partitions of ``messages``, oldest first."""
        rows = self.connection().execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'messages' AND c.relname LIKE 'messages_p%'"
        ).fetchall()
        out = []
        for (name,) in rows:
            day = datetime.strptime(name.removeprefix("messages_p"), "%Y%m%d").replace(tzinfo=timezone.utc)
            out.append((name, int(day.timestamp() * 1000)))
        return sorted(out, key=lambda item: item[1])

    def ensure_partitions(self, at_ms: int | None = None) -> list[str]:
        """Create the daily partitions from today to ``partition_days_ahead`` days on; a day whose
        rows already sit in the default partition stays there (purged by rows)."""
        at_ms = now_ms() if at_ms is None else at_ms
        today = datetime.fromtimestamp(at_ms / 1000, timezone.utc).replace(hour=0, minute=0, second=0,
                                                                            microsecond=0)
        have = {name for name, _ in self._partitions()}
        made = []
        for offset in range(self.partition_days_ahead + 1):
            day = today + timedelta(days=offset)
            name = f"messages_p{day:%Y%m%d}"
            if name in have:
                continue
            start = int(day.timestamp() * 1000)
            try:
                with transaction(self.connection()) as conn:  # type: ignore[arg-type]
                    conn.execute(f"CREATE TABLE {name} PARTITION OF messages FOR VALUES FROM ({start})"
                                 f" TO ({start + DAY_MS})")
                made.append(name)
            except (sqlite3.IntegrityError, StoreError) as exc:
                if isinstance(exc, StoreUnavailable):
                    raise
                log.info("daily partition not made: rows of that day are in the default partition",
                         extra={"event": "partition_skipped", "partition": name, "reason": str(exc)})
        return made

    def purge(self, before_ms: int, chunk: int = 10000) -> dict[str, int]:
        """Drop the daily partitions wholly before ``before_ms`` (instant), then delete what is
        left by rows (the default partition, the other tables) as the SQLite store does."""
        dropped = 0
        for name, start in self._partitions():
            if start + DAY_MS > before_ms:
                break
            with transaction(self.connection()) as conn:  # type: ignore[arg-type]
                dropped += int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
                conn.execute(f"DELETE FROM device_messages d USING {name} m WHERE d.iccid = m.iccid"
                             " AND d.received_ms = m.received_ms AND d.seq = m.seq")
                conn.execute(f"DROP TABLE {name}")
            log.info("daily partition dropped", extra={"event": "partition_dropped", "partition": name})
        counts = super().purge(before_ms, chunk)
        if dropped:
            counts["messages"] += dropped
            if counts["messages"] == dropped:  # super() cleaned `latest` only when it deleted rows itself
                with transaction(self.connection()) as conn:  # type: ignore[arg-type]
                    conn.execute("DELETE FROM latest WHERE message_seq NOT IN (SELECT seq FROM messages)")
        self.ensure_partitions()
        return counts


def wait_for(url: str, timeout: float = 30.0) -> None:
    """Return once PostgreSQL at ``url`` accepts connections (raise StoreUnavailable after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            PgConnection(url).close()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
