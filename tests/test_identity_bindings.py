"""The SIM directory: static addresses, RADIUS bindings, which one wins, and another process
following the bindings through the store."""

from __future__ import annotations

from pathlib import Path

from gateway.identity import SimRegistry
from inspector import bindings
from inspector.records import BindingRow, Pending
from inspector.sqlite import SqliteStore

from conftest import sim


def directory(tmp_path: Path) -> tuple[SqliteStore, SimRegistry]:
    store = SqliteStore(tmp_path / "gw.db", "normal")
    store.upsert_sims([sim(10), sim(11), sim(12, status="Disabled")])
    registry = SimRegistry(store)
    registry.reload()
    return store, registry


def iccid_at(registry: SimRegistry, ip: str) -> str | None:
    found = registry.sim_for_ip(ip)
    return found.iccid if found else None


def test_static_addresses_and_lookups(tmp_path: Path) -> None:
    _, reg = directory(tmp_path)
    assert iccid_at(reg, "127.0.0.10") == sim(10).iccid
    assert reg.enabled_sim_for_ip("127.0.0.12") is None
    assert reg.refusal_for_ip("127.0.0.12") == "disabled_sim"
    assert reg.refusal_for_ip("127.0.0.99") == "unknown_sim"
    assert reg.sim_for_imsi(sim(11).imsi) == sim(11)
    assert len(reg) == 3 and sim(10).iccid in reg


def test_radius_binding_wins_and_moves(tmp_path: Path) -> None:
    _, reg = directory(tmp_path)
    lost: list[set[str]] = []
    reg.on_access_lost(lost.append)
    a, b = sim(10).iccid, sim(11).iccid
    reg.bind(a, "10.0.0.1")
    # the session's address names SIM a, its static address no longer does
    assert iccid_at(reg, "10.0.0.1") == a
    assert reg.sim_for_ip("127.0.0.10") is None
    assert reg.sim_for_iccid(a).ip_address == "10.0.0.1"  # events take this address
    # the address is handed to SIM b: it moves, a keeps no binding
    reg.bind(b, "10.0.0.1")
    assert iccid_at(reg, "10.0.0.1") == b
    assert reg.bound_address(a) is None
    assert lost == [{a}]
    assert iccid_at(reg, "127.0.0.10") == a  # a without session: its static address again
    assert reg.sim_for_ip("127.0.0.11") is None  # b has a session
    # a RADIUS address equal to another SIM's static address names the bound SIM
    reg.bind(b, "127.0.0.10")
    assert iccid_at(reg, "127.0.0.10") == b
    assert reg.sim_for_ip("10.0.0.1") is None
    reg.bind(b, None)
    assert iccid_at(reg, "127.0.0.10") == a
    assert iccid_at(reg, "127.0.0.11") == b
    assert reg.sim_for_iccid(b).ip_address == "127.0.0.11"


def test_block_refuses_like_disabled(tmp_path: Path) -> None:
    _, reg = directory(tmp_path)
    a = sim(10).iccid
    reg.block(a, "quota")
    assert reg.enabled_sim_for_ip("127.0.0.10") is None
    assert reg.enabled_sim_for_iccid(a) is None
    assert reg.refusal_for_ip("127.0.0.10") == "blocked_sim"
    reg.block(a, None)
    assert reg.enabled_sim_for_ip("127.0.0.10") == sim(10)


def test_master_reload_keeps_bindings(tmp_path: Path) -> None:
    store, reg = directory(tmp_path)
    reg.bind(sim(10).iccid, "10.0.0.5")
    store.update_sim(sim(10).iccid, label="renamed")
    reg.reload()
    assert reg.sim_for_ip("10.0.0.5").label == "renamed"
    assert reg.sim_for_ip("127.0.0.10") is None


def test_store_keeps_address_unique_and_another_process_follows(tmp_path: Path) -> None:
    store, reg = directory(tmp_path)
    a, b = sim(10).iccid, sim(11).iccid
    store.commit([Pending(None, bindings=[BindingRow(a, "10.0.0.1", session_id="s1", updated_ms=1)])])
    other = SimRegistry(SqliteStore(tmp_path / "gw.db", "normal"))  # a second process
    other.reload()
    other.load_bindings()
    assert iccid_at(other, "10.0.0.1") == a
    store.commit([Pending(None, bindings=[BindingRow(b, "10.0.0.1", session_id="s2", updated_ms=2)])])
    assert other.follow_bindings() == 2  # b's row and a's (it lost the address)
    assert iccid_at(other, "10.0.0.1") == b
    assert other.bound_address(a) is None
    assert bindings.get(store.connection(), a).ip_address is None
    assert other.bindings_seq == store.read_with(bindings.version) == 3
    assert other.follow_bindings() == 0


def test_usage_and_quota_grow_with_deltas(tmp_path: Path) -> None:
    store, _ = directory(tmp_path)
    a = sim(10).iccid
    row = BindingRow(a, "10.0.0.1", updated_ms=5, rx_delta=100, tx_delta=20, usage_day="2026-12-02",
                     quota_total=500_000_000, quota_expiry_ms=99)
    store.commit([Pending(None, bindings=[row])])
    row2 = BindingRow(a, "10.0.0.1", updated_ms=6, rx_delta=1, tx_delta=2, usage_day="2026-12-02",
                      quota_total=500_000_000, quota_expiry_ms=99)
    store.commit([Pending(None, bindings=[row2])])
    assert store.read_with(bindings.daily_usage, a, "2026-12-01", "2026-12-03") == [("2026-12-02", 101, 22)]
    q = store.read_with(bindings.quotas, a)[(a, "data")]
    assert (q["total"], q["used"], q["expiry_ms"]) == (500_000_000, 123, 99)
