"""Device Locator (issue 14): the cell table import, cell positions from RADIUS (radclient as the
mobile core) and from LwM2M object 4 (the project's LwM2M client), geofence CRUD and validation,
and ENTER/EXIT events that respect the accuracy and do not flap. API answers are checked against
the gateway's OpenAPI document (tests/api_support.py)."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3

import pytest

from firmware_examples.lwm2m_client import LwM2MClient, default_objects
from gateway.cli import main as cli
from gateway.locator.geometry import INSIDE, OUTSIDE, circle, polygon
from gateway.locator.service import CellSeen, Locator
from inspector.records import PositionRecord
from tests.api_support import start_api
from tests.conftest import make_config, sim, webhook
from tests.radius_support import attributes, needs_radclient, radclient, radius_config

HEADER = "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
CENTER = (13.4050, 52.5200)  # [lon, lat] of the test geofence (1000 m circle)
# cells: inside with a small range, on the border with a large range, far outside with a small range
CELLS = {
    "inside": ("LTE", 262, 1, 4660, 1001, 13.4050, 52.5200, 300),
    "border": ("LTE", 262, 1, 4660, 1002, 13.4050, 52.5290, 400),   # ~1000 m north, 400 m range
    "outside": ("LTE", 262, 1, 4660, 1003, 13.4050, 52.5500, 300),  # ~3300 m north
    "gsm": ("GSM", 234, 30, 2337, 47336, -0.1276, 51.5072, 1500),
}
DEVICE = sim(20)


def cell_csv(*names: str, header: bool = True) -> str:
    rows = [f"{r},{mcc},{net},{area},{cell},0,{lon},{lat},{rng},12,1,1459813819,1459813819,0\n"
            for r, mcc, net, area, cell, lon, lat, rng in (CELLS[n] for n in names)]
    return (HEADER if header else "") + "".join(rows)


def ecgi(cell: int, tac: int = 4660) -> str:
    """A TAI+ECGI User-Location-Info for MCC 262, MNC 01 (BCD 62 f2 10)."""
    return "0x82" + "62f210" + f"{tac:04x}" + "62f210" + f"{cell:08x}"


def import_cells(tmp_path, text: str, config: str, name: str = "cells.csv", gz: bool = False) -> int:
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return cli(["cells", "import", str(path), "--config", config])


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "gateway.db"}"\n')
    return str(path)


# the cell table ------------------------------------------------------------------------------

def test_import_good_bad_and_gzip_rows_idempotent(tmp_path, config_file, capsys):
    assert import_cells(tmp_path, cell_csv("inside", "border", "gsm"), config_file) == 0
    err = capsys.readouterr().err
    assert err.endswith("cells.csv: 3 row(s), 3 cell(s) imported, 0 bad row(s) skipped\n")
    bad = (cell_csv("outside", header=False)
           + "LTE,262,1,4660,x,0,13.4,52.5,300,1,1,1,1,0\n"        # line 2: cell not a number
           + "WIFI,262,1,4660,7,0,13.4,52.5,300,1,1,1,1,0\n"       # line 3: radio
           + "LTE,262,1,4660,8,0,13.4,95.0,300,1,1,1,1,0\n"        # line 4: latitude
           + "LTE,262,1\n")                                         # line 5: too few columns
    assert import_cells(tmp_path, bad, config_file, "bad.csv", gz=True) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["  line 2: cell 'x' is not an integer",
                   "  line 3: radio 'WIFI' is not one of GSM, UMTS, CDMA, LTE, NR",
                   "  line 4: lat 95.0 is out of range -90..90",
                   "  line 5: 3 columns, expected 14",
                   f"{tmp_path / 'bad.csv.gz'}: 5 row(s), 1 cell(s) imported, 4 bad row(s) skipped"]
    # the same file again changes nothing; a changed row replaces the stored one
    assert import_cells(tmp_path, cell_csv("inside", "border", "gsm"), config_file) == 0
    moved = cell_csv("gsm", header=False).replace("1500", "2500")
    assert import_cells(tmp_path, moved, config_file, "moved.csv") == 0
    capsys.readouterr()
    assert cli(["cells", "count", "--config", config_file]) == 0
    assert capsys.readouterr().out == "GSM\t1\nLTE\t3\ntotal\t4\n"
    conn = sqlite3.connect(tmp_path / "gateway.db")
    assert conn.execute("SELECT cell_range FROM cells WHERE radio = 'GSM'").fetchall() == [(2500,)]


def test_import_refuses_a_missing_or_unreadable_file(tmp_path, config_file, capsys):
    assert cli(["cells", "import", str(tmp_path / "none.csv"), "--config", config_file]) == 1
    assert "none.csv does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(cell_csv("inside").encode())[:-12])
    assert cli(["cells", "import", str(broken), "--config", config_file]) == 1
    assert "unreadable after" in capsys.readouterr().err


# geometry and the ENTER/EXIT rule ---------------------------------------------------------------

def test_verdicts_take_the_accuracy_circle_into_account():
    fence = circle(list(CENTER), 1000)
    assert fence.verdict(*CENTER, 999) == INSIDE
    assert fence.verdict(*CENTER, 1001) is None  # the circle reaches out of the fence
    assert fence.verdict(13.4050, 52.5290, 0) == OUTSIDE  # ~1001 m north
    assert fence.verdict(13.4050, 52.5290, 400) is None
    square = polygon([[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]])
    assert square.verdict(13.05, 52.05, 3000) == INSIDE  # ~3.4 km from the nearest edge
    assert square.verdict(13.05, 52.05, 4000) is None
    assert square.verdict(13.2, 52.05, 6000) == OUTSIDE  # ~6.9 km east of it
    assert square.verdict(13.2, 52.05, 8000) is None


def test_the_polygon_plane_is_projs_azimuthal_equidistant_projection():
    from pyproj import Transformer

    square = polygon([[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]])
    proj = Transformer.from_crs("EPSG:4326", f"+proj=aeqd +lat_0={square.lat0} +lon_0={square.lon0} +datum=WGS84"
                                " +units=m", always_xy=True)
    for lon, lat in ((13.0, 52.0), (13.3, 52.4), (12.5, 51.6), (13.05, 52.05)):
        ours, theirs = square._to_plane(lon, lat), proj.transform(lon, lat)
        assert abs(ours[0] - theirs[0]) < 1e-6 and abs(ours[1] - theirs[1]) < 1e-6


class Routes:
    def routes(self, event_type: str) -> tuple[int, ...]:
        return (1,) if event_type == "GEOFENCE" else ()


def test_enter_exit_without_flapping_at_the_border():
    from inspector.geofences import GeofenceRow

    locator = Locator(None, None, Routes(), read=None)
    row = GeofenceRow("g1", "depot", "circle", None, {"center": list(CENTER), "radius": 1000},
                      ["ENTER", "EXIT"], ["GPS", "CellTower"], 0, 0)
    locator.set_geofences([row])
    walk = [  # (lon, lat, accuracy) → expected event
        (13.4050, 52.5500, 0, None),     # first seen outside: no EXIT (it never entered)
        (13.4050, 52.5290, 400, None),   # straddles
        (13.4050, 52.5200, 50, "ENTER"),
        (13.4050, 52.5289, 300, None),   # border, back and forth: nothing
        (13.4050, 52.5291, 300, None),
        (13.4050, 52.5289, 300, None),
        (13.4050, 52.5210, 10, None),    # still inside
        (13.4050, 52.5400, 100, "EXIT"),
        (13.4050, 52.5291, 300, None),
        (13.4050, 52.5200, 0, "ENTER"),
    ]
    seen = []
    for i, (lon, lat, acc, _) in enumerate(walk):
        events, _changes = locator.judge(DEVICE, PositionRecord(DEVICE.iccid, i, "GPS", "UDP", lat, lon, acc))
        seen.append(events[0].body and __import__("json").loads(events[0].body)["geofence"]["type"]
                    if events else None)
    assert seen == [w[3] for w in walk]
    # a geofence bound to another device, or to other sources, ignores this one
    locator.set_geofences([GeofenceRow("g2", "other", "circle", "8988280660000000099",
                                       {"center": list(CENTER), "radius": 1000}, ["ENTER"], ["GPS"], 0, 0),
                           GeofenceRow("g3", "cells", "circle", None, {"center": list(CENTER), "radius": 1000},
                                       ["ENTER"], ["CellTower"], 0, 0)])
    assert locator.judge(DEVICE, PositionRecord(DEVICE.iccid, 99, "GPS", "UDP", 52.52, 13.405, 0)) == ([], [])


# geofence routes ------------------------------------------------------------------------------

SQUARE = [[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]]


async def test_geofence_crud_and_validation(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE], roles=("Owner", "User"))
    client = api.client("User")
    made = await client.post("/v1/locate/geofences", json={"name": "depot", "type": "circle", "radius": 1000,
                                                           "center": list(CENTER), "deviceId": DEVICE.iccid})
    assert made.status == 201
    body = made.body
    fence_id = body.pop("id")
    assert body == {"name": "depot", "type": "circle", "center": list(CENTER), "radius": 1000.0,
                         "deviceId": DEVICE.iccid, "eventTypes": ["ENTER", "EXIT"],
                         "eventSources": ["GPS", "CellTower"]}
    area = await client.post("/v1/locate/geofences", json={"name": "area", "type": "polygon", "coordinates": SQUARE,
                                                           "eventTypes": ["EXIT"], "eventSources": ["GPS"]})
    assert area.status == 201 and area.body["coordinates"] == SQUARE and area.body["deviceId"] == ""
    listing = await client.get("/v1/locate/geofences")
    assert [(f["name"], f["type"]) for f in listing.body["items"]] == [("depot", "circle"), ("area", "polygon")]
    assert (listing.body["page"], listing.body["pageAmount"]) == (1, 1)
    one = await client.get(f"/v1/locate/geofences/{fence_id}")
    assert one.status == 200 and one.body["radius"] == 1000.0 and one.body["created"] == one.body["updated"]
    changed = await client.patch(f"/v1/locate/geofences/{fence_id}", json={"name": "yard", "eventTypes": ["ENTER"]})
    assert changed.status == 200 and (changed.body["name"], changed.body["eventTypes"]) == ("yard", ["ENTER"])
    assert [f.row.name for f in api.gateway.locator.fences] == ["yard", "area"]
    assert (await client.delete(f"/v1/locate/geofences/{fence_id}")).status == 204
    assert (await client.get(f"/v1/locate/geofences/{fence_id}")).status == 404
    assert (await client.delete(f"/v1/locate/geofences/{fence_id}")).status == 404
    assert [f.row.name for f in api.gateway.locator.fences] == ["area"]

    async def refused(body: dict) -> str:
        answer = await client.post("/v1/locate/geofences", json={"name": "bad", **body})
        assert answer.status == 400, answer.body
        return answer.body["errors"][0]["message"]

    bowtie = [[[13.0, 52.0], [13.1, 52.1], [13.1, 52.0], [13.0, 52.1], [13.0, 52.0]]]
    assert (await refused({"type": "polygon", "coordinates": bowtie})).startswith(
        "coordinates: not a valid polygon (Self-intersection")
    assert await refused({"type": "polygon", "coordinates": [SQUARE[0][:-1] + [[13.0, 52.05]]]}) == (
        "coordinates[0]: the ring is not closed (its last position must equal its first)")
    assert (await refused({"type": "polygon", "coordinates": [[[13.0, 52.0], [13.1, 52.0], [13.2, 52.0],
                                                                [13.0, 52.0]]]})).startswith(
        "coordinates: the polygon has no area to speak of")
    assert await refused({"type": "polygon", "coordinates": [[[13.0, 52.0], [200, 52.0], [13.1, 52.1],
                                                               [13.0, 52.0]]]}) == (
        "coordinates[0][1]: longitude 200 is outside -180..180")
    assert await refused({"type": "circle", "radius": 1000}) == (
        "center is required for a circle geofence: [longitude, latitude]")
    assert await refused({"type": "circle", "radius": 1000, "center": [13.4, 95]}) == (
        "center: latitude 95 is outside -90..90")
    assert await refused({"type": "square", "radius": 1000, "center": [13.4, 52.5]}) == (
        "type 'square': a geofence is a 'circle' or a 'polygon'")
    assert "radius" in await refused({"type": "circle", "radius": 10, "center": [13.4, 52.5]})
    assert await refused({"type": "circle", "radius": 100, "center": [13.4, 52.5], "deviceId": "89"}) == (
        "deviceId: no device 89")


# cell positions and GEOFENCE events end to end ---------------------------------------------------

async def stored_positions(gw, count: int) -> list[dict]:
    for _ in range(200):
        await gw.locator.drain()
        await gw.committer.flush()
        rows = gw.store.positions(DEVICE.iccid)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    return gw.store.positions(DEVICE.iccid)


@needs_radclient
async def test_radius_cells_become_positions_and_geofence_events(start_gateway, tmp_path, receiver, ca_file,
                                                                 config_file):
    assert cli(["cells", "import", str(_write(tmp_path, cell_csv(*CELLS))), "--config", config_file]) == 0
    config = radius_config(tmp_path, webhooks=[webhook(receiver, ca_file, event_types=["GEOFENCE"])])
    api = await start_api(start_gateway, config, [DEVICE], roles=("User",))
    gw, client = api.gateway, api.client("User")
    made = await client.post("/v1/locate/geofences", json={"name": "depot", "type": "circle", "radius": 1000,
                                                           "center": list(CENTER)})
    fence_id = made.body["id"]
    port = gw.radius_port
    walk = ["outside", "inside", "border", "inside", "border", "outside", "border", "outside"]
    for i, name in enumerate(walk):
        status = "Start" if i == 0 else "Interim-Update"
        code, out = await radclient(port, attributes(status, DEVICE.imsi, "127.0.0.20", _3GPP_RAT_Type=8,
                                                     _3GPP_User_Location_Info=ecgi(CELLS[name][4])))
        assert code == 0, out
        await stored_positions(gw, i + 1)
    # a CGI (GSM) cell as well, and a cell the table does not know (no position)
    await radclient(port, attributes("Interim-Update", DEVICE.imsi, "127.0.0.20",
                                     _3GPP_User_Location_Info="0x0032f4030921b8e8"))
    await radclient(port, attributes("Interim-Update", DEVICE.imsi, "127.0.0.20",
                                     _3GPP_User_Location_Info=ecgi(999)))
    rows = await stored_positions(gw, len(walk) + 1)
    await asyncio.sleep(0.2)
    await gw.locator.drain()
    await gw.committer.flush()
    rows = gw.store.positions(DEVICE.iccid)
    assert len(rows) == len(walk) + 1
    assert [(r["lat"], r["lon"], r["source"], r["protocol"]) for r in rows[:1]] == [
        (51.5072, -0.1276, "CellTower", "RADIUS")]
    events = await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert [(e["geofence"]["type"], e["geofence"]["id"], e["geofence"]["accuracy"]) for e in receiver.events] == [
        ("ENTER", fence_id, 300.0), ("EXIT", fence_id, 300.0)]
    assert events[0]["device"]["iccid"] == DEVICE.iccid and events[0]["geofence"]["source"] == "CellTower"
    conn = sqlite3.connect(tmp_path / "gateway.db")
    assert conn.execute("SELECT state FROM geofence_states").fetchall() == [("OUTSIDE",)]
    # the routes
    positions = await client.get(f"/v1/locate/devices/{DEVICE.iccid}/positions", params={"source": "CellTower"})
    newest = positions.body["coordinates"][0]
    assert newest["coordinate"] == [-0.1276, 51.5072] and newest["metadata"] == {
        "protocol": "RADIUS", "radio": "GSM", "radioAccessType": "2G", "MCC": "234", "MNC": "30", "LAC": "2337",
        "CellID": "47336", "range": 1500, "accuracy": 1500.0}
    latest = await client.get("/v1/locate/positions/latest")
    assert [(p["deviceId"], p["source"]) for p in latest.body["coordinates"]] == [(DEVICE.iccid, "CellTower")]
    boxed = await client.get("/v1/locate/positions/latest", params={
        "longitudeFrom": 13, "longitudeTo": 14, "latitudeFrom": 52, "latitudeTo": 53})
    assert boxed.body["coordinates"][0]["coordinate"] == [13.405, 52.55]
    activity = await client.get(f"/v1/locate/devices/{DEVICE.iccid}/activity")
    items = activity.body["items"]
    assert [i["locationResolutionStatus"] for i in items] == ["SUCCEEDED"] * (len(walk) + 1) + ["FAILED"]
    assert items[0]["towerMetadata"] == {"MCC": "262", "MNC": "1", "LAC": "4660", "CellID": "1003"}
    assert (items[0]["radioAccessType"], items[0]["towerLocation"]) == ("NB-IoT", {"latitude": 52.55,
                                                                                  "longitude": 13.405})
    assert items[-1] == {"iccid": DEVICE.iccid, "sampleTime": items[-1]["sampleTime"],
                         "locationResolutionStatus": "FAILED", "resolutionMode": "BASIC", "radioAccessType": "NB-IoT",
                         "towerMetadata": {"MCC": "262", "MNC": "1", "LAC": "4660", "CellID": "999"},
                         "resolutionMetadata": {"protocol": "RADIUS", "radio": "LTE"}}
    too_long = await client.get(f"/v1/locate/devices/{DEVICE.iccid}/activity", params={
        "startDateTime": "2026-01-01T00:00:00.000Z", "endDateTime": "2026-01-09T00:00:00.000Z"})
    assert too_long.status == 400
    stats = await client.get("/v1/devices/stats")
    assert stats.body == {"totalDevices": 1, "activatedDevices": 1}


def _write(tmp_path, text: str):
    path = tmp_path / "cells.csv"
    path.write_text(text)
    return path


async def test_lwm2m_object_4_becomes_a_cell_position(start_gateway, tmp_path, config_file):
    assert cli(["cells", "import", str(_write(tmp_path, cell_csv(*CELLS))), "--config", config_file]) == 0
    gw = await start_gateway(make_config(tmp_path, lwm2m={"passive_reporting": True}), [DEVICE])
    values = default_objects(DEVICE.iccid)
    values.update({"/4/0/0": 6, "/4/0/8": 1001, "/4/0/9": 1, "/4/0/10": 262, "/4/0/12": 4660})
    client = await LwM2MClient.start(DEVICE.iccid, DEVICE.ip_address, values)
    try:
        await client.register(f"coap://127.0.0.1:{gw.coap_port}")
        rows = await stored_positions(gw, 1)
    finally:
        await client.close()
    assert [(r["lat"], r["lon"], r["source"], r["protocol"]) for r in rows] == [
        (52.52, 13.405, "CellTower", "LWM2M")]


async def test_cell_tower_location_setting_switches_cell_positions(start_gateway, tmp_path, config_file):
    """CELL_TOWER_LOCATION (on by default here): off, a reported cell is not looked up; on again
    (with the disclaimer), it is; another gateway on the store follows the switch."""
    assert cli(["cells", "import", str(_write(tmp_path, cell_csv(*CELLS))), "--config", config_file]) == 0
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE], roles=("Owner",))
    gw, owner = api.gateway, api.client("Owner")
    other = await start_gateway(make_config(tmp_path))
    seen = CellSeen(262, 1, 1001, 4660, ("LTE",))
    path = "/v1/settings/1nceos/CELL_TOWER_LOCATION"
    assert gw.locator.cell_tower and other.locator.cell_tower
    assert (await owner.patch(path, json={"state": "DISABLED"})).status == 200
    assert not gw.locator.cell_tower
    gw.locator.cell_seen(DEVICE, seen, "RADIUS", 1_000)
    await gw.locator.drain()
    await gw.committer.flush()
    assert gw.store.positions(DEVICE.iccid) == []
    assert gw.locator.resolutions.labels("off")._value.get() == 1
    for _ in range(100):  # followed within registry.poll_interval_seconds
        if not other.locator.cell_tower:
            break
        await asyncio.sleep(0.05)
    assert not other.locator.cell_tower
    assert (await owner.patch(path, json={"state": "ENABLED", "readAndAcceptedDisclaimer": True})).status == 200
    gw.locator.cell_seen(DEVICE, seen, "RADIUS", 2_000)
    rows = await stored_positions(gw, 1)
    assert [(r["lat"], r["lon"], r["source"]) for r in rows] == [(52.52, 13.405, "CellTower")]


async def test_gps_positions_raise_events_and_the_state_survives_a_restart(start_gateway, tmp_path, receiver,
                                                                           ca_file):
    from tests._lwm2m_server_helpers import registered_client

    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file, event_types=["GEOFENCE", "LOCATION"])])
    api = await start_api(start_gateway, config, [DEVICE], roles=("User",))
    made = await api.client("User").post("/v1/locate/geofences", json={
        "name": "area", "type": "polygon", "coordinates": SQUARE, "eventSources": ["GPS"]})
    client = await registered_client(api.gateway, DEVICE)
    try:
        # inside the square, but its radius (object 6 resource 3) reaches out: nothing yet
        await client.send({"/6/0/0": 52.05, "/6/0/1": 13.05, "/6/0/3": 6000.0})
        await client.send({"/6/0/0": 52.05, "/6/0/1": 13.05, "/6/0/3": 20.0})  # wholly inside: ENTER
        await client.send({"/6/0/0": 52.06, "/6/0/1": 13.06})  # still inside: nothing
        await receiver.wait_for(4)  # a LOCATION event per position, and the ENTER
    finally:
        await client.close()
    await api.gateway.stop()
    gw = await start_gateway(config)  # the same store: the state INSIDE is loaded
    client = await registered_client(gw, DEVICE)
    try:
        await client.send({"/6/0/0": 52.07, "/6/0/1": 13.07})  # inside: no second ENTER
        await client.send({"/6/0/0": 52.30, "/6/0/1": 13.05})  # outside
        await receiver.wait_for(7)
    finally:
        await client.close()
    await asyncio.sleep(0.3)
    assert [(e["type"], e.get("location")) for e in receiver.events if e["type"] == "LOCATION"] == [
        ("LOCATION", {"source": "GPS", "coordinates": [lon, lat]})
        for lon, lat in [("13.05", "52.05"), ("13.05", "52.05"), ("13.06", "52.06"), ("13.07", "52.07"),
                         ("13.05", "52.3")]]
    assert [e["type"] for e in receiver.events] == ["LOCATION", "LOCATION", "GEOFENCE", "LOCATION",
                                                    "LOCATION", "LOCATION", "GEOFENCE"]
    assert [(e["geofence"]["type"], e["geofence"]["id"], e["geofence"]["source"], e["geofence"]["coordinates"],
             e["geofence"]["accuracy"]) for e in receiver.events if e["type"] == "GEOFENCE"] == [
        ("ENTER", made.body["id"], "GPS", ["13.05", "52.05"], 20.0),
        ("EXIT", made.body["id"], "GPS", ["13.05", "52.3"], None)]
