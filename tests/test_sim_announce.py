"""New SIMs are announced to integrations once (LIFECYCLE SIM_ADDED), whoever added them."""

from __future__ import annotations

import asyncio

from inspector import bindings
from inspector.sqlite import SqliteStore
from tests.conftest import make_config, sim, webhook


async def test_sims_added_before_and_while_running_are_announced_once(tmp_path, start_gateway, receiver, ca_file):
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file, event_types=["LIFECYCLE"])])
    config.connectivity.announce_new_sims = True
    gw = await start_gateway(config, [sim(10)])
    [first] = await receiver.wait_for(1)
    assert first["type"] == "LIFECYCLE" and first["lifecycle"] == {
        "type": "SIM_ADDED", "message": f"SIM {sim(10).iccid} was added to the gateway"}
    assert first["device"] == {"iccid": sim(10).iccid, "imsi": sim(10).imsi, "ip": "127.0.0.10"}
    # another process (the CLI) adds a SIM and changes the first one: only the new one is announced
    other = SqliteStore(tmp_path / "gateway.db", "normal")
    other.upsert_sims([sim(11), sim(10, status="Disabled")])
    got = await receiver.wait_for(2)
    assert [e["device"]["iccid"] for e in got] == [sim(10).iccid, sim(11).iccid]
    # asking again (as a second gateway process would at start-up) announces nothing again
    assert await gw.connectivity.announce_new_sims() == 0
    await asyncio.sleep(0.5)
    assert len(receiver.events) == 2


def test_a_sim_is_claimed_by_one_process_only(tmp_path):
    first, second = SqliteStore(tmp_path / "s.db", "normal"), SqliteStore(tmp_path / "s.db", "normal")
    first.upsert_sims([sim(12), sim(13)])
    assert [c[0] for c in first.write_with(bindings.claim_unannounced, 1)] == [sim(12).iccid, sim(13).iccid]
    assert second.write_with(bindings.claim_unannounced, 2) == []
