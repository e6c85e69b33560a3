"""One contract suite for every store backend (inspector/store/interfaces.py): SQLite and
PostgreSQL (a server of our own, see tests/pg_support.py) must answer the same, exactly.

Run the PostgreSQL half alone with ``make test-pg``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector import accounts, history
from inspector.records import EventRecord, MessageRecord, Pending, Sim
from inspector.store import StoreError, open_store
from inspector.store.interfaces import Store
from inspector.store.sqlite import transaction

DAY_MS = 86_400_000
NOW = 1_796_000_000_000  # a fixed "now" (2026-11-29) so day boundaries are known


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    import pg_support
    return pg_support.fresh_database()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, "normal")
    yield s
    s.close()


def sim(n: int) -> Sim:
    return Sim(iccid=f"8988280666000000{n:04d}", imsi=f"90140510000{n:04d}", ip_address=f"10.0.{n // 256}.{n % 256}",
               label=f"sim-{n}")


def uplink(n: int, iccid: str, received_ms: int, routes: tuple[int, ...] = ()) -> Pending:
    return Pending(
        message=MessageRecord(iccid=iccid, protocol="udp", received_ms=received_ms, payload=bytes([n % 256]) * 3,
                              event_id=f"ev-{n}"),
        events=[EventRecord(event_id=f"ev-{n}", type="TELEMETRY_DATA", iccid=iccid, created_ms=received_ms,
                            body=f'{{"n":{n}}}', routes=routes)])


def test_backend_satisfies_the_store_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_sequence_numbers_are_consecutive_and_never_reused_after_a_purge(store: Store) -> None:
    store.commit([uplink(i, sim(1).iccid, NOW - 3 * DAY_MS + i) for i in range(5)])
    assert store.last_sequence("messages") == 5
    assert store.last_sequence("events") == 5
    assert [m["seq"] for m in store.messages()] == [5, 4, 3, 2, 1]
    assert store.purge(NOW)["messages"] == 5
    assert store.messages() == []
    store.commit([uplink(9, sim(1).iccid, NOW)])
    assert [(m["seq"], m["payload"]) for m in store.messages()] == [(6, b"\t\t\t")]
    assert [e["n"] for e in store.events()] == [9]
    assert store.latest(sim(1).iccid) == {"udp": 6}


def test_a_batch_is_all_or_nothing(store: Store) -> None:
    def boom(conn: object) -> None:
        raise RuntimeError("refused")

    bad = uplink(1, sim(1).iccid, NOW)
    bad.extra = boom
    with pytest.raises(RuntimeError):
        store.commit([uplink(0, sim(1).iccid, NOW), bad])
    assert store.messages() == [] and store.events() == []
    assert store.last_sequence("messages") == 0


def test_snapshots_see_every_number_at_or_below_the_mark(store_url: str) -> None:
    """Four writers commit at once; whenever a reader sees mark N, all N messages are visible
    (history snapshots and replay windows rely on it)."""
    writers = [open_store(store_url, "normal") for _ in range(4)]
    reader = open_store(store_url, "normal")
    stop = threading.Event()
    errors: list[str] = []

    def write(s: Store, w: int) -> None:
        for i in range(25):
            s.commit([uplink(w * 1000 + i, sim(w).iccid, NOW + i) for _ in range(3)])

    def read() -> None:
        while not stop.is_set():
            mark = history.high_water_mark(reader)
            seen = reader.connection().execute("SELECT COUNT(*) FROM messages WHERE seq <= ?", (mark,)).fetchone()[0]
            if seen != mark:
                errors.append(f"mark {mark} but {seen} visible")

    threads = [threading.Thread(target=write, args=(s, w)) for w, s in enumerate(writers)]
    watcher = threading.Thread(target=read)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert reader.last_sequence("messages") == 300
    assert sorted(m["seq"] for m in reader.messages(limit=1000)) == list(range(1, 301))
    for s in (*writers, reader):
        s.close()


def test_outbox_keeps_commit_order_and_records_attempts(store: Store) -> None:
    integration = store.upsert_integration(uuid="u-1", name="hook", kind="webhook", origin="api",
                                           config={"url": "https://example.test/"}, state="ACTIVE")
    store.commit([uplink(i, sim(i % 2).iccid, NOW + i, routes=(integration,)) for i in range(6)])
    rows = store.load_outbox(integration, 0, 100)
    assert [r.body for r in rows] == [f'{{"n":{i}}}' for i in range(6)]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert store.outbox_depth(integration) == 6
    store.finish_outbox([rows[0].seq, rows[1].seq], [(rows[2].seq, 3, NOW + 60_000)])
    left = store.load_outbox(integration, rows[1].seq, 100)
    assert [(r.body, r.attempts, r.next_attempt_ms) for r in left[:2]] == [('{"n":2}', 3, NOW + 60_000),
                                                                            ('{"n":3}', 0, 0)]
    assert store.load_outbox(integration, rows[3].seq, 1)[0].body == '{"n":4}'
    # a restart resets attempts; a worker of the earlier round can no longer overwrite them
    store.set_integration_state(integration, "ACTIVE", reset_attempts=True)
    store.finish_outbox([], [(rows[2].seq, 7, NOW)], restarts=0)
    assert store.load_outbox(integration, rows[1].seq, 1)[0].attempts == 0
    store.delete_integration(integration)
    assert store.outbox_depth(integration) == 0


def test_integration_names_are_unique_even_when_created_at_once(store_url: str) -> None:
    stores = [open_store(store_url, "normal") for _ in range(6)]
    ids: list[int] = []
    barrier = threading.Barrier(len(stores))

    def create(s: Store, n: int) -> None:
        barrier.wait()
        ids.append(s.upsert_integration(uuid=f"u-{n}", name="same", kind="webhook", origin="api",
                                        config={"n": n}, state="ACTIVE"))

    threads = [threading.Thread(target=create, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed = stores[0].list_integrations()
    assert len(listed) == 1 and set(ids) == {listed[0]["id"]}
    for s in stores:
        s.close()


def test_sims_upsert_by_iccid_and_refuse_a_shared_address(store: Store) -> None:
    version = store.sims_version()
    assert store.upsert_sims([sim(1), sim(2)]) == 2
    assert store.sims_version() > version
    assert store.upsert_sims([Sim(iccid=sim(1).iccid, imsi="1", ip_address="10.9.9.9", label="moved")]) == 1
    assert store.get_sim(sim(1).iccid) == Sim(iccid=sim(1).iccid, imsi="1", ip_address="10.9.9.9", label="moved")
    with pytest.raises(StoreError, match="SIM import refused"):
        store.upsert_sims([sim(3), Sim(iccid=sim(4).iccid, imsi="4", ip_address=sim(2).ip_address)])
    assert [s.iccid for s in store.all_sims()] == [sim(1).iccid, sim(2).iccid]  # all or none
    assert store.update_sim(sim(2).iccid, status="Disabled", imei_lock=True) == Sim(
        iccid=sim(2).iccid, imsi=sim(2).imsi, ip_address=sim(2).ip_address, label="sim-2", status="Disabled",
        imei_lock=True)
    assert store.update_sim("nope", label="x") is None
    with pytest.raises(StoreError, match="unknown SIM field"):
        store.update_sim(sim(2).iccid, colour="red")


def test_psk_rotation_keeps_the_previous_key_for_the_grace_period(store: Store) -> None:
    store.set_psk(sim(1).iccid, "coaps", b"k" * 16, True, created_ms=NOW)
    store.set_psk(sim(1).iccid, "coaps", b"n" * 16, True, created_ms=NOW + 1, grace_ms=1000)
    assert [(i, p, k, u) for i, p, k, u, _ in store.all_psks()] == [(sim(1).iccid, "coaps", b"n" * 16, True)]
    assert store.previous_psks() == [(sim(1).iccid, b"k" * 16, NOW + 1001)]


def test_templates_and_accounts_through_the_repositories(store: Store) -> None:
    row = {"id": "t1", "name": "T", "template": "{}", "protocols": ["udp"], "status": "ACTIVE",
           "created_ms": NOW, "updated_ms": NOW}
    store.save_template(row)
    assert store.all_templates() == [row]
    assert store.delete_template("t1") is True and store.delete_template("t1") is False
    created = accounts.create_account(store, "Ops@Example.com", "hash", "Admin")
    assert (created.username, created.role) == ("ops@example.com", "Admin")
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.create_account(store, "ops@example.com", "hash", "Admin")
    accounts.revoke_token(store, "jti-1", created.id, NOW * 10)
    accounts.revoke_token(store, "jti-1", created.id, NOW * 10)  # INSERT OR IGNORE on both
    assert accounts.revoked_tokens(store) == frozenset({"jti-1"})


def test_history_pages_are_the_same_on_every_backend(store: Store) -> None:
    store.commit([uplink(i, sim(i % 2).iccid, NOW + i // 2) for i in range(10)])
    q = history.HistoryQuery(iccid=sim(0).iccid, protocol="udp", start_ms=NOW, end_ms=None,
                             high_water=history.high_water_mark(store))
    page = history.history_page(store, q, 3)
    assert [(r.seq, r.received_ms) for r in page] == [(1, NOW), (3, NOW + 1), (5, NOW + 2)]
    nxt = history.HistoryQuery(**{**{f: getattr(q, f) for f in q.__dataclass_fields__},
                                  "after": (page[-1].received_ms, page[-1].seq)})
    assert [r.seq for r in history.history_page(store, nxt, 3)] == [7, 9]
    assert history.protocols(store) == ["udp"]


@pytest.mark.postgresql
def test_postgresql_retention_drops_whole_days() -> None:
    import pg_support
    from inspector.store.postgres import PostgresStore

    store = PostgresStore(pg_support.fresh_database())
    old = NOW - 5 * DAY_MS
    made = store.ensure_partitions(at_ms=old)
    assert len(made) == store.partition_days_ahead + 1
    store.commit([uplink(i, sim(1).iccid, old + i) for i in range(4)] + [uplink(9, sim(1).iccid, NOW)])
    day = "messages_p" + datetime.fromtimestamp(old / 1000, timezone.utc).strftime("%Y%m%d")
    assert [name for name, _ in store._partitions()][0] == day
    rows = store.connection().execute(f"SELECT count(*) FROM {day}").fetchone()[0]
    assert rows == 4  # the old messages sit in their day's partition
    counts = store.purge(NOW - 2 * DAY_MS)
    assert counts["messages"] == 4
    assert day not in [name for name, _ in store._partitions()]
    assert [m["seq"] for m in store.messages()] == [5]
    assert store.latest(sim(1).iccid) == {"udp": 5}
    store.close()


def test_a_bad_url_is_refused_with_the_reason() -> None:
    with pytest.raises(StoreError, match="neither sqlite:///path nor postgresql://"):
        open_store("mysql://localhost/x")


@pytest.mark.postgresql
def test_postgresql_restart_refuses_commits_while_down_and_recovers_by_itself() -> None:
    """Nothing is acknowledged that is not committed: while the server is down a commit raises
    StoreUnavailable; once it is back the same store object commits again, numbering going on."""
    import pg_support
    from inspector.store import StoreUnavailable

    store = open_store(pg_support.fresh_database())
    store.commit([uplink(1, sim(1).iccid, NOW)])
    done = threading.Event()

    def restart() -> None:
        pg_support.server_down_and_up(down=1.0)
        done.set()

    threading.Thread(target=restart).start()
    refused = 0
    while not done.is_set():
        try:
            store.commit([uplink(2, sim(1).iccid, NOW)])
        except StoreUnavailable:
            refused += 1
    assert refused > 0
    committed = store.last_sequence("messages")
    store.commit([uplink(3, sim(1).iccid, NOW)])
    assert store.last_sequence("messages") == committed + 1
    assert len(store.messages()) == committed + 1  # every number given out is a committed message
    store.close()


def test_a_store_migrated_by_a_newer_gateway_is_refused(store_url: str) -> None:
    store = open_store(store_url, "normal")
    with transaction(store.connection()) as conn:
        conn.execute("INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)", ("9999_future", NOW))
    store.close()
    with pytest.raises(StoreError, match="schema migration\\(s\\) 9999_future that this gateway does not know"):
        open_store(store_url, "normal")
