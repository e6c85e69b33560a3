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
