"""Energy Saver (BCL) savings per day, SIM and protocol (migration 0044, table ``bcl_savings``).

Counted in the commit path (:func:`add_savings`, called by the store's ``commit_in`` inside the
batch's transaction): a message the gateway translated from a compact payload into JSON saved
``len(JSON) - len(payload)`` bytes on the radio link. One upsert per (day, SIM, protocol) per
batch keeps the cost to a dictionary update per message. Portable SQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

SAVED_PROTOCOLS = ("UDP", "COAP")


def add_savings(conn: Any, messages: Iterable[tuple]) -> None:
    """Count the translated UDP/CoAP messages of a commit batch (rows as inserted into
    ``messages``: seq, iccid, protocol, received_ms, topic, payload, translated, ...), one upsert
    per (day, SIM, protocol), inside the commit's transaction."""
    sums: dict[tuple[str, str, str], list[int]] = {}
    for row in messages:
        translated = row[6]
        if translated is None or row[2] not in SAVED_PROTOCOLS:
            continue
        day = time.strftime("%Y-%m-%d", time.gmtime(row[3] / 1000))
        acc = sums.setdefault((day, row[1], row[2]), [0, 0, 0])
        acc[0] += 1
        acc[1] += len(row[5])
        acc[2] += len(translated.encode("utf-8")) if not translated.isascii() else len(translated)
    if sums:
        conn.executemany(
            "INSERT INTO bcl_savings (day, iccid, protocol, messages, bytes_in, bytes_out) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (day, iccid, protocol) DO UPDATE SET messages = bcl_savings.messages + excluded.messages,"
            " bytes_in = bcl_savings.bytes_in + excluded.bytes_in,"
            " bytes_out = bcl_savings.bytes_out + excluded.bytes_out",
            [(*key, *acc) for key, acc in sums.items()])


def savings(store: Any, first_day: str, last_day: str, protocol: str | None = None,
            iccid: str | None = None) -> tuple[int, int, int]:
    """(messages, bytes received, bytes of decoded JSON) from ``first_day`` to ``last_day`` inclusive."""
    where, args = "day >= ? AND day <= ?", [first_day, last_day]
    if protocol is not None:
        where += " AND protocol = ?"
        args.append(protocol)
    if iccid is not None:
        where += " AND iccid = ?"
        args.append(iccid)
    row = store.connection().execute(
        f"SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(bytes_in), 0), COALESCE(SUM(bytes_out), 0)"
        f" FROM bcl_savings WHERE {where}", args).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def savings_per_day(store: Any, first_day: str, last_day: str) -> list[tuple[str, int, int, int]]:
    return [tuple(r) for r in store.connection().execute(
        "SELECT day, SUM(messages), SUM(bytes_in), SUM(bytes_out) FROM bcl_savings WHERE day >= ? AND day <= ?"
        " GROUP BY day ORDER BY day", (first_day, last_day)).fetchall()]




def purge(store: Any, before_ms: int) -> int:
    """Delete the days that ended before ``before_ms`` (the retention period)."""
    from .sqlite import transaction  # here: inspector.sqlite imports this module

    day = time.strftime("%Y-%m-%d", time.gmtime(before_ms / 1000))
    with transaction(store.connection()) as conn:
        return conn.execute("DELETE FROM bcl_savings WHERE day < ?", (day,)).rowcount
