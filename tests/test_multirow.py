"""inspector.multirow: the multi-row INSERT the group commit uses, on a real SQLite."""

from __future__ import annotations

import sqlite3

import pytest

from inspector import multirow


class Counting:
    """A real sqlite3 connection that counts the statements executed through it."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
        self.sql: list[str] = []

    def execute(self, sql: str, params: list) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self.conn.execute(sql, params)


def test_statement_text():
    assert multirow.statement("INSERT INTO t (a, b)", 2, 3) == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
    assert multirow.statement("INSERT INTO t (a)", 1, 1) == "INSERT INTO t (a) VALUES (?)"


def test_statement_rejects_empty_shapes():
    with pytest.raises(ValueError, match="at least one column and one row, not 0 x 3"):
        multirow.statement("INSERT INTO t (a)", 0, 3)
    with pytest.raises(ValueError, match="not 2 x 0"):
        multirow.statement("INSERT INTO t (a, b)", 2, 0)


def test_chunk_rows_stays_under_the_parameter_limit():
    assert multirow.chunk_rows(9) == 111  # 999 parameters
    assert multirow.chunk_rows(3) == 333
    assert multirow.chunk_rows(2000) == 1  # wider than the limit: one row at a time
    assert multirow.chunk_rows(3, limit=10) == 3


def test_rows_are_stored_in_order_with_their_values():
    db = Counting()
    rows = [(i, f"r{i}", bytes([i % 256])) for i in range(1000)]
    assert multirow.insert(db, "INSERT INTO t (a, b, c)", rows) == 4  # 333 + 333 + 333 + 1
    assert db.sql[0].count("(?, ?, ?)") == 333
    assert db.sql[3] == "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"
    assert db.conn.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == rows


def test_a_small_limit_splits_into_more_statements():
    db = Counting()
    rows = [(1, "x", None), (2, None, b""), (3, "z", b"\x00")]
    assert multirow.insert(db, "INSERT INTO t (a, b, c)", rows, limit=6) == 2
    assert db.sql == ["INSERT INTO t (a, b, c) VALUES (?, ?, ?), (?, ?, ?)", "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"]
    assert db.conn.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == rows


def test_no_rows_runs_no_statement():
    db = Counting()
    assert multirow.insert(db, "INSERT INTO t (a, b, c)", []) == 0
    assert db.sql == []


def test_rows_of_different_lengths_are_refused_before_anything_is_written():
    db = Counting()
    with pytest.raises(ValueError, match="rows of different lengths"):
        multirow.insert(db, "INSERT INTO t (a, b, c)", [(1, "a", b""), (2, "b")])
    assert db.sql == []
    assert db.conn.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)


def test_a_constraint_failure_raises_like_executemany():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE u (k INTEGER PRIMARY KEY)")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: u.k"):
        multirow.insert(conn, "INSERT INTO u (k)", [(1,), (2,), (1,)])


def test_group_commit_stores_a_batch_larger_than_one_statement(tmp_path):
    """SqliteStore.commit writes messages, events and outbox rows with multi-row INSERTs: 250
    uplinks span three statements per table (111 rows of 9 message columns each) and come back
    exactly, in order, with consecutive sequence numbers."""
    from inspector.records import EventRecord, MessageRecord, Pending
    from inspector.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "s.db")
    batch = [Pending(MessageRecord(f"8988280670{i % 7:09d}", "COAP", 1_000 + i, bytes([i % 256]) * 3, "t/a",
                                   None, None, f"e{i}"),
                     [EventRecord(f"e{i}", "TELEMETRY_DATA", f"8988280670{i % 7:09d}", 1_000 + i, f"body{i}",
                                  (1, 2) if i % 2 else ())])
             for i in range(250)]
    store.commit(batch)
    store.commit(batch[:3])  # the next commit continues the sequences
    conn = store.connection()
    messages = conn.execute("SELECT seq, iccid, received_ms, payload, event_id FROM messages ORDER BY seq").fetchall()
    assert len(messages) == 253
    assert messages[0] == (1, "8988280670000000000", 1_000, b"\x00\x00\x00", "e0")
    assert messages[249] == (250, "8988280670000000004", 1_249, b"\xf9\xf9\xf9", "e249")
    assert messages[252] == (253, "8988280670000000002", 1_002, b"\x02\x02\x02", "e2")
    assert [m[0] for m in messages] == list(range(1, 254))
    events = conn.execute("SELECT seq, id, body FROM events ORDER BY seq").fetchall()
    assert events[:2] == [(1, "e0", "body0"), (2, "e1", "body1")] and events[-1] == (253, "e2", "body2")
    outbox = conn.execute("SELECT integration_id, event_seq FROM outbox ORDER BY seq").fetchall()
    # odd uplinks go to integrations 1 and 2: 125 of the first commit, 1 of the second
    assert len(outbox) == 252
    assert outbox[:4] == [(1, 2), (2, 2), (1, 4), (2, 4)] and outbox[-2:] == [(1, 252), (2, 252)]
    assert conn.execute("SELECT protocol, message_seq FROM latest WHERE iccid = '8988280670000000002'"
                        ).fetchall() == [("COAP", 253)]


def test_an_upsert_tail_ends_every_statement():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE latest (k TEXT PRIMARY KEY, v INTEGER)")
    conn.execute("INSERT INTO latest VALUES ('a', 1), ('b', 2)")
    tail = "ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    assert multirow.statement("INSERT INTO latest (k, v)", 2, 2, tail) == (
        "INSERT INTO latest (k, v) VALUES (?, ?), (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v")
    assert multirow.insert(conn, "INSERT INTO latest (k, v)", [("b", 20), ("c", 30), ("d", 40)], tail=tail,
                           limit=4) == 2
    assert conn.execute("SELECT k, v FROM latest ORDER BY k").fetchall() == [("a", 1), ("b", 20), ("c", 30),
                                                                             ("d", 40)]
