"""The quota's expiry date is enforced: the sweep (connectivity.expiry_check_seconds) blocks a SIM
whose lifetime ended (QUOTA_EXPIRED: uplinks refused, a Disconnect-Request to the NAS stand-in,
events), a top-up is then refused with 1NCE's 422, an extension (API or CLI) renews and unblocks.
radclient is the mobile core."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from gateway.cli import main as cli
from inspector import bindings as sql
from tests.api_support import start_api
from tests.test_api_connectivity import send_udp, stored_telemetry
from tests.conftest import sim
from tests.radius_support import attributes, needs_radclient, radclient, radius_config, sample, start_nas

pytestmark = needs_radclient

A, B = sim(10), sim(11)
DAY = 86_400_000


@pytest.fixture
async def nas():
    stand_in, port = await start_nas()
    yield stand_in, port
    stand_in.transport.close()


async def telemetry(gw, count: int) -> list[str]:
    return [e["payload"]["value"] for e in await stored_telemetry(gw, count)]


async def expire(gw, iccid: str, at_ms: int) -> None:
    """The lifetime ends: the SIM's quota rows expire at ``at_ms`` (as if it had been sold then)."""
    def write(conn) -> None:
        conn.execute("UPDATE sim_quotas SET expiry_ms = ? WHERE iccid = ?", (at_ms, iccid))
    await gw.committer.write(gw.store.write_with, write)


async def until(predicate, what: str, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)


async def kinds_of(client, iccid: str, until_first: str) -> list[str]:
    kinds: list[str] = []
    for _ in range(100):
        events = (await client.get(f"/v1/sims/{iccid}/events")).body["events"]
        kinds = [e["event_type"].split(":")[0] for e in events]
        if kinds and kinds[0] == until_first:
            return kinds
        await asyncio.sleep(0.05)
    return kinds


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d")


async def test_expiry_blocks_topup_refused_extension_renews(start_gateway, tmp_path, nas):
    stand_in, nas_port = nas
    config = radius_config(tmp_path, connectivity={"expiry_check_seconds": 0.2})
    config.radius.disconnect_port = nas_port
    api = await start_api(start_gateway, config, [A, B], roles=("Owner", "User"))
    gw = api.gateway
    owner = api.client("Owner")
    await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.81", Calling_Station_Id="4915112381"))
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.81", Acct_Input_Octets=1000))
    send_udp("127.0.0.81", gw.udp_port, b"before")
    assert await telemetry(gw, 1) == ["YmVmb3Jl"]
    await asyncio.sleep(0.5)  # sweeps ran: nothing has expired
    assert gw.registry.block_reason(A.iccid) is None and stand_in.requests == []

    now = gw.connectivity.clock()
    await expire(gw, A.iccid, now - DAY)
    await until(lambda: gw.registry.block_reason(A.iccid) == "QUOTA_EXPIRED", "not blocked after the expiry")
    assert gw.registry.enabled_sim_for_ip("127.0.0.81") is None
    assert gw.registry.refusal_for_ip("127.0.0.81") == "blocked_sim"
    await stand_in.wait(1)
    [request] = stand_in.requests
    assert request["Acct-Session-Id"] == ["sess-1"] and request["Framed-IP-Address"] == ["127.0.0.81"]
    kinds = await kinds_of(owner, A.iccid, "CONNECTION_RESET")
    assert kinds == ["CONNECTION_RESET", "SIM_BLOCKED", "QUOTA_EXPIRED", "SESSION_CREATED"]
    events = (await owner.get(f"/v1/sims/{A.iccid}/events")).body["events"]
    assert events[2]["event_type"] == f"QUOTA_EXPIRED: the quota expired on {day_of(now - DAY)}"
    assert events[0]["event_type"] == "CONNECTION_RESET: Disconnect-Request (QUOTA_EXPIRED): ACK"
    send_udp("127.0.0.81", gw.udp_port, b"refused")
    await asyncio.sleep(0.3)  # more sweeps: the SIM is blocked once, disconnected once
    assert await telemetry(gw, 2) == ["YmVmb3Jl"]
    assert sample(gw.metrics.quota_expired) == 1 and len(stand_in.requests) == 1
    assert gw.registry.block_reason(B.iccid) is None  # B has no quota row yet: its lifetime has not begun

    refused = await owner.post(f"/v1/sims/{A.iccid}/topup")
    assert refused.status == 422
    assert refused.body == {"statusCode": 422, "statusText": "Unprocessable Entity", "errors": [{"message": (
        "The following SIMs are expired and cannot be modified via API. Only extensions are permitted: "
        f"{A.iccid} (expired {day_of(now - DAY)}); extend them first (POST /v1/sims/extension, or nce-gateway "
        "sims extend). Nothing was topped up.")}]}
    both = await owner.post("/v1/sims/topup", json=[B.iccid, A.iccid])
    assert both.status == 422
    assert (await owner.get(f"/v1/sims/{B.iccid}/quota/data")).body["total_volume"] == 500  # all or nothing

    assert (await owner.post("/v1/sims/extension", json={"iccids": [A.iccid]})).status == 201
    assert gw.registry.block_reason(A.iccid) is None  # in force when the API answers
    assert gw.registry.enabled_sim_for_ip("127.0.0.81").iccid == A.iccid
    expiry = (await owner.get(f"/v1/sims/{A.iccid}/quota/data")).body["expiry_date"]
    renewed = datetime.fromisoformat(expiry.replace("Z", "+00:00")).timestamp() * 1000
    assert abs(renewed - (now + 3650 * DAY)) < 60_000  # a lifetime from now, not from the old date
    assert (await kinds_of(owner, A.iccid, "SIM_UNBLOCKED"))[:2] == ["SIM_UNBLOCKED", "QUOTA_EXTENDED"]
    send_udp("127.0.0.81", gw.udp_port, b"after")
    assert await telemetry(gw, 2) == ["YWZ0ZXI=", "YmVmb3Jl"]
    assert (await owner.post(f"/v1/sims/{A.iccid}/topup")).status == 201
    await asyncio.sleep(0.3)
    assert gw.registry.block_reason(A.iccid) is None  # the sweep leaves a renewed SIM alone


async def test_cli_topup_refused_then_extend_unblocks(start_gateway, tmp_path, capsys):
    config = radius_config(tmp_path, connectivity={"expiry_check_seconds": 0.1},
                           registry={"poll_interval_seconds": 60.0})
    api = await start_api(start_gateway, config, [A, B], roles=("User",))
    gw = api.gateway
    path = tmp_path / "g.toml"
    path.write_text(f'[store]\npath = "{config.store.path}"\n')
    cfg = ["--config", str(path)]
    assert await asyncio.to_thread(cli, ["sims", "topup", B.iccid, "--sms", "5", *cfg]) == 0
    assert capsys.readouterr().out.strip() == f"{B.iccid}: +500 MB, +5 SMS"
    status = (await api.client("User").get(f"/v1/sims/{B.iccid}/status")).body
    assert status == {"status": "OFFLINE", "services": []}  # a top-up is no report of the core
    quotas = gw.store.read_with(sql.quotas, B.iccid)
    assert (quotas[(B.iccid, "data")]["total"], quotas[(B.iccid, "sms")]["total"]) == (1_000_000_000, 255)
    expired_at = gw.connectivity.clock() - 2 * DAY
    await expire(gw, B.iccid, expired_at)
    await until(lambda: gw.registry.block_reason(B.iccid) == "QUOTA_EXPIRED", "B not blocked")

    assert await asyncio.to_thread(cli, ["sims", "topup", B.iccid, *cfg]) == 1
    err = capsys.readouterr().err
    assert (f"The following SIMs are expired and cannot be modified via API. Only extensions are permitted: "
            f"{B.iccid} (expired {day_of(expired_at)})") in err
    assert await asyncio.to_thread(cli, ["sims", "extend", B.iccid, *cfg]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{B.iccid}: lifetime extended to ") and out.endswith("; unblocked")
    # in force when the command returns (the control socket, not the 60 s poll)
    assert gw.registry.block_reason(B.iccid) is None
    await gw.committer.flush()
    kinds = [e["networkEvent"]["type"] for e in gw.store.events(event_type="NETWORK_EVENT")
             if e["device"]["iccid"] == B.iccid]
    assert kinds[:5] == ["SIM_UNBLOCKED", "QUOTA_EXTENDED", "SIM_BLOCKED", "QUOTA_EXPIRED", "QUOTA_TOPUP"]
    logged = [json.loads(p) for m, p in gw.store.connection().execute(
        "SELECT message, payload FROM admin_logs WHERE source = 'CLI' ORDER BY seq") if m.startswith("nce-gateway sims")]
    assert [(v.get("iccid"), v.get("sms")) for v in logged] == [(B.iccid, 5), ([B.iccid], None)]
    await asyncio.sleep(0.3)
    assert gw.registry.block_reason(B.iccid) is None
