"""Multi-row INSERT: many rows per statement instead of one statement step per row.

``executemany`` runs the prepared statement once per row (bind, step, reset): for the group
commit's thousands of message, event and outbox rows that per-row overhead showed in the
writer thread's profile. One ``INSERT ... VALUES (...), (...), ...`` per chunk of rows does the
same work in fewer statement executions. The SQL text for a given chunk size is built once and
cached, so the sqlite3 module's statement cache reuses the prepared full-chunk statement; the
remainder (fewer rows) varies from batch to batch and may be prepared again, once per commit.

Multi-row VALUES is standard SQL (PostgreSQL has it too). The chunk keeps the number of bound
parameters under SQLite's historical limit of 999 host parameters, whatever the SQLite build.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

MAX_PARAMETERS = 999  # SQLITE_MAX_VARIABLE_NUMBER before 3.32; newer builds allow more


@lru_cache(maxsize=256)
def statement(head: str, columns: int, rows: int, tail: str = "") -> str:
    """``head`` (``INSERT INTO t (a, b)``) followed by ``rows`` groups of ``columns`` placeholders,
    then ``tail`` (e.g. an ``ON CONFLICT ... DO UPDATE`` clause)."""
    if columns < 1 or rows < 1:
        raise ValueError(f"a multi-row INSERT needs at least one column and one row, not {columns} x {rows}")
    group = "(" + ", ".join("?" * columns) + ")"
    return f"{head} VALUES " + ", ".join(itertools.repeat(group, rows)) + (f" {tail}" if tail else "")


def chunk_rows(columns: int, limit: int = MAX_PARAMETERS) -> int:
    """How many rows of ``columns`` values fit in one statement."""
    return max(1, limit // columns)


def insert(conn: Any, head: str, rows: Sequence[Sequence[Any]], *, tail: str = "",
           limit: int = MAX_PARAMETERS) -> int:
    """Insert ``rows`` (tuples of equal length) with as few statements as the parameter limit
    allows; returns the number of statements run. ``conn`` is a DB-API connection with
    ``execute`` (the caller holds the transaction). ``tail`` ends every statement; an upsert
    must not list the same key twice in one call (PostgreSQL refuses that, SQLite would apply
    both in order)."""
    if not rows:
        return 0
    columns = len(rows[0])
    per = chunk_rows(columns, limit)
    flat = list(itertools.chain.from_iterable(rows))
    if len(flat) != columns * len(rows):
        raise ValueError(f"rows of different lengths for {head!r}")
    step = per * columns
    statements = 0
    for start in range(0, len(flat), step):
        part = flat[start:start + step]
        conn.execute(statement(head, columns, len(part) // columns, tail), part)
        statements += 1
    return statements
