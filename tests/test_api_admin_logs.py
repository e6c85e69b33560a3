"""Administration logs: every change through the API is logged before it is answered, with who,
role, address, route and the body without its secrets; reads, tests and refused requests are
not; Owner and Admin read them (filters, stats per day, payload as a data: URI); retention."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from datetime import datetime, timezone

import pytest

from inspector import admin_logs
from tests.api_support import EMAILS, start_api
from tests.conftest import make_config, sim

DEVICE = sim(10)


@pytest.fixture
async def api(start_gateway, tmp_path, ca_file):
    config = make_config(tmp_path, api={"webhook_ca_file": ca_file})
    return await start_api(start_gateway, config, [DEVICE, sim(11)])


def payload_of(answer) -> object:
    uri = answer.text
    prefix = "data:application/json;base64,"
    assert answer.headers["Content-Type"].startswith("text/x-uri") and uri.startswith(prefix)
    return json.loads(base64.b64decode(uri[len(prefix):]))


async def test_changes_are_logged_with_secrets_removed(api):
    owner = api.client("Owner")
    assert (await owner.put(f"/v1/sims/{DEVICE.iccid}", json={"iccid": DEVICE.iccid, "label": "pump", "status": "Enabled"})).status == 200
    created = await owner.post("/v1/integrate/clouds/webhooks", json={
        "name": "hook", "url": "https://example.com/hook", "headers": {"Authorization": "Bearer abc", "X-Plain": "v"},
        "eventTypes": [{"type": "TELEMETRY_DATA", "version": "1.0.0"}]})
    assert created.status == 201
    assert (await owner.post("/v1/users", json={"userId": "new@example.com", "password": "0123456789ab",
                                                "role": "User"})).status == 201
    # not logged: reads, a refused change, a test that changes nothing
    assert (await owner.get("/v1/sims")).status == 200
    assert (await owner.put(f"/v1/sims/{DEVICE.iccid}", json={"iccid": "8988280660000000011", "status": "Enabled"})).status == 400
    assert (await owner.post("/v1/optimize/messages/test", json={"template": "{}", "payload": "AA=="})).status == 400

    answer = await api.client("Admin").get("/v1/administrationLogs")
    assert answer.status == 200 and answer.body["page"] == 1 and answer.body["pageAmount"] == 1
    items = answer.body["items"]
    assert [(i["type"], i["message"], i.get("iccid"), i["category"]) for i in items] == [
        ("GENERAL", "POST /v1/users", None, "info"),
        ("INTEGRATION", "POST /v1/integrate/clouds/webhooks", None, "info"),
        ("DEVICE", "PUT /v1/sims/{iccid}", DEVICE.iccid, "info")]
    assert items[2]["description"] == f"{EMAILS['Owner']} (Owner) PUT /v1/sims/{DEVICE.iccid}: 200"
    assert items[2]["ip"] == "127.0.0.1" and items[2]["customerId"] == "nce-gateway"

    user = payload_of(await owner.get(f"/v1/administrationLogs/{items[0]['id']}/payload"))
    assert user == {"userId": "new@example.com", "password": "***", "role": "User"}
    hook = payload_of(await owner.get(f"/v1/administrationLogs/{items[1]['id']}/payload"))
    assert hook["headers"] == {"Authorization": "***", "X-Plain": "***"} and hook["url"] == "https://example.com/hook"
    sim_change = payload_of(await owner.get(f"/v1/administrationLogs/{items[2]['id']}/payload"))
    assert sim_change == {"iccid": DEVICE.iccid, "label": "pump", "status": "Enabled"}
    assert (await owner.get("/v1/administrationLogs/nope/payload")).status == 404


async def test_filters_stats_and_roles(api):
    owner = api.client("Owner")
    for label in ("a", "b"):
        await owner.put(f"/v1/sims/{DEVICE.iccid}", json={"iccid": DEVICE.iccid, "label": label, "status": "Enabled"})
    await owner.put("/v1/sims/8988280660000000011", json={"iccid": "8988280660000000011", "label": "c", "status": "Enabled"})
    await owner.post("/v1/users", json={"userId": "x@example.com", "password": "0123456789ab", "role": "User"})
    got = await owner.get("/v1/administrationLogs", params={"q": f"type:device;iccid:{DEVICE.iccid}", "pageSize": 1})
    assert got.body["pageAmount"] == 2 and [i["iccid"] for i in got.body["items"]] == [DEVICE.iccid]
    assert len((await owner.get("/v1/administrationLogs", params={"q": "type:GENERAL"})).body["items"]) == 1
    assert len((await owner.get("/v1/administrationLogs", params={"q": f"user:{EMAILS['Owner']}"})).body["items"]) == 4
    future = datetime.fromtimestamp(time.time() + 3600, timezone.utc).isoformat()
    assert (await owner.get("/v1/administrationLogs", params={"q": f"startDateTime:{future}"})).body["items"] == []
    bad = await owner.get("/v1/administrationLogs", params={"q": "colour:blue"})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "q"
    stats = await owner.get("/v1/administrationLogs/stats", params={"timezone": "UTC"})
    today = datetime.now(timezone.utc).date().isoformat()
    assert stats.body == {"totalUniqueDevices": 2, "administrationLogs": [{"day": today, "amount": 4}]}
    assert (await owner.get("/v1/administrationLogs/stats", params={"timezone": "Mars/Olympus"})).status == 400
    for role in ("User", "API"):
        assert (await api.client(role).get("/v1/administrationLogs")).status == 403


async def test_retention_purges_old_logs(api):
    await api.client("Owner").put(f"/v1/sims/{DEVICE.iccid}", json={"iccid": DEVICE.iccid, "label": "old", "status": "Enabled"})
    store = api.gateway.store
    counts = await api.gateway.committer.write(store.purge, int(time.time() * 1000) + 1)
    assert counts["admin_logs"] == 1
    assert await api.gateway.read(admin_logs.page, store, admin_logs.AdminLogQuery(), 0, 10) == (0, [])


async def test_cli_changes_are_logged(api, tmp_path):
    import asyncio
    import getpass

    from gateway.cli import main as cli

    config = tmp_path / "gateway.toml"
    config.write_text(f'[store]\npath = "{api.gateway.config.store.path}"\n')
    code = await asyncio.to_thread(cli, ["sims", "set-status", DEVICE.iccid, "Disabled", "--config", str(config)])
    assert code == 0
    items = (await api.client("Owner").get("/v1/administrationLogs", params={"q": "type:DEVICE"})).body["items"]
    assert [(i["message"], i["iccid"], i["description"]) for i in items] == [
        ("nce-gateway sims set-status", DEVICE.iccid, f"{getpass.getuser()} (CLI) nce-gateway sims set-status")]
    values = payload_of(await api.client("Owner").get(f"/v1/administrationLogs/{items[0]['id']}/payload"))
    assert values["iccid"] == DEVICE.iccid and values["status"] == "Disabled"

    # the other changing commands outside in_force(): an MT SMS queued, a cell table import
    api.gateway.store.upsert_sims([dataclasses.replace(DEVICE, msisdn="882285100000010")])
    assert await asyncio.to_thread(cli, ["sms", "send", DEVICE.iccid, "hello", "--config", str(config)]) == 0
    cells = tmp_path / "cells.csv"
    cells.write_text("radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
                     "LTE,262,1,100,200,0,13.4,52.5,1000,5,1,0,0,0\n")
    assert await asyncio.to_thread(cli, ["cells", "import", str(cells), "--config", str(config)]) == 0
    items = (await api.client("Owner").get("/v1/administrationLogs")).body["items"]
    assert [i["message"] for i in items][:2] == ["nce-gateway cells import", "nce-gateway sms send"]
    sms = payload_of(await api.client("Owner").get(f"/v1/administrationLogs/{items[1]['id']}/payload"))
    assert (sms["iccid"], sms["text"]) == (DEVICE.iccid, "hello")
