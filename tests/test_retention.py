"""History is kept retention_days; older messages, events and their outbox rows are purged."""

from __future__ import annotations

import time

from inspector import cells
from inspector.records import EventRecord, MessageRecord, Pending, PositionRecord
from inspector.sqlite import SqliteStore


def test_purge_removes_only_old_rows(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    now = int(time.time() * 1000)
    day = 86_400_000
    batch = []
    for age_days, name in ((8, "old"), (6.9, "recent"), (0, "new")):
        t = now - int(age_days * day)
        batch.append(Pending(MessageRecord("8988280666000000010", "UDP", t, name.encode()),
                             [EventRecord(f"e-{name}", "TELEMETRY_DATA", "8988280666000000010", t, "{}", (1,))],
                             positions=[PositionRecord("8988280666000000010", t, "GPS", "UDP", 52.5, 13.4),
                                        PositionRecord("8988280666000000010", t, "CellTower", "RADIUS", 52.5, 13.4,
                                                       300.0, "{}")]))
    store.commit(batch)
    for age_days in (8, 0):
        store.write_with(cells.add_miss, "8988280666000000010", now - age_days * day, "RADIUS", "{}")
    counts = store.purge(now - 7 * day, chunk=1)
    assert counts == {"messages": 1, "events": 1, "outbox": 1, "positions": 2, "admin_logs": 0, "cell_misses": 1}
    assert len(store.positions("8988280666000000010")) == 4
    assert [m["payload"] for m in store.messages()] == [b"new", b"recent"]
    assert [o.event_seq for o in store.load_outbox(1, 0, 10)] == [2, 3]
    assert store.latest("8988280666000000010") == {"UDP": 3}
    store.commit([Pending(MessageRecord("8988280666000000010", "UDP", now, b"after"), [])])
    assert store.messages()[0]["seq"] == 4  # sequence numbers are never reused
