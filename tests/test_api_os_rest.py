"""The rest of the 1NCE OS API (issue 14 item 4): device endpoints turned off and on live, PSK
import jobs (API and CLI), Energy Saver savings, 1NCE OS settings and agreements, the AWS
CloudFormation parameters. Real sockets: UDP datagrams from a SIM's address, libcoap clients."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import time

import pytest

from firmware_examples.emulator import send_udp
from gateway.cli import main as cli
from inspector import admin_logs
from inspector.admin_logs import AdminLogQuery
from tests.api_support import Api, start_api
from tests.conftest import make_config, sim
from tests.test_templates import BLUEPRINT

DEVICE, OTHER = sim(20), sim(21)
UNKNOWN = "8988280666000000099"


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def stored_messages(gw, count: int, timeout: float = 5.0) -> list[dict]:
    """The stored messages once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        await gw.committer.flush()
        messages = gw.store.messages()
        if len(messages) >= count or time.monotonic() > deadline:
            assert len(messages) == count, messages
            return messages
        await asyncio.sleep(0.02)


async def libcoap(client: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(client, "-v", "6", "-B", "3", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return out.decode("utf-8", "replace")


# endpoints ------------------------------------------------------------------------------------

async def test_endpoints_listed_and_udp_turned_off_and_on_live(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE])
    gw, owner, user = api.gateway, api.client("Owner"), api.client("User")
    listed = await owner.get("/v1/integrate/devices/endpoints")
    assert listed.status == 200 and (listed.body["page"], listed.body["pageAmount"]) == (1, 1)
    by_protocol = {e["protocol"]: e for e in listed.body["items"]}
    assert list(by_protocol) == ["UDP", "COAP", "COAPS", "LWM2M"]
    assert by_protocol["UDP"] == {"protocol": "UDP", "active": True, "domain": socket.getfqdn(),
                                  "ipAddresses": ["127.0.0.1"], "port": gw.udp_port}
    assert (by_protocol["COAP"]["port"], by_protocol["COAP"]["securePort"]) == (gw.coap_port, gw.coaps_port)
    lwm2m = await owner.get("/v1/integrate/devices/endpoints/lwm2m")
    assert lwm2m.status == 200 and lwm2m.body["settings"] == [{
        "name": "LWM2M_PASSIVE_REPORTING", "state": "ENABLED",
        "description": "Report LwM2M values the device sends on its own (notifications, Send) as telemetry events."}]
    assert (await owner.get("/v1/integrate/devices/endpoints/SMS")).status == 404

    port = gw.udp_port
    send_udp("127.0.0.1", port, DEVICE.ip_address, b"before")
    await stored_messages(gw, 1)
    # a User may look but not switch
    assert (await user.patch("/v1/integrate/devices/endpoints/UDP", json={"active": False})).status == 403
    off = await owner.patch("/v1/integrate/devices/endpoints/UDP", json={"active": False})
    assert off.status == 200 and off.body["active"] is False and off.body["port"] == port
    send_udp("127.0.0.1", port, DEVICE.ip_address, b"while off")
    # nothing listens now: another program can take the port, and the gateway cannot get it back
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", port))
    try:
        taken = await owner.patch("/v1/integrate/devices/endpoints/UDP", json={"active": True})
        assert taken.status == 409
        assert taken.body["errors"][0]["message"] == (
            f"the UDP endpoint cannot listen on 127.0.0.1:{port} again: Address already in use (another program "
            "holds the port?); it stays off")
    finally:
        squatter.close()
    assert (await owner.get("/v1/integrate/devices/endpoints/UDP")).body["active"] is False
    on = await owner.patch("/v1/integrate/devices/endpoints/UDP", json={"active": True})
    assert on.status == 200 and on.body["active"] is True and on.body["port"] == port
    send_udp("127.0.0.1", port, DEVICE.ip_address, b"after")
    assert sorted(m["payload"] for m in await stored_messages(gw, 2)) == [b"after", b"before"]
    # LwM2M has no socket of its own; unknown settings are refused
    refused = await owner.patch("/v1/integrate/devices/endpoints/LWM2M", json={"active": False})
    assert refused.status == 400 and "turn the COAP or COAPS endpoint off" in refused.body["errors"][0]["message"]
    bad = await owner.patch("/v1/integrate/devices/endpoints/UDP", json={
        "settings": [{"name": "LWM2M_PASSIVE_REPORTING", "state": "DISABLED"}]})
    assert bad.status == 400
    setting = await owner.patch("/v1/integrate/devices/endpoints/LWM2M", json={
        "settings": [{"name": "LWM2M_PASSIVE_REPORTING", "state": "DISABLED"}]})
    assert setting.status == 400 and "cannot be DISABLED" in setting.body["errors"][0]["message"]
    setting = await owner.patch("/v1/integrate/devices/endpoints/LWM2M", json={
        "settings": [{"name": "LWM2M_PASSIVE_REPORTING", "state": "ENABLED"}]})
    assert setting.status == 200 and setting.body["settings"][0]["state"] == "ENABLED"
    logged = admin_logs.page(gw.store, AdminLogQuery(), 0, 10)[1]
    assert [e.message for e in logged][:3] == ["PATCH /v1/integrate/devices/endpoints/{protocol}"] * 3
    assert 'nce_endpoint_active{protocol="UDP"} 1.0' in gw.metrics.render().decode()


@pytest.mark.skipif(shutil.which("coap-client-notls") is None, reason="apt-get install libcoap3-bin")
async def test_coap_and_coaps_endpoints_stay_off_across_a_restart(start_gateway, tmp_path):
    config = make_config(tmp_path)
    api = await start_api(start_gateway, config, [DEVICE], roles=("Admin",))
    admin = api.client("Admin")
    await api.gateway.psks.set(DEVICE.iccid, "COAP", b"secret-key-of-20")
    url = f"coap://127.0.0.1:{api.gateway.coap_port}/"
    out = await libcoap("coap-client-notls", "-a", DEVICE.ip_address, "-m", "post", "-e", "one", url)
    assert "c:2.04" in out, out
    for protocol in ("COAP", "COAPS"):
        answer = await admin.patch(f"/v1/integrate/devices/endpoints/{protocol}", json={"active": False})
        assert answer.status == 200 and answer.body["active"] is False
    out = await libcoap("coap-client-notls", "-a", DEVICE.ip_address, "-m", "post", "-e", "two", url)
    assert "c:2.04" not in out
    lwm2m = (await admin.get("/v1/integrate/devices/endpoints/LWM2M")).body
    assert lwm2m["active"] is False
    await api.gateway.stop()

    restarted = await start_gateway(config)  # same store, same users
    again = Api(restarted, f"http://127.0.0.1:{restarted.api_port}/management-api", api.users)
    admin = again.client("Admin")
    items = {e["protocol"]: e["active"] for e in (await admin.get("/v1/integrate/devices/endpoints")).body["items"]}
    assert items == {"UDP": True, "COAP": False, "COAPS": False, "LWM2M": False}
    assert again.gateway.coap.endpoint.sock is None and again.gateway.coaps.endpoint.sock is None
    for protocol in ("COAP", "COAPS"):
        answer = await admin.patch(f"/v1/integrate/devices/endpoints/{protocol}", json={"active": True})
        assert answer.status == 200 and answer.body["active"] is True
    url = f"coap://127.0.0.1:{again.gateway.coap_port}/"
    out = await libcoap("coap-client-notls", "-a", DEVICE.ip_address, "-m", "post", "-e", "three", url)
    assert "c:2.04" in out, out
    if shutil.which("coap-client-openssl"):
        out = await libcoap("coap-client-openssl", "-a", DEVICE.ip_address, "-u", DEVICE.iccid, "-k",
                            "secret-key-of-20", "-m", "post", "-e", "four",
                            f"coaps://127.0.0.1:{again.gateway.coaps_port}/")
        assert "c:2.04" in out, out
    await again.gateway.committer.flush()
    assert sorted(m["payload"] for m in again.gateway.store.messages(DEVICE.iccid)) == sorted(
        [b"one", b"three"] + ([b"four"] if shutil.which("coap-client-openssl") else []))


# PSK import jobs ------------------------------------------------------------------------------

async def test_psk_import_job_through_the_api(start_gateway, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE, OTHER])
    client = api.client("API")
    body = [{"deviceId": DEVICE.iccid, "protocol": "COAP", "secretKey": "first-secret-20"},
            {"deviceId": OTHER.iccid, "protocol": "LWM2M", "secretKey": "00112233445566778899", "format": "HEX"},
            {"deviceId": UNKNOWN, "protocol": "COAP", "secretKey": "unknown-device-key"},
            {"deviceId": OTHER.iccid, "protocol": "COAP", "secretKey": "x" * 33},
            {"deviceId": DEVICE.iccid, "protocol": "COAP", "secretKey": "second-of-the-same"}]
    answer = await client.post("/v1/integrate/devices/presharedkey/jobs", json=body)
    assert answer.status == 202 and answer.text == ""
    job_url = answer.headers["Location"]
    assert api.gateway.psks.key(DEVICE.iccid, "COAP") == b"first-secret-20"
    assert api.gateway.psks.key(OTHER.iccid, "LWM2M") == bytes.fromhex("00112233445566778899")
    job = await client.get(job_url.removeprefix("/management-api"))
    assert job.status == 200
    assert {k: job.body[k] for k in ("status", "amount", "done", "failed", "source")} == {
        "status": "DONE", "amount": 5, "done": 2, "failed": 3, "source": "API"}
    assert job.body["rows"] == [
        {"line": 1, "deviceId": DEVICE.iccid, "protocol": "COAP", "result": "OK"},
        {"line": 2, "deviceId": OTHER.iccid, "protocol": "LWM2M", "result": "OK"},
        {"line": 3, "deviceId": UNKNOWN, "protocol": "COAP", "result": "FAILED",
         "reason": "deviceId: no SIM with this ICCID"},
        {"line": 4, "deviceId": OTHER.iccid, "protocol": "COAP", "result": "FAILED",
         "reason": "secretKey: a PSK must be 1 to 32 bytes long (Mbed TLS' limit), not 33"},
        {"line": 5, "deviceId": DEVICE.iccid, "protocol": "COAP", "result": "FAILED",
         "reason": "duplicate: line 1 sets the same device and protocol"}]
    listed = await client.get("/v1/integrate/devices/psk/jobs")
    assert listed.status == 200 and [j["id"] for j in listed.body["items"]] == [job.body["id"]]
    assert (await client.get("/v1/integrate/devices/psk/jobs/nope")).status == 404
    # 1NCE's schema: at least one row, keys of 8 to 128 characters
    assert (await client.post("/v1/integrate/devices/psk/jobs", json=[])).status == 400
    # no key anywhere in the logs or the administration log
    text = caplog.text + json.dumps(admin_logs.payload(api.gateway.store,
                                                       admin_logs.page(api.gateway.store, AdminLogQuery(), 0, 1)[1][0].id)[1])
    for row in body:
        assert row["secretKey"] not in text
    # jobs are kept for the retention period, like messages
    await asyncio.sleep(0.01)
    api.gateway.config.store.retention_days = 0
    await api.gateway.purge_once()
    assert (await client.get("/v1/integrate/devices/psk/jobs")).body["items"] == []


@pytest.mark.skipif(shutil.which("coap-client-openssl") is None, reason="apt-get install libcoap3-bin")
async def test_psk_import_from_csv_with_the_cli_and_a_dtls_handshake(start_gateway, tmp_path, capsys):
    config = make_config(tmp_path)
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f'[store]\npath = "{config.store.path}"\n[registry]\npoll_interval_seconds = 0.2\n')
    api = await start_api(start_gateway, config, [DEVICE, OTHER], roles=("Owner",))
    csv_file = tmp_path / "keys.csv"
    csv_file.write_text(f"iccid,psk,protocol\n{DEVICE.iccid},csv-key-of-dev-20,COAP\n\n"
                        f"{UNKNOWN},whatever-key,COAP\n{OTHER.iccid},k,SMS\n")
    code = await asyncio.to_thread(cli, ["psk", "import", str(csv_file), "--config", str(config_file)])
    out = capsys.readouterr().out
    assert code == 1
    job_id = out.split()[1].rstrip(":")
    assert out.splitlines()[1:] == [f"line 4: {UNKNOWN}: deviceId: no SIM with this ICCID",
                                    f"line 5: {OTHER.iccid}: protocol: must be one of COAP, LWM2M"]
    assert out.splitlines()[0] == f"job {job_id}: 1 keys set, 2 failed"
    assert "csv-key" not in out
    await wait_until(lambda: api.gateway.psks.key(DEVICE.iccid, "COAP") == b"csv-key-of-dev-20")
    out = await libcoap("coap-client-openssl", "-a", DEVICE.ip_address, "-u", DEVICE.iccid, "-k", "csv-key-of-dev-20",
                        "-m", "post", "-e", "imported", f"coaps://127.0.0.1:{api.gateway.coaps_port}/")
    assert "c:2.04" in out, out
    job = await api.client("Owner").get(f"/v1/integrate/devices/psk/jobs/{job_id}")
    assert (job.body["source"], job.body["done"], job.body["failed"]) == ("CLI", 1, 2)
    bad = tmp_path / "bad.csv"
    bad.write_text("device,key\n1,2\n")
    assert await asyncio.to_thread(cli, ["psk", "import", str(bad), "--config", str(config_file)]) == 1
    assert "the header row has no deviceId column" in capsys.readouterr().err


# savings, settings, agreements, AWS parameters ------------------------------------------------

async def test_savings_count_what_energy_saver_translated(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE, OTHER], roles=("User",))
    gw, client = api.gateway, api.client("User")
    empty = await client.get("/v1/optimize/savings")
    assert empty.body == {"messagesTranslated": {"value": 0, "delta": 0}, "bytesSaved": {"value": 0, "delta": 0},
                          "averageBytesReducedPerMessage": {"value": 0.0, "delta": 0.0}}
    send_udp("127.0.0.1", gw.udp_port, DEVICE.ip_address, b"raw, no template")
    await gw.templates.create(name="blueprint", template=BLUEPRINT, protocols=["UDP"], status="ACTIVE")
    payload = bytes.fromhex("016354322e322e31")
    for device in (DEVICE, DEVICE, OTHER):
        send_udp("127.0.0.1", gw.udp_port, device.ip_address, payload)
    translated = [m["translated"] for m in await stored_messages(gw, 4) if m["translated"]]
    assert len(translated) == 3
    saved = len(translated[0]) - len(payload)
    answer = await client.get("/v1/optimize/savings", params={"range": "7"})
    assert answer.status == 200 and answer.body == {
        "messagesTranslated": {"value": 3, "delta": 3}, "bytesSaved": {"value": 3 * saved, "delta": 3 * saved},
        "averageBytesReducedPerMessage": {"value": float(saved), "delta": float(saved)}}
    one = await client.get("/v1/optimize/savings", params={"iccid": OTHER.iccid, "protocol": "UDP"})
    assert one.body["messagesTranslated"]["value"] == 1 and one.body["bytesSaved"]["value"] == saved
    assert (await client.get("/v1/optimize/savings", params={"protocol": "COAP"})).body == empty.body
    assert (await client.get("/v1/optimize/savings", params={"range": "2"})).status == 400


async def test_settings_and_agreements_are_stored_and_audited(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner", "User"))
    owner, user = api.client("Owner"), api.client("User")
    listed = await user.get("/v1/settings/1nceos")
    assert listed.status == 200 and [(s["name"], s["state"]) for s in listed.body["items"]] == [
        ("CELL_TOWER_LOCATION", "ENABLED"), ("ADVANCED_CELL_TOWER_LOCATION", "DISABLED")]
    german = await user.get("/v1/settings/1nceos", params={"language": "de", "pageSize": 1, "page": 2})
    assert german.body["pageAmount"] == 2 and german.body["items"][0]["description"].startswith("Verbessert")
    path = "/v1/settings/1nceos/CELL_TOWER_LOCATION"
    assert (await user.patch(path, json={"state": "ENABLED", "readAndAcceptedDisclaimer": True})).status == 403
    assert (await owner.patch(path, json={"state": "DISABLED"})).status == 200  # off needs no disclaimer
    no_disclaimer = await owner.patch(path, json={"state": "ENABLED"})
    assert no_disclaimer.status == 400 and no_disclaimer.body["errors"][0]["field"] == "readAndAcceptedDisclaimer"
    enabled = await owner.patch(path, json={"state": "ENABLED", "readAndAcceptedDisclaimer": True})
    assert enabled.status == 200 and enabled.body == {"customerId": "nce-gateway", "name": "CELL_TOWER_LOCATION",
                                                      "state": "ENABLED"}
    assert (await owner.patch("/v1/settings/1nceos/NO_SUCH", json={"state": "ENABLED"})).status == 400
    assert (await user.get("/v1/settings/1nceos")).body["items"][0]["state"] == "ENABLED"
    assert (await owner.post("/v1/agreements/1nceos", json={"accepted": False})).status == 400
    accepted = await owner.post("/v1/agreements/1nceos", json={"accepted": True})
    assert accepted.status == 201
    from inspector import os_state
    when, by = os_state.agreement(api.gateway.store, "1NCE_OS_TERMS_AND_DPA")
    assert by == "owner@example.com" and abs(when / 1000 - time.time()) < 60
    logged = [e.message for e in admin_logs.page(api.gateway.store, AdminLogQuery(), 0, 10)[1]]
    assert logged == ["POST /v1/agreements/1nceos", "PATCH /v1/settings/1nceos/{name}",
                      "PATCH /v1/settings/1nceos/{name}"]


async def test_aws_parameters_name_a_template_the_gateway_serves(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("API",))
    client = api.client("API")
    answer = await client.get("/v1/integrate/clouds/aws/parameters")
    url = f"http://127.0.0.1:{api.gateway.api_port}/management-api/v1/integrate/clouds/aws/templates/v1"
    assert answer.status == 200 and answer.body == {"awsIntegration": [{"version": "v1", "url": url}]}
    template = await client.get(url.split("/management-api")[1])
    assert template.status == 200
    assert set(template.body["Parameters"]) == {"GatewayPrincipalArn", "ExternalId", "TopicPrefix", "ClientId"}
    assert template.body["Parameters"]["ExternalId"]["NoEcho"] is True
    assert set(template.body["Outputs"]) == {"RoleArn", "ThingPolicyName", "Region"}
    assert (await client.get("/v1/integrate/clouds/aws/templates/v9")).status == 404
    assert (await api.client(None).get("/v1/integrate/clouds/aws/parameters")).status == 401


async def test_console_endpoints_page_switches_and_shows_savings(start_gateway, tmp_path):
    from console_support import ConsoleClient
    api = await start_api(start_gateway, make_config(tmp_path), [DEVICE], roles=("Owner", "User"))
    client = ConsoleClient(f"http://127.0.0.1:{api.gateway.api_port}")
    try:
        await client.login("Owner")
        status, html, _ = await client.get("/console/endpoints")
        assert status == 200 and 'action="/console/endpoints/UDP"' in html and "Turn off" in html
        assert "<strong>0</strong> bytes saved" in html
        status, html, _ = await client.post("/console/endpoints/UDP", {"active": "off"})
        assert status == 200 and "the UDP endpoint is off" in html
        assert api.gateway.udp.endpoint.sock is None
        status, html, _ = await client.post("/console/endpoints/UDP", {"active": "on"})
        assert "the UDP endpoint is on" in html and api.gateway.udp.endpoint.sock is not None
    finally:
        await client.close()
    user = ConsoleClient(f"http://127.0.0.1:{api.gateway.api_port}")
    try:
        await user.login("User")
        status, html, _ = await user.get("/console/endpoints")
        assert status == 200 and "Turn off" not in html  # a User sees the endpoints, cannot switch them
    finally:
        await user.close()
