"""``nce-gateway sims status|usage|events|topup|imei-lock`` beside a running gateway fed by radclient."""

from __future__ import annotations

import asyncio
import json

from gateway.cli import main as cli
from tests.conftest import sim
from tests.radius_support import attributes, needs_radclient, radclient, radius_config

pytestmark = needs_radclient
A = sim(10)


async def test_cli_status_usage_events_topup_and_imei_lock(tmp_path, start_gateway, capsys):
    config = radius_config(tmp_path, connectivity={"data_quota_mb": 0.001})
    path = tmp_path / "g.toml"
    path.write_text(f'[store]\npath = "{config.store.path}"\n[connectivity]\ndata_quota_mb = 0.001\n')
    cfg = ["--config", str(path)]
    gw = await start_gateway(config, [A])
    await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.60", _3GPP_IMEISV="3566780912345601",
                                               _3GPP_RAT_Type=8))
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.60", Acct_Input_Octets=700,
                                               Acct_Output_Octets=400))
    assert gw.registry.block_reason(A.iccid) == "DATA_QUOTA_EXHAUSTED"
    capsys.readouterr()

    assert cli(["sims", "status", A.iccid, "--json", *cfg]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {k: status[k] for k in ("online", "address", "address_source", "rat", "imei", "blocked", "data_left_mb")} \
        == {"online": True, "address": "127.0.0.60", "address_source": "radius", "rat": "NB-IoT",
            "imei": "3566780912345601", "blocked": "DATA_QUOTA_EXHAUSTED", "data_left_mb": 0.0}

    assert cli(["sims", "usage", A.iccid, *cfg]) == 0
    out = capsys.readouterr().out
    assert "0.000400" in out and "0.000700" in out and "0.001100" in out and "1 day(s) with traffic" in out

    assert cli(["sims", "events", A.iccid, *cfg]) == 0
    out = capsys.readouterr().out
    for kind in ("SESSION_CREATED", "QUOTA_EXHAUSTED", "SIM_BLOCKED"):
        assert kind in out
    # CONNECTION_RESET follows once the Disconnect-Request timed out (no NAS listens here)
    assert "3 of 3 network event(s)" in out or ("4 of 4 network event(s)" in out and "TIMEOUT" in out)

    assert await asyncio.to_thread(cli, ["sims", "topup", A.iccid, *cfg]) == 0
    assert capsys.readouterr().out.strip() == f"{A.iccid}: +0.001 MB, +250 SMS; unblocked"
    for _ in range(50):  # the gateway follows the store
        if gw.registry.enabled_sim_for_ip("127.0.0.60") is not None:
            break
        await asyncio.sleep(0.05)
    assert gw.registry.block_reason(A.iccid) is None
    # the gateway knows the new quota too: the next report does not block again
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.60", Acct_Input_Octets=750,
                                               Acct_Output_Octets=400))
    assert gw.registry.enabled_sim_for_ip("127.0.0.60") is not None

    assert await asyncio.to_thread(cli, ["sims", "imei-lock", A.iccid, *cfg]) == 0
    assert capsys.readouterr().out.strip() == f"{A.iccid}: locked to IMEI 35667809123456"
    for _ in range(50):
        if gw.registry.sim_for_iccid(A.iccid).imei_lock:
            break
        await asyncio.sleep(0.05)
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.60",
                                               _3GPP_IMEISV="3520990017614823", Acct_Input_Octets=750,
                                               Acct_Output_Octets=400))
    assert gw.registry.block_reason(A.iccid) == "IMEI_LOCK"
    assert await asyncio.to_thread(cli, ["sims", "imei-lock", A.iccid, "--off", *cfg]) == 0
    assert capsys.readouterr().out.strip() == f"{A.iccid}: IMEI lock off; unblocked"
    for _ in range(50):
        if gw.registry.block_reason(A.iccid) is None:
            break
        await asyncio.sleep(0.05)
    assert gw.registry.enabled_sim_for_ip("127.0.0.60") is not None
    assert await asyncio.to_thread(cli, ["sims", "imei-lock", "8988280669999999999", *cfg]) == 1
