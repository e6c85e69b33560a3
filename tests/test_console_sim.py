"""The console's device page shows its SIM: status, connection (radclient as the mobile core),
data and SMS quotas with their expiry, usage per day (data and SMS) and the latest SMS."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from api_support import start_api
from conftest import sim
from console_support import ConsoleClient
from gateway.connectivity import quota
from gateway.sms.mt import build_mt
from inspector import sms as repo
from radius_support import attributes, needs_radclient, radclient, radius_config

pytestmark = needs_radclient
SIM = dataclasses.replace(sim(10), msisdn="491700000010")


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, radius_config(tmp_path), sims=[SIM, sim(11)])


@pytest.fixture
async def browser(api):
    client = ConsoleClient(f"http://127.0.0.1:{api.gateway.api_port}")
    yield client
    await client.close()


async def test_device_page_shows_sim_status_usage_quotas_and_sms(api, browser):
    gw = api.gateway
    await radclient(gw.radius_port, attributes("Start", SIM.imsi, "127.0.0.90", _3GPP_RAT_Type=8))
    await radclient(gw.radius_port, attributes("Interim-Update", SIM.imsi, "127.0.0.90",
                                               Acct_Input_Octets=1_500_000, Acct_Output_Octets=500_000))
    now = gw.connectivity.clock()
    new = build_mt(SIM, {"payload": "hello device"}, default_source="1", validity_hours=1, now_ms=now)
    await gw.committer.write(repo.queue_mt, gw.store, new, now,
                             quota.sms_charge(gw.connectivity.defaults, SIM.iccid, quota.MT, now))
    await browser.login()
    status, html, _ = await browser.get(f"/console/devices/{SIM.iccid}")
    assert status == 200
    card = html[html.index('<section class="card sim">'):html.index("<h2>Messages</h2>")]
    assert '<span class="state Enabled">Enabled</span>' in card
    assert '<span class="state ONLINE">online</span> <span class="mono">127.0.0.90</span> · NB-IoT' in card
    assert '<dd class="mono">491700000010</dd>' in card
    expiry = datetime.fromtimestamp((now + gw.connectivity.lifetime_ms) / 1000, timezone.utc).strftime("%Y-%m-%d")
    assert f"498 of 500 MB, expires {expiry}" in card
    assert f"249 of 250 SMS, expires {expiry}" in card
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert (f'<tr><td class="mono">{today}</td><td>2.000000</td><td>0.500000</td><td>1.500000</td><td>1</td>'
            "<td>0</td></tr>") in card
    assert "<td>MT</td><td>QUEUED</td>" in card and "<code>hello device</code>" in card
    # a SIM with nothing recorded: offline, full quotas, no usage, no SMS
    status, html, _ = await browser.get(f"/console/devices/{sim(11).iccid}")
    card = html[html.index('<section class="card sim">'):html.index("<h2>Messages</h2>")]
    assert '<span class="state OFFLINE">offline</span>' in card and "500 of 500 MB" in card
    assert "<p>No usage in the last 30 days.</p>" in card and "<p>No SMS.</p>" in card
