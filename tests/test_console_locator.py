"""The console's Locator page over HTTP: latest positions and geofences from the API, adding a
circle (a bad one shows the API's message) and deleting a geofence."""

from __future__ import annotations

import pytest

from api_support import start_api
from conftest import make_config, sim
from console_support import ConsoleClient
from inspector.records import Pending, PositionRecord

DEVICE, OTHER = sim(10), sim(11)


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), sims=[DEVICE, OTHER])


@pytest.fixture
async def browser(api):
    client = ConsoleClient(f"http://127.0.0.1:{api.gateway.api_port}")
    yield client
    await client.close()


async def test_locator_page_lists_positions_and_manages_circles(api, browser):
    gw = api.gateway
    gw.committer.submit(Pending(None, [], None, [
        PositionRecord(DEVICE.iccid, 1_700_000_000_000, "GPS", "UDP", 52.52, 13.405),
        PositionRecord(DEVICE.iccid, 1_700_000_060_000, "CellTower", "RADIUS", 52.53, 13.41, 800.0,
                       '{"radio":"LTE"}'),
        PositionRecord(OTHER.iccid, 1_700_000_030_000, "GPS", "UDP", 48.1, 11.5)]))
    await gw.committer.flush()
    await browser.login("User")
    status, html, _ = await browser.get("/console/locator")
    assert status == 200
    rows = html[html.index('<table class="positions">'):html.index("</table>")]
    assert rows.count("<tr>") == 3  # the header and each device's latest position, newest first
    newest, other = rows.split("<tr>")[2:]
    assert (f'<a href="/console/devices/{DEVICE.iccid}">{DEVICE.iccid}</a>' in newest and "CellTower" in newest
            and '<td class="num">800.0</td>' in newest and "<td>RADIUS</td>" in newest)
    assert (OTHER.iccid in other and "<td>GPS</td>" in other and '<td class="num">48.1</td>' in other
            and '<td class="num"></td>' in other and "<td>UDP</td>" in other)
    assert "No geofences yet." in html
    status, html, _ = await browser.post("/console/locator/geofences", {
        "name": "depot", "lat": "52.52", "lon": "13.405", "radius": "500", "deviceId": ""})
    assert status == 200 and "geofence depot added" in html
    assert "<td>depot</td>" in html and "circle, 500.0 m around 52.52, 13.405" in html
    status, html, _ = await browser.post("/console/locator/geofences", {
        "name": "tiny", "lat": "52.52", "lon": "13.405", "radius": "5", "deviceId": ""})
    assert '<p class="flash error" role="alert">radius 5 m is outside 50..30000 m</p>' in html
    assert "<td>tiny</td>" not in html
    (fence,) = [f.row for f in gw.locator.fences]
    status, html, _ = await browser.post(f"/console/locator/geofences/{fence.id}/delete", {})
    assert status == 200 and "geofence deleted" in html and "No geofences yet." in html
