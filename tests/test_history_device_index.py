"""The per-device message index filled after the commits (migrations/0048_device_messages.sql):
a history query of one device sees every committed message of that device, whether the fill
has run or not, across a fill in the middle of its paging, and after a kill (the next start
resumes the fill from the mark). Both backends.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from inspector import history
from inspector.committer import GroupCommitter
from inspector.records import MessageRecord, Pending
from inspector.store import open_store
from inspector.store.interfaces import Store
from tests.test_store_contract import store, store_url  # noqa: F401 - the backends' fixtures

DAY_MS = 86_400_000
NOW = 1_796_000_000_000
DEVICES = [f"898828066600000{n:05d}" for n in range(4)]
PROTOCOLS = ("UDP", "COAP")


def commit(store: Store, rng: random.Random, n: int, base_ms: int = NOW) -> None:
    """``n`` messages of random devices and protocols; received_ms out of seq order on purpose
    (and equal times), as clocks of real devices are."""
    store.commit([Pending(message=MessageRecord(iccid=rng.choice(DEVICES), protocol=rng.choice(PROTOCOLS),
                                                received_ms=base_ms + rng.randrange(0, 50), payload=b"x"))
                  for _ in range(n)])


def everything(store: Store) -> list[tuple[int, str, str, int]]:
    """(seq, iccid, protocol, received_ms) of every stored message: what the index must give."""
    return [(m["seq"], m["iccid"], m["protocol"], m["received_ms"]) for m in store.messages(limit=1_000_000)]


def expected(store: Store, iccid: str, protocol: str | None, high_water: int, newest_first: bool,
             start: int = 0, end: int | None = None) -> list[int]:
    rows = [r for r in everything(store) if r[1] == iccid and r[0] <= high_water
            and (protocol is None or r[2] == protocol) and r[3] >= start and (end is None or r[3] < end)]
    rows.sort(key=lambda r: (r[3], r[0]), reverse=newest_first)
    return [r[0] for r in rows]


def walk(store: Store, q: history.HistoryQuery, size: int, between: object = None) -> list[int]:
    """Every page of ``q``, calling ``between()`` after each page (a fill, new commits)."""
    seqs: list[int] = []
    while True:
        page = history.history_page(store, q, size + 1)
        seqs += [r.seq for r in page[:size]]
        if len(page) <= size:
            return seqs
        q = history.HistoryQuery(q.iccid, q.protocol, q.start_ms, q.end_ms, q.high_water,
                                 (page[size - 1].received_ms, page[size - 1].seq), q.newest_first)
        if callable(between):
            between()


def unindexed(store: Store) -> int:
    return store.last_sequence("messages") - store.device_indexed_upto()


@pytest.mark.parametrize("newest_first", [False, True])
def test_history_of_a_device_sees_every_commit_with_or_without_the_fill(store: Store, newest_first: bool) -> None:
    rng = random.Random(1)
    commit(store, rng, 120)
    store.fill_device_index()
    commit(store, rng, 80)  # not indexed yet: read from the tail of messages
    assert unindexed(store) == 80
    for stage in ("tail", "indexed"):
        high = history.high_water_mark(store)
        for iccid in DEVICES:
            for protocol in (None, *PROTOCOLS):
                q = history.HistoryQuery(iccid, protocol, NOW, None, high, newest_first=newest_first)
                want = expected(store, iccid, protocol, high, newest_first)
                assert want and walk(store, q, 7) == want, (stage, iccid, protocol)
                window = history.HistoryQuery(iccid, protocol, NOW + 10, NOW + 30, high, newest_first=newest_first)
                assert walk(store, window, 5) == expected(store, iccid, protocol, high, newest_first, NOW + 10, NOW + 30)
        store.fill_device_index()
        assert unindexed(store) == 0


def test_insights_of_a_device_count_the_tail_too(store: Store) -> None:
    rng = random.Random(2)
    commit(store, rng, 60)
    store.fill_device_index()
    commit(store, rng, 40)

    def counts() -> list[tuple[int, str, int]]:
        return history.insights(store, iccid=DEVICES[0], protocol=None, start_ms=NOW, end_ms=NOW + 50,
                                bucket_ms=10, offset_ms=0)

    want: dict[tuple[int, str], int] = {}
    for _, iccid, protocol, ms in everything(store):
        if iccid == DEVICES[0]:
            want[(ms - ms % 10, protocol)] = want.get((ms - ms % 10, protocol), 0) + 1
    before = counts()
    assert before == [(b, p, n) for (b, p), n in sorted(want.items())]
    store.fill_device_index()
    assert counts() == before
    only = history.insights(store, iccid=DEVICES[0], protocol="UDP", start_ms=NOW, end_ms=NOW + 50,
                            bucket_ms=10, offset_ms=0)
    assert only == [row for row in before if row[1] == "UDP"]


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_fill_in_the_middle_of_paging_changes_nothing(store: Store, newest_first: bool) -> None:
    rng = random.Random(3)
    commit(store, rng, 50)
    store.fill_device_index()
    commit(store, rng, 150)  # most of the snapshot is in the tail when the query starts
    high = history.high_water_mark(store)
    want = {iccid: expected(store, iccid, None, high, newest_first) for iccid in DEVICES}

    def fill_and_commit_more() -> None:
        commit(store, rng, 15)  # above the snapshot's mark: must not appear
        store.fill_device_index()

    for iccid in DEVICES:
        q = history.HistoryQuery(iccid, None, NOW, None, high, newest_first=newest_first)
        assert walk(store, q, 4, fill_and_commit_more) == want[iccid]


def test_a_fill_between_reading_the_mark_and_the_page_changes_nothing(store: Store) -> None:
    """The mark is read before the page's statement; a fill in between moves rows from the
    tail's range into device_messages, above the mark the page uses: no row twice, none lost."""
    rng = random.Random(4)
    commit(store, rng, 100)
    high = history.high_water_mark(store)
    q = history.HistoryQuery(DEVICES[1], None, NOW, None, high)
    stale = store.device_indexed_upto()
    store.fill_device_index()
    sql, args = history.history_sql(q, 1000, stale)
    assert [r[0] for r in store.connection().execute(sql, args)] == expected(store, DEVICES[1], None, high, False)


def test_the_fill_is_sorted_idempotent_and_resumes_in_chunks(store: Store) -> None:
    rng = random.Random(5)
    commit(store, rng, 95)
    assert store.fill_device_index(chunk=20) == 95
    assert store.fill_device_index() == 0
    rows = store.connection().execute("SELECT seq FROM device_messages ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [r[0] for r in reversed(everything(store))]


def test_a_fill_that_fails_midway_leaves_the_mark_and_the_next_one_completes(store: Store,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(6)
    commit(store, rng, 30)
    original = store.last_sequence

    def failing(name: str) -> int:
        monkeypatch.setattr(store, "last_sequence", original)
        raise RuntimeError("killed")

    monkeypatch.setattr(store, "last_sequence", failing)
    with pytest.raises(RuntimeError):
        store.fill_device_index()
    assert store.device_indexed_upto() == 0
    assert store.fill_device_index() == 30


def test_a_killed_process_loses_no_index_entries(store_url: str, tmp_path: Path) -> None:
    """A process commits messages and is killed (SIGKILL) before any fill: the next open of the
    store indexes them, and a history query sees them before and after."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from inspector.records import MessageRecord, Pending
        from inspector.store import open_store
        store = open_store(sys.argv[1], "full")
        store.commit([Pending(message=MessageRecord(iccid={DEVICES[0]!r}, protocol="UDP", received_ms={NOW} + i,
                                                    payload=b"k")) for i in range(40)])
        assert store.device_indexed_upto() == 0
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", script, store_url], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == -signal.SIGKILL and "committed" in done.stdout, done.stderr
    store = open_store(store_url, "normal")
    try:
        assert store.device_indexed_upto() == 40
        assert store.connection().execute("SELECT count(*) FROM device_messages").fetchone()[0] == 40
        q = history.HistoryQuery(DEVICES[0], None, NOW, None, history.high_water_mark(store))
        assert walk(store, q, 6) == list(range(1, 41))
    finally:
        store.close()


def test_purge_removes_index_entries_with_their_messages(store: Store) -> None:
    rng = random.Random(7)
    commit(store, rng, 40, base_ms=NOW - 3 * DAY_MS)
    store.fill_device_index()
    commit(store, rng, 10, base_ms=NOW - 3 * DAY_MS)  # purged before ever being indexed
    commit(store, rng, 20)
    assert store.purge(NOW - DAY_MS)["messages"] == 50
    assert store.connection().execute(
        "SELECT count(*) FROM device_messages WHERE received_ms < ?", (NOW - DAY_MS,)).fetchone()[0] == 0
    store.fill_device_index()
    assert store.connection().execute("SELECT count(*) FROM device_messages").fetchone()[0] == 20
    for iccid in DEVICES:
        q = history.HistoryQuery(iccid, None, 0, None, history.high_water_mark(store))
        assert walk(store, q, 3) == expected(store, iccid, None, q.high_water, False)


@pytest.mark.postgresql
def test_postgresql_dropped_partitions_take_their_index_entries() -> None:
    import pg_support
    from inspector.store.postgres import PostgresStore

    store = PostgresStore(pg_support.fresh_database())
    old = NOW - 5 * DAY_MS
    store.ensure_partitions(at_ms=old)
    rng = random.Random(8)
    commit(store, rng, 12, base_ms=old)
    commit(store, rng, 3)
    store.fill_device_index()
    day = "messages_p" + datetime.fromtimestamp(old / 1000, timezone.utc).strftime("%Y%m%d")
    assert store.connection().execute(f"SELECT count(*) FROM {day}").fetchone()[0] == 12
    assert store.purge(NOW - 2 * DAY_MS)["messages"] == 12
    assert store.connection().execute("SELECT count(*) FROM device_messages").fetchone()[0] == 3
    store.close()


def test_the_group_committer_fills_after_its_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspector.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "DEVICE_FILL_SECONDS", 0.0)
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}", "normal")

    async def run() -> None:
        committer = GroupCommitter(store)
        committer.start()
        for i in range(25):
            committer.submit(Pending(message=MessageRecord(iccid=DEVICES[2], protocol="UDP", received_ms=NOW + i,
                                                           payload=b"c")))
        await committer.flush()
        assert store.device_indexed_upto() == 25
        monkeypatch.setattr(sqlite_store, "DEVICE_FILL_SECONDS", 3600.0)
        committer.submit(Pending(message=MessageRecord(iccid=DEVICES[2], protocol="UDP", received_ms=NOW + 99,
                                                       payload=b"c")))
        await committer.flush()
        assert store.device_indexed_upto() == 25  # not due yet
        await committer.stop()  # a stopping gateway leaves no tail
        assert store.device_indexed_upto() == 26

    asyncio.run(run())
    store.close()
