"""Replay: put stored events of a time window back into one integration's outbox.

The events table holds every event's full JSON as it was first delivered, so nothing is
rebuilt: a replay inserts new outbox rows (``replayed = 1``) that point at the stored events,
and the outbox loader adds ``"replayed": true`` to the delivered JSON (the event keeps its
``id``, so a consumer can drop what it already has).

Order: the window is a snapshot (events up to the highest sequence number when the replay
starts; live events arriving meanwhile are not replayed), walked in sequence order, which is
each SIM's original order, and appended in chunks to the tail of the outbox. The worker
delivers each SIM's rows in outbox order, so a SIM's replayed events go out in their original
order, after the events that were already queued; live events committed during a replay land
between chunks and keep their order among themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .sqlite import mark_replayed, transaction

__all__ = ["ReplayRefused", "ReplayWindow", "window", "count", "replay", "replay_chunk", "first_seq", "mark_replayed"]

DAY_MS = 86_400_000
CHUNK = 2000


class ReplayRefused(Exception):
    """The replay cannot run as asked; the text says why."""


@dataclass(frozen=True)
class ReplayWindow:
    integration_id: int
    since_ms: int
    until_ms: int  # exclusive
    iccid: str | None
    event_types: tuple[str, ...]
    high_water: int  # highest event seq the replay sees


def window(store: Any, integration_id: int, *, since_ms: int, until_ms: int | None, now_ms: int,
           retention_days: float, iccid: str | None, event_types: Sequence[str]) -> ReplayWindow:
    """Check a replay request against retention and fix its snapshot."""
    oldest = now_ms - int(retention_days * DAY_MS)
    until = now_ms if until_ms is None else min(until_ms, now_ms)
    if since_ms < oldest:
        raise ReplayRefused(f"the window starts before the retention limit: events are kept {retention_days:g} "
                            f"days, so the oldest that can be replayed is from {_iso(oldest)} (asked: {_iso(since_ms)})")
    if until <= since_ms:
        raise ReplayRefused(f"the window is empty: until ({_iso(until)}) is not after since ({_iso(since_ms)})")
    if not event_types:
        raise ReplayRefused("none of the requested event types is delivered to this integration")
    return ReplayWindow(integration_id, since_ms, until, iccid, tuple(event_types), store.last_sequence("events"))


def _iso(ms: int) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _where(w: ReplayWindow) -> tuple[str, list[Any]]:
    sql = (f"created_ms >= ? AND created_ms < ? AND seq <= ? AND type IN ({', '.join('?' * len(w.event_types))})")
    args: list[Any] = [w.since_ms, w.until_ms, w.high_water, *w.event_types]
    if w.iccid is not None:
        sql += " AND iccid = ?"
        args.append(w.iccid)
    return sql, args


def count(store: Any, w: ReplayWindow) -> int:
    """How many events the replay will queue (for the progress bar)."""
    where, args = _where(w)
    return store.connection().execute(f"SELECT COUNT(*) FROM events INDEXED BY events_by_time WHERE {where}",
                                      args).fetchone()[0]


def replay_chunk(store: Any, w: ReplayWindow, after_seq: int, limit: int = CHUNK) -> tuple[int, int]:
    """Queue the next up to `limit` events after event seq `after_seq` in one transaction;
    returns (rows queued, last event seq looked at; -1 when the window is done)."""
    where, args = _where(w)
    conn = store.connection()
    with transaction(conn):
        rows = conn.execute(f"SELECT seq, iccid FROM events NOT INDEXED WHERE seq > ? AND {where} ORDER BY seq LIMIT ?",
                            [after_seq, *args, limit]).fetchall()
        conn.executemany("INSERT INTO outbox (integration_id, event_seq, iccid, replayed) VALUES (?, ?, ?, 1)",
                         [(w.integration_id, seq, iccid) for seq, iccid in rows])
    if len(rows) < limit:
        return len(rows), -1
    return len(rows), rows[-1][0]


def first_seq(store: Any, w: ReplayWindow) -> int | None:
    """The lowest event seq in the window (where the walk in seq order starts)."""
    return store.connection().execute(
        "SELECT MIN(seq) FROM events INDEXED BY events_by_time WHERE created_ms >= ? AND created_ms < ?",
        (w.since_ms, w.until_ms)).fetchone()[0]


def replay(store: Any, w: ReplayWindow, progress: Callable[[int], None] | None = None,
           chunk: int = CHUNK) -> int:
    """Queue the whole window, chunk by chunk (live traffic commits between chunks)."""
    first = first_seq(store, w)
    if first is None:
        return 0
    after, total = first - 1, 0
    while after >= 0:
        n, after = replay_chunk(store, w, after, chunk)
        total += n
        if progress is not None and n:
            progress(n)
    return total
