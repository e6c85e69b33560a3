"""SIM management through the API (sim-management.json): paging, filters, changes that reach the
running gateway at once, the CSV export."""

from __future__ import annotations

import csv
import io

import pytest

from gateway.sims_import import read_rows, validate_rows
from inspector.records import Sim
from tests.api_support import start_api
from tests.conftest import make_config, sim
from tests.test_uplink_e2e import coap_post


def many_sims(count: int) -> list[Sim]:
    return [Sim(iccid=f"89882806500000{i:05d}", imsi=f"9014051000{i:05d}", ip_address=f"10.1.{i // 250}.{i % 250 + 1}",
                imei=f"35693803564{i % 3:04d}", label=f"dev-{i:03d}", status="Disabled" if i % 5 == 0 else "Enabled")
            for i in range(count)]


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), many_sims(23) + [sim(10)], roles=("User",))


async def test_list_pages_and_headers(api):
    client = api.client("User")
    first = await client.get("/v1/sims")
    assert first.status == 200 and len(first.body) == 10
    assert (first.headers["X-Total-Count"], first.headers["X-Total-Pages"], first.headers["X-Current-Page"],
            first.headers["X-Count-Per-Page"]) == ("24", "3", "1", "10")
    seen = []
    for page in (1, 2, 3, 4):
        answer = await client.get("/v1/sims", params={"page": page, "pageSize": 10})
        assert answer.headers["X-Current-Page"] == str(page)
        seen += [s["iccid"] for s in answer.body]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 24
    card = first.body[0]
    assert card["iccid"] == "8988280650000000000" and card["iccid_with_luhn"].startswith(card["iccid"])
    assert len(card["iccid_with_luhn"]) == 20 and card["ip_address"] == "10.1.0.1"
    assert card["status"] == "Disabled" and card["imei_lock"] is False and card["label"] == "dev-000"
    assert card["activation_date"].endswith("+0000")
    big = await client.get("/v1/sims", params={"pageSize": 100})
    assert len(big.body) == 24 and big.headers["X-Total-Pages"] == "1"


async def test_luhn_digit():
    from gateway.api.endpoints.sims import luhn_digit
    assert luhn_digit("7992739871") == "3"  # the classic example
    for number in ("8988280666000000000", "8988280660000000010", "8988303000123456789"):
        full = number + luhn_digit(number)
        # the Luhn sum of the full number (every second digit from the right doubled) ends in 0
        total = sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d)
                    for i, d in enumerate(int(c) for c in reversed(full)))
        assert total % 10 == 0


async def test_filters_and_sort(api):
    client = api.client("User")
    one = await client.get("/v1/sims", params={"q": "ip_address:10.1.0.3"})
    assert [s["iccid"] for s in one.body] == ["8988280650000000002"] and one.headers["X-Total-Count"] == "1"
    by_imei = await client.get("/v1/sims", params={"q": "imei:356938035640001", "pageSize": 100})
    assert len(by_imei.body) == 8 and all(s["imei"] == "356938035640001" for s in by_imei.body)
    both = await client.get("/v1/sims", params={"q": "imei:356938035640000,status:Disabled", "pageSize": 100})
    assert {s["iccid"] for s in both.body} == {"8988280650000000000", "8988280650000000015"}
    sorted_desc = await client.get("/v1/sims", params={"sort": "-imei,ip_address", "pageSize": 100})
    imeis = [s.get("imei", "") for s in sorted_desc.body]
    assert imeis == sorted(imeis, reverse=True)
    for params, field in (({"q": "colour:red"}, "q"), ({"q": "ip_address"}, "q"), ({"sort": "colour"}, "sort"),
                          ({"pageSize": 101}, "pageSize"), ({"page": 0}, "page"), ({"page": "x"}, "page")):
        answer = await client.get("/v1/sims", params=params)
        assert answer.status == 400 and answer.body["errors"][0]["field"] == field, (params, answer.body)


async def test_get_and_change_reach_the_running_gateway(api):
    client = api.client("User")
    device = sim(10)
    gateway = api.gateway
    got = await client.get(f"/v1/sims/{device.iccid}")
    assert got.status == 200 and got.body["ip_address"] == device.ip_address and got.body["label"] == "test-10"
    assert (await client.get("/v1/sims/8988280666999999999")).status == 404
    assert (await coap_post(gateway.coap_port, device.ip_address, b"before")).code == "2.04"
    changed = await client.put(f"/v1/sims/{device.iccid}",
                               json={"iccid": device.iccid, "status": "Disabled", "label": "parked", "imei_lock": True})
    assert changed.status == 200 and changed.raw == b""
    # the very next packet is refused: no wait for the registry poll
    assert (await coap_post(gateway.coap_port, device.ip_address, b"after")).code == "4.01"
    got = await client.get(f"/v1/sims/{device.iccid}")
    assert (got.body["status"], got.body["label"], got.body["imei_lock"]) == ("Disabled", "parked", True)
    assert gateway.registry.sim_for_iccid(device.iccid).status == "Disabled"
    enabled = await client.put(f"/v1/sims/{device.iccid}", json={"iccid": device.iccid, "status": "Enabled"})
    assert enabled.status == 200
    assert (await coap_post(gateway.coap_port, device.ip_address, b"again")).code == "2.04"
    # label and lock unchanged when not given
    got = await client.get(f"/v1/sims/{device.iccid}")
    assert (got.body["label"], got.body["imei_lock"]) == ("parked", True)


async def test_change_validation(api):
    client = api.client("User")
    iccid = sim(10).iccid
    for body, field in (({"status": "Enabled"}, "iccid"), ({"iccid": iccid}, "status"),
                        ({"iccid": iccid, "status": "Paused"}, "status"),
                        ({"iccid": iccid, "status": "Enabled", "imei_lock": "yes"}, "imei_lock"),
                        ({"iccid": "8988280650000000001", "status": "Enabled"}, "iccid")):
        answer = await client.put(f"/v1/sims/{iccid}", json=body)
        assert answer.status == 400 and answer.body["errors"][0]["field"] == field, (body, answer.body)
    not_json = await client.put(f"/v1/sims/{iccid}", data=b"status=Enabled",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status == 400 and not_json.body["errors"][0]["field"] == "body"
    unknown = await client.put("/v1/sims/8988280666999999999",
                               json={"iccid": "8988280666999999999", "status": "Enabled"})
    assert unknown.status == 404
    assert api.gateway.store.get_sim(iccid).label == "test-10"


async def test_bulk_change_is_all_or_nothing(api):
    client = api.client("User")
    updates = [{"iccid": "8988280650000000001", "status": "Disabled"},
               {"iccid": "8988280650000000002", "status": "Disabled", "label": "b"}]
    refused = await client.post("/v1/sims", json=updates + [{"iccid": "8988280666999999999", "status": "Enabled"}])
    assert refused.status == 404 and "8988280666999999999" in refused.body["errors"][0]["message"]
    assert api.gateway.store.get_sim("8988280650000000001").status == "Enabled"
    done = await client.post("/v1/sims", json=updates)
    assert done.status == 201
    assert api.gateway.registry.sim_for_iccid("8988280650000000002").status == "Disabled"
    assert api.gateway.store.get_sim("8988280650000000002").label == "b"


async def test_csv_export_can_be_imported_again(api, tmp_path):
    client = api.client("User")
    answer = await client.get("/v1/sims/export")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 24 and rows[0]["iccid"] == "8988280650000000000"
    path = tmp_path / "export.csv"
    path.write_text(answer.text)
    assert validate_rows(read_rows(path)) == api.gateway.store.all_sims()
    filtered = await client.get("/v1/sims/export", params={"q": "status:Disabled"})
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 5
