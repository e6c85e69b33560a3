"""SIM connectivity through the management API, fed by radclient as the mobile core; blocks take
effect as refused uplinks and a Disconnect-Request to a NAS stand-in (pyrad). Every answer is
checked against the gateway's OpenAPI document (tests/api_support.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from inspector.records import Sim
from tests.api_support import start_api
from tests.conftest import sim
from tests.radius_support import attributes, needs_radclient, radclient, radius_config, start_nas

pytestmark = needs_radclient

A, B = sim(10), sim(11)
LOCKED = Sim(iccid="8988280660000000012", imsi="901405100000012", ip_address="127.0.0.12", imei="356678091234560",
             imei_lock=True)


@pytest.fixture
async def nas():
    stand_in, port = await start_nas()
    yield stand_in, port
    stand_in.transport.close()


async def api_with_radius(start_gateway, tmp_path, nas_port, **connectivity):
    config = radius_config(tmp_path, connectivity=connectivity)
    config.radius.disconnect_port = nas_port
    return await start_api(start_gateway, config, [A, B, LOCKED], roles=("Owner", "User"))


def send_udp(source: str, port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.sendto(payload, ("127.0.0.1", port))


async def stored_telemetry(gw, count: int) -> list[dict]:
    for _ in range(100):
        await gw.committer.flush()
        found = gw.store.events(event_type="TELEMETRY_DATA")
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    return gw.store.events(event_type="TELEMETRY_DATA")


async def test_status_connectivity_info_events_usage(start_gateway, tmp_path, nas):
    api = await api_with_radius(start_gateway, tmp_path, nas[1])
    client = api.client("User")
    off = await client.get(f"/v1/sims/{A.iccid}/status")
    assert off.status == 200 and off.body == {"status": "OFFLINE", "services": []}
    info = await client.get(f"/v1/sims/{A.iccid}/connectivity_info")
    assert info.body["subscriber_info"] == {"success": False, "state": "no_location_reported"}
    port = api.gateway.radius_port
    await radclient(port, attributes("Start", A.imsi, "127.0.0.70", _3GPP_IMEISV="3566780912345601",
                                     _3GPP_RAT_Type=9, _3GPP_User_Location_Info="0x0032f4030921b8e8",
                                     Called_Station_Id="iot.1nce.net"))
    await radclient(port, attributes("Interim-Update", A.imsi, "127.0.0.70", Acct_Input_Octets=1_500_000,
                                     Acct_Output_Octets=500_000))
    on = (await client.get(f"/v1/sims/{A.iccid}/status")).body
    assert on["status"] == "ONLINE" and on["services"] == ["GPRS"]
    pdp = on["pdp_context"]
    assert (pdp["ue_ip_address"], pdp["imeisv"], pdp["rat_type"], pdp["mcc"], pdp["mnc"], pdp["lac"], pdp["ci"],
            pdp["pdp_context_id"]) == ("127.0.0.70", "3566780912345601", {"rat_type_id": "9", "description": "4G"}, "234", "30", "2337", "47336",
                                       "sess-1")
    info = (await client.get(f"/v1/sims/{A.iccid}/connectivity_info")).body
    assert info["subscriber_info"]["location"]["cell_global_id"] == {"mcc": "234", "mnc": "30", "lac": 2337,
                                                                     "cid": 47336}
    events = await client.get(f"/v1/sims/{A.iccid}/events", params={"pageSize": 10})
    kinds = [e["event_type"].split(":")[0] for e in events.body["events"]]
    assert kinds == ["LOCATION_UPDATED", "SESSION_CREATED"]  # newest first
    assert events.body["totalEvents"] == 2 and events.headers["X-Total-Count"] == "2"
    assert events.body["events"][1]["imei"] == "35667809123456"
    usage = (await client.get(f"/v1/sims/{A.iccid}/usage")).body["stats"]
    assert len(usage) == 1
    assert (usage[0]["data"]["volume"], usage[0]["data"]["volume_rx"], usage[0]["data"]["volume_tx"]) == (
        "2.000000", "0.500000", "1.500000")
    quota = (await client.get(f"/v1/sims/{A.iccid}/quota/data")).body
    assert (quota["volume"], quota["total_volume"], quota["threshold_percentage"]) == (498.0, 500.0, 20)
    sms = (await client.get(f"/v1/sims/{A.iccid}/quota/sms")).body
    assert (sms["volume"], sms["total_volume"]) == (250, 250)
    missing = await client.get("/v1/sims/8988280669999999999/status")
    assert missing.status == 404


async def test_quota_exhaustion_blocks_disconnects_and_topup_unblocks(start_gateway, tmp_path, nas):
    stand_in, nas_port = nas
    api = await api_with_radius(start_gateway, tmp_path, nas_port, data_quota_mb=0.001)  # 1000 bytes
    gw = api.gateway
    port = gw.radius_port
    await radclient(port, attributes("Start", A.imsi, "127.0.0.71", Calling_Station_Id="4915112345"))
    send_udp("127.0.0.71", gw.udp_port, b"before")
    assert len(await stored_telemetry(gw, 1)) == 1
    await radclient(port, attributes("Interim-Update", A.imsi, "127.0.0.71", Acct_Input_Octets=900,
                                     Acct_Output_Octets=200))
    # answered: the block is in force
    assert gw.registry.enabled_sim_for_ip("127.0.0.71") is None
    assert gw.registry.refusal_for_ip("127.0.0.71") == "blocked_sim"
    send_udp("127.0.0.71", gw.udp_port, b"refused")
    await stand_in.wait(1)
    [request] = stand_in.requests
    assert request["Acct-Session-Id"] == ["sess-1"] and request["Framed-IP-Address"] == ["127.0.0.71"]
    assert request["Calling-Station-Id"] == ["4915112345"] and request["User-Name"] == [A.imsi]
    await asyncio.sleep(0.1)
    assert len(await stored_telemetry(gw, 2)) == 1
    assert gw.metrics.rejected.labels("UDP", "blocked_sim")._value.get() == 1
    owner = api.client("Owner")
    events = (await owner.get(f"/v1/sims/{A.iccid}/events")).body["events"]
    kinds = [e["event_type"].split(":")[0] for e in events]
    for _ in range(50):
        if "CONNECTION_RESET" in kinds:
            break
        await asyncio.sleep(0.05)
        events = (await owner.get(f"/v1/sims/{A.iccid}/events")).body["events"]
        kinds = [e["event_type"].split(":")[0] for e in events]
    assert kinds == ["CONNECTION_RESET", "SIM_BLOCKED", "QUOTA_EXHAUSTED", "SESSION_CREATED"]
    assert events[0]["event_type"] == "CONNECTION_RESET: Disconnect-Request (DATA_QUOTA_EXHAUSTED): ACK"
    assert events[1]["alert"] is True
    quota = (await owner.get(f"/v1/sims/{A.iccid}/quota/data")).body
    assert quota["volume"] == 0 and quota["total_volume"] == 0.001
    # only Owner and Admin buy
    assert (await api.client("User").post(f"/v1/sims/{A.iccid}/topup")).status == 403
    topup = await owner.post(f"/v1/sims/{A.iccid}/topup")
    assert topup.status == 201 and topup.headers["Location"].endswith(f"/v1/sims/{A.iccid}/quota/data")
    assert gw.registry.enabled_sim_for_ip("127.0.0.71").iccid == A.iccid
    send_udp("127.0.0.71", gw.udp_port, b"after")
    assert [e["payload"]["value"] for e in await stored_telemetry(gw, 2)] == ["YWZ0ZXI=", "YmVmb3Jl"]
    quota = (await owner.get(f"/v1/sims/{A.iccid}/quota/data")).body
    assert (quota["total_volume"], quota["volume"], quota["last_volume_added"]) == (0.002, 0.0009, 0.001)


async def test_imei_lock_blocks_another_device(start_gateway, tmp_path, nas):
    stand_in, nas_port = nas
    api = await api_with_radius(start_gateway, tmp_path, nas_port)
    gw = api.gateway
    await radclient(gw.radius_port, attributes("Start", LOCKED.imsi, "127.0.0.72", _3GPP_IMEISV="3566780912345601"))
    assert gw.registry.enabled_sim_for_ip("127.0.0.72").iccid == LOCKED.iccid
    await radclient(gw.radius_port, attributes("Interim-Update", LOCKED.imsi, "127.0.0.72",
                                               _3GPP_IMEISV="3520990017614823"))
    assert gw.registry.block_reason(LOCKED.iccid) == "IMEI_LOCK"
    assert gw.registry.enabled_sim_for_ip("127.0.0.72") is None
    await stand_in.wait(1)
    kinds = [e["networkEvent"]["type"] for e in reversed(gw.store.events(event_type="NETWORK_EVENT"))]
    assert kinds[:4] == ["SESSION_CREATED", "IMEI_CHANGED", "IMEI_LOCK_VIOLATED", "SIM_BLOCKED"]
    # the locked device comes back: the block no longer holds
    await radclient(gw.radius_port, attributes("Start", LOCKED.imsi, "127.0.0.72", session="s2",
                                               _3GPP_IMEISV="3566780912345601"))
    assert gw.registry.block_reason(LOCKED.iccid) is None
    assert gw.registry.enabled_sim_for_ip("127.0.0.72").iccid == LOCKED.iccid
    # blocked again; the owner takes the lock off through the API: unblocked at once
    await radclient(gw.radius_port, attributes("Interim-Update", LOCKED.imsi, "127.0.0.72", session="s2",
                                               _3GPP_IMEISV="3520990017614823"))
    assert gw.registry.block_reason(LOCKED.iccid) == "IMEI_LOCK"
    unlock = await api.client("Owner").put(f"/v1/sims/{LOCKED.iccid}",
                                           json={"iccid": LOCKED.iccid, "status": "Enabled", "imei_lock": False})
    assert unlock.status == 200
    assert gw.registry.block_reason(LOCKED.iccid) is None
    assert gw.registry.enabled_sim_for_ip("127.0.0.72").iccid == LOCKED.iccid
    await gw.committer.flush()
    kinds = [e["networkEvent"]["type"] for e in reversed(gw.store.events(event_type="NETWORK_EVENT"))]
    assert kinds[-1] == "SIM_UNBLOCKED"


async def test_reset_sends_disconnect_and_records_the_answer(start_gateway, tmp_path, nas):
    stand_in, nas_port = nas
    api = await api_with_radius(start_gateway, tmp_path, nas_port)
    gw = api.gateway
    client = api.client("User")
    no_session = await client.post(f"/v1/sims/{B.iccid}/reset")
    assert no_session.status == 201
    await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.73"))
    stand_in.answer = stand_in.rp.DisconnectNAK
    assert (await client.post(f"/v1/sims/{A.iccid}/reset")).status == 201
    await stand_in.wait(1)
    from inspector import bindings
    for _ in range(50):
        rows = gw.store.read_with(bindings.resets, A.iccid)
        if rows and rows[0]["state"] != "QUEUED":
            break
        await asyncio.sleep(0.05)
    assert [(r["reason"], r["state"]) for r in rows] == [("API_RESET", "NAK")]
    assert [(r["reason"], r["state"]) for r in gw.store.read_with(bindings.resets, B.iccid)] == [
        ("API_RESET", "NO_SESSION")]
    assert gw.metrics.disconnects.labels("NAK")._value.get() == 1


async def test_limits_auto_topup_extension(start_gateway, tmp_path, nas):
    api = await api_with_radius(start_gateway, tmp_path, nas[1], data_quota_mb=0.001)
    owner, user = api.client("Owner"), api.client("User")
    assert (await user.get("/v1/sims/limits")).body == {}
    options = (await user.get("/v1/sims/data/limits")).body
    assert options[0] == {"id": 1, "limit": "1", "unit": "MB"} and len(options) == 7
    assert (await user.get("/v1/sims/smsMO/limits")).body[-1] == {"id": 6, "limit": "250", "unit": "SMS"}
    assert (await owner.post("/v1/sims/limits", json={"dataLimitId": 99})).status == 400
    assert (await owner.post("/v1/sims/limits", json={"dataLimitId": 2, "smsMtLimitId": 1})).status == 201
    assert (await user.get("/v1/sims/limits")).body == {"data": {"id": 2, "limit": "5", "unit": "MB"},
                                                         "smsMt": {"id": 1, "limit": "5", "unit": "SMS"}}
    # automatic top-up: below 20 % left, one more quota is added and the SIM is not blocked
    assert (await owner.post("/v1/sims/autoTopup", json={"enabled": True, "iccids": [A.iccid]})).status == 201
    gw = api.gateway
    await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.74"))
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.74", Acct_Input_Octets=900))
    assert gw.registry.enabled_sim_for_ip("127.0.0.74") is not None
    for _ in range(50):
        quota = (await user.get(f"/v1/sims/{A.iccid}/quota/data")).body
        if quota["total_volume"] == 0.002:
            break
        await asyncio.sleep(0.05)
    assert (quota["total_volume"], quota["volume"]) == (0.002, 0.0011)
    before = (await user.get(f"/v1/sims/{B.iccid}/quota/sms")).body
    assert (await owner.post("/v1/sims/extension", json={"iccids": [B.iccid]})).status == 201
    after = (await user.get(f"/v1/sims/{B.iccid}/quota/sms")).body
    assert "expiry_date" not in before and after["expiry_date"][:4] > "2040"
    assert (await owner.post("/v1/sims/topup", json=[B.iccid, "8988280669999999999"])).status == 404
