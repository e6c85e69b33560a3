"""Device Inspector queries: message history pages, counts per interval, latest state.

**Order and paging.** History is returned in time order, ``(received_ms, seq)``. A query is a
snapshot: its first page fixes the *high-water mark*, the highest message sequence number
committed at that moment, and every page of the query only sees messages at or below it.
Sequence numbers are given out under the store's write lock and never reused, so every message
at or below the mark was already committed when the mark was read: paging by the key
``(received_ms, seq)`` of the last message returned gives every message of the snapshot exactly
once, in order, however many messages arrive (they are above the mark) and whatever the
retention purge removes meanwhile (it only removes). A new query sees the new messages.

Each page is one range scan of an index that holds ``(..., received_ms, seq)`` in order (seq is
the rowid, which SQLite keeps as the last column of every index): ``messages_by_protocol`` for
one protocol, ``messages_by_time`` otherwise. No sort, no OFFSET: the cost of a page does not
depend on how deep into the history it is.

**One device** is read from two places (migrations/0048_device_messages.sql): the table
``device_messages``, keyed ``(iccid, received_ms, seq)``, which holds every message up to the mark
``meta.device_messages_upto`` and is filled after the group commits (so no index on ``messages``
is written inside them), and the *tail* of ``messages`` above the mark, read as a range of seq
(a few seconds of traffic at most; sorted, it is small). The mark is read once per page, before
the page's statement: messages at or below it are in ``device_messages`` (a fill only adds
messages above it and moves it in the same transaction), messages above it are read from
``messages``, which holds every committed message. The two parts are disjoint and complete
whether or not a fill runs between the mark's read and the statement, and the statement merges
them in ``(received_ms, seq)`` order (a compound SELECT's merge, no sort of the indexed part), so
the snapshot and paging rules above hold unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    iccid: str | None
    protocol: str | None
    start_ms: int
    end_ms: int | None          # exclusive; None: up to the high-water mark
    high_water: int             # highest message seq the query sees
    after: tuple[int, int] | None = None  # (received_ms, seq) of the last message already returned
    newest_first: bool = False  # the console's order; the 1NCE API's is oldest first


@dataclass(frozen=True, slots=True)
class MessageRow:
    seq: int
    iccid: str
    protocol: str
    received_ms: int
    topic: str | None
    payload: bytes
    translated: str | None


def high_water_mark(store: Any) -> int:
    """The highest message sequence number ever committed (0 when none)."""
    return store.last_sequence("messages")


def _where(q: HistoryQuery, prefix: str = "") -> tuple[str, str, list[Any]]:
    """(index, conditions, arguments); ``prefix`` qualifies the columns (``d.``)."""
    p = prefix
    conditions: list[str] = []
    args: list[Any] = []
    if q.iccid is not None:
        index = "device_messages"
        conditions.append(f"{p}iccid = ?")
        args.append(q.iccid)
        if q.protocol is not None:
            conditions.append(f"+{p}protocol = ?")
            args.append(q.protocol)
    elif q.protocol is not None:
        index = "messages_by_protocol"
        conditions.append("protocol = ?")
        args.append(q.protocol)
    else:
        index = "messages_by_time"
    if q.newest_first:
        conditions.append(f"{p}received_ms >= ?")
        args.append(q.start_ms)
        if q.after is not None:
            # keyset paging backwards: strictly before the last row returned, in (received_ms, seq)
            end = q.after[0] + 1 if q.end_ms is None else min(q.end_ms, q.after[0] + 1)
            conditions.append(f"{p}received_ms < ?")
            args.append(end)
            conditions.append(f"({p}received_ms < ? OR {p}seq < ?)")
            args.extend(q.after)
        elif q.end_ms is not None:
            conditions.append(f"{p}received_ms < ?")
            args.append(q.end_ms)
    else:
        start = q.start_ms if q.after is None else max(q.start_ms, q.after[0])
        conditions.append(f"{p}received_ms >= ?")
        args.append(start)
        if q.end_ms is not None:
            conditions.append(f"{p}received_ms < ?")
            args.append(q.end_ms)
        if q.after is not None and q.after[0] >= q.start_ms:
            conditions.append(f"({p}received_ms > ? OR {p}seq > ?)")
            args.extend(q.after)
    return index, " AND ".join(conditions), args


COLUMNS = "seq, iccid, protocol, received_ms, topic, payload, translated"


def history_sql(q: HistoryQuery, limit: int, indexed_upto: int = 0) -> tuple[str, list[Any]]:
    """The statement of one page. For one device, ``indexed_upto`` is the device index's mark
    (``store.device_indexed_upto()``, read before the statement runs)."""
    order = "received_ms DESC, seq DESC" if q.newest_first else "received_ms, seq"
    if q.iccid is None:
        index, where, args = _where(q)
        sql = (f"SELECT {COLUMNS} FROM messages INDEXED BY {index} WHERE {where} AND seq <= ?"
               f" ORDER BY {order} LIMIT ?")
        return sql, [*args, q.high_water, limit]
    _, indexed_where, indexed_args = _where(q, "d.")
    _, tail_where, tail_args = _where(q)
    # CROSS JOIN: SQLite walks device_messages in key order and looks each message up by seq
    sql = (f"SELECT d.seq, d.iccid, d.protocol, d.received_ms, m.topic, m.payload, m.translated"
           f" FROM device_messages d CROSS JOIN messages m WHERE {indexed_where} AND d.seq <= ? AND m.seq = d.seq"
           f" UNION ALL SELECT {COLUMNS} FROM messages NOT INDEXED WHERE seq > ? AND seq <= ? AND {tail_where}"
           f" ORDER BY {order} LIMIT ?")
    return sql, [*indexed_args, min(q.high_water, indexed_upto), indexed_upto, q.high_water, *tail_args, limit]


def history_page(store: Any, q: HistoryQuery, limit: int) -> list[MessageRow]:
    """Up to ``limit`` messages of the query after ``q.after``, in (received_ms, seq) order."""
    sql, args = history_sql(q, limit, store.device_indexed_upto() if q.iccid is not None else 0)
    return [MessageRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6])
            for r in store.connection().execute(sql, args)]


def protocols(store: Any) -> list[str]:
    """The protocols that have messages (a skip-scan of messages_by_protocol)."""
    conn = store.connection()
    found: list[str] = []
    last = ""
    while True:
        row = conn.execute("SELECT protocol FROM messages INDEXED BY messages_by_protocol WHERE protocol > ?"
                           " ORDER BY protocol LIMIT 1", (last,)).fetchone()
        if row is None:
            return found
        last = row[0]
        found.append(last)


def insights(store: Any, *, iccid: str | None, protocol: str | None, start_ms: int, end_ms: int,
             bucket_ms: int, offset_ms: int) -> list[tuple[int, str, int]]:
    """(bucket start ms, protocol, count) for every bucket with messages, in time order.

    Buckets are ``bucket_ms`` long and aligned to midnight of the time zone ``offset_ms`` east of
    UTC (so ``1d`` buckets are the client's days). ``end_ms`` is exclusive.
    """
    conn = store.connection()
    bucket = "((received_ms + :offset) / :size) * :size - :offset"
    args: dict[str, Any] = {"offset": offset_ms, "size": bucket_ms, "start": start_ms, "end": end_ms}
    rows: list[tuple[int, str, int]] = []
    if iccid is not None:
        args["iccid"] = iccid
        args["upto"] = store.device_indexed_upto()  # see the module's docstring: two disjoint parts
        extra = ""
        if protocol is not None:
            extra = " AND protocol = :protocol"
            args["protocol"] = protocol
        where = f"iccid = :iccid AND received_ms >= :start AND received_ms < :end{extra}"
        sql = (f"SELECT {bucket} AS b, protocol, COUNT(*) FROM ("
               f"SELECT received_ms, protocol FROM device_messages WHERE {where} AND seq <= :upto"
               f" UNION ALL SELECT received_ms, protocol FROM messages NOT INDEXED WHERE seq > :upto AND {where}"
               ") AS u GROUP BY b, protocol ORDER BY b, protocol")
        rows = [(r[0], r[1], r[2]) for r in conn.execute(sql, args)]
        return rows
    wanted = [protocol] if protocol is not None else protocols(store)
    for name in wanted:
        args["protocol"] = name
        sql = (f"SELECT {bucket} AS b, COUNT(*) FROM messages INDEXED BY messages_by_protocol"
               " WHERE protocol = :protocol AND received_ms >= :start AND received_ms < :end GROUP BY b")
        rows.extend((r[0], name, r[1]) for r in conn.execute(sql, args))
    rows.sort()
    return rows


def latest_messages(store: Any, iccid: str, protocol: str | None = None) -> list[MessageRow]:
    """The latest message of a device per protocol (the ``latest`` table), by protocol name."""
    sql = ("SELECT m.seq, m.iccid, m.protocol, m.received_ms, m.topic, m.payload, m.translated"
           " FROM latest l JOIN messages m ON m.seq = l.message_seq WHERE l.iccid = ?")
    args: list[Any] = [iccid]
    if protocol is not None:
        sql += " AND l.protocol = ?"
        args.append(protocol)
    sql += " ORDER BY l.protocol"
    return [MessageRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6])
            for r in store.connection().execute(sql, args)]
