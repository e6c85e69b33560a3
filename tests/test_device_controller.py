"""The Device Controller for UDP and CoAP through the management API (answers checked against the
OpenAPI document), with real peers: the project's emulator as the UDP device (it listens where
it sends its uplink from) and libcoap's coap-server-notls as the device answering CoAP requests."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import subprocess
import sys
from typing import Any

import pytest

from firmware_examples.emulator import send_udp
from tests.api_support import ApiClient, start_api
from tests.conftest import make_config, sim, webhook

DEVICE, OTHER, DISABLED = sim(23), sim(24), sim(25, status="Disabled")
UNKNOWN = "8988280660000009999"
REQUESTS = "/v1/integrate/devices/actions/requests"
FAST = {"poll_interval_seconds": 0.1, "response_timeout_seconds": 3.0}


def udp_path(iccid: str = DEVICE.iccid) -> str:
    return f"/v1/integrate/devices/{iccid}/actions/UDP"


def coap_path(iccid: str = DEVICE.iccid) -> str:
    return f"/v1/integrate/devices/{iccid}/actions/COAP"


def free_port(ip: str, kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


async def wait_status(http: ApiClient, request_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await http.get(f"{REQUESTS}/{request_id}")
        assert got.status == 200, got.body
        if got.body["status"] == status:
            return got.body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"request {request_id} is {got.body['status']}, not {status}: {got.body}")
        await asyncio.sleep(0.05)


class UdpDevice:
    """The emulator as a UDP device: sends one uplink from (ip, port), then prints what arrives."""

    def __init__(self, gateway: Any, port: int | None = None, device=DEVICE, seconds: float = 10.0) -> None:
        self.port = port or free_port(device.ip_address)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_examples.emulator", "udp", "--port", str(gateway.udp_port),
             "--source-ip", device.ip_address, "--source-port", str(self.port), "--listen", str(seconds),
             "--payload", "uplink"], stdout=subprocess.PIPE, text=True)

    async def line(self, timeout: float = 10.0) -> str:
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)  # type: ignore[union-attr]
        return line.strip()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def heard(gateway: Any, iccid: str = DEVICE.iccid, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not gateway.controller.recent(iccid):
        assert asyncio.get_running_loop().time() < deadline, "the gateway did not hear the device"
        await asyncio.sleep(0.02)


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path, controller=FAST), [DEVICE, OTHER, DISABLED])


async def test_udp_sent_at_once_to_a_device_heard_recently(api):
    http = api.client("API")
    device = UdpDevice(api.gateway)
    try:
        assert (await device.line()).startswith(f"sent 6 bytes over UDP from {DEVICE.ip_address}:{device.port}")
        await heard(api.gateway)
        posted = await http.post(udp_path(), json={"payload": "enable_sensor", "payloadType": "STRING",
                                                   "port": device.port, "requestMode": "SEND_NOW"})
        assert posted.status == 202, posted.body
        assert posted.body["message"] == (f"UDP message to port {device.port} for device {DEVICE.iccid} "
                                          "is being sent now.")
        assert await device.line() == (f"received 13 bytes from 127.0.0.1:{api.gateway.udp_port}: "
                                       f"{b'enable_sensor'.hex()}")
        item = await wait_status(http, posted.body["id"], "SUCCEEDED")
        assert item["protocol"] == "UDP" and item["deviceId"] == DEVICE.iccid and item["ip"] == DEVICE.ip_address
        assert item["mode"] == "SEND_NOW" and item["sendAttempts"] == 1 and item["sendAttemptsLeft"] == 0
        assert item["requestData"] == {"port": device.port, "payloadType": "STRING", "payload": "enable_sensor"}
        assert item["resultData"] == {"sentBytes": 13, "address": f"{DEVICE.ip_address}:{device.port}"}
    finally:
        device.close()


async def test_udp_waits_for_the_next_uplink(api):
    http = api.client("User")
    port = free_port(DEVICE.ip_address)
    raw = bytes([0, 1, 2, 0xFF])
    posted = await http.post(udp_path(), json={"payload": base64.b64encode(raw).decode(), "payloadType": "BASE64",
                                               "port": port})
    assert posted.status == 202
    assert posted.body["message"].endswith("waits for the device's next uplink.")
    request_id = posted.body["id"]
    await asyncio.sleep(0.3)  # a few polls: nothing is sent to a device not heard from
    item = (await http.get(f"{REQUESTS}/{request_id}")).body
    assert item["status"] == "SCHEDULED" and item["sendAttemptsLeft"] == 1 and item["resultData"] == {}
    active = await http.get(f"{REQUESTS}/active", params={"protocol": "UDP"})
    assert [i["id"] for i in active.body["items"]] == [request_id]
    assert (await http.get(f"{REQUESTS}/active", params={"protocol": "COAP"})).body["items"] == []

    device = UdpDevice(api.gateway, port)  # the port the request names
    try:
        assert (await device.line()).startswith("sent ")
        assert await device.line() == f"received 4 bytes from 127.0.0.1:{api.gateway.udp_port}: 000102ff"
        item = await wait_status(http, request_id, "SUCCEEDED")
        assert item["mode"] == "SEND_NOW" and item["resultData"]["sentBytes"] == 4
        archived = await http.get(f"{REQUESTS}/archived", params={"deviceId": DEVICE.iccid})
        assert [i["id"] for i in archived.body["items"]] == [request_id]
    finally:
        device.close()


async def test_expiry_fails_a_waiting_request(start_gateway, tmp_path, receiver, ca_file):
    config = make_config(tmp_path, controller={**FAST, "expiry_seconds": 0.5}, webhooks=[webhook(receiver, ca_file)])
    api = await start_api(start_gateway, config, [DEVICE])
    http = api.client("User")
    posted = await http.post(coap_path(), json={"path": "/x", "port": 5683, "requestType": "GET",
                                                "requestMode": "SEND_WHEN_ACTIVE"})
    assert posted.status == 202
    item = await wait_status(http, posted.body["id"], "FAILED")
    assert item["resultData"] == {"error": "expired: the device sent no uplink before the request's expiry"}
    events = await receiver.wait_for(1)
    error = [e for e in events if e["type"] == "ERROR"][0]
    assert error["error"]["message"] == "DeviceController[RequestFailed]"
    assert error["error"]["description"] == (f"CoAP GET /x to port 5683 (request {posted.body['id']}): "
                                             "expired: the device sent no uplink before the request's expiry")


async def test_limits_answer_409(start_gateway, tmp_path):
    config = make_config(tmp_path, controller={**FAST, "max_queued_per_device": 2, "max_queued_total": 3})
    api = await start_api(start_gateway, config, [DEVICE, OTHER])
    http = api.client("User")
    body = {"payload": "a", "payloadType": "STRING", "port": 3000}
    assert [(await http.post(udp_path(), json=body)).status for _ in range(2)] == [202, 202]
    full = await http.post(udp_path(), json=body)
    assert full.status == 409
    assert full.body["errors"][0]["message"] == (f"device {DEVICE.iccid} has 2 open requests already "
                                                 "(the most one device may have)")
    assert (await http.post(udp_path(OTHER.iccid), json=body)).status == 202
    total = await http.post(udp_path(OTHER.iccid), json=body)
    assert total.status == 409 and total.body["errors"][0]["message"] == ("3 requests are open already "
                                                                          "(the most the gateway holds)")
    bulk = await http.post("/v1/integrate/devices/actions/UDP",
                           json={**body, "deviceIds": [DEVICE.iccid, OTHER.iccid, UNKNOWN]})
    assert bulk.status == 202
    assert bulk.body == {"acceptedRequests": [], "rejectedDevices": [DEVICE.iccid, OTHER.iccid, UNKNOWN],
                         "message": "UDP message scheduled for 0 device(s)."}
    # cancelling frees a place
    first = (await http.get(REQUESTS, params={"deviceId": DEVICE.iccid, "sort": "created"})).body["items"][0]
    cancelled = await http.delete(f"{REQUESTS}/{first['id']}")
    assert cancelled.status == 200 and cancelled.body == {"id": first["id"], "status": "CANCELLED"}
    assert (await http.delete(f"{REQUESTS}/{first['id']}")).status == 409
    assert (await http.post(udp_path(), json=body)).status == 202
    gone = await http.delete(f"/v1/integrate/devices/{DEVICE.iccid}/actions/requests")
    assert gone.status == 200 and len(gone.body) == 2 and {g["status"] for g in gone.body} == {"CANCELLED"}
    text = api.gateway.metrics.render().decode()
    assert 'nce_controller_rejected_total{limit="device"} 2.0' in text
    assert 'nce_controller_rejected_total{limit="total"} 2.0' in text
    assert 'nce_controller_requests_total{protocol="UDP"} 4.0' in text
    assert "nce_controller_open_requests 1.0" in text


@pytest.mark.parametrize("body, field", [
    ({"payloadType": "STRING", "port": 3000}, None),  # UDP needs a payload (schema: required)
    ({"payload": "a", "payloadType": "STRING", "port": 0}, None),
    ({"payload": "a", "payloadType": "XML", "port": 3000}, None),
    ({"payload": "a", "payloadType": "STRING", "port": 3000, "sendAttempts": 2}, None),  # not for UDP
    ({"payload": "not base64!", "payloadType": "BASE64", "port": 3000}, "payload"),
    ({"payload": "x" * 1025, "payloadType": "STRING", "port": 3000}, "payload"),
    ({"payload": "", "payloadType": "STRING", "port": 3000}, "payload"),
])
async def test_bad_udp_bodies_400(api, body, field):
    answer = await api.client("User").post(udp_path(), json=body)
    assert answer.status == 400, answer.body
    if field is not None:
        assert answer.body["errors"][0].get("field") == field or field in answer.body["errors"][0]["message"]


@pytest.mark.parametrize("body", [
    {"path": "/a", "requestType": "GET"},  # no port
    {"path": "/a b", "port": 5683, "requestType": "GET"},
    {"path": "/a", "port": 5683, "requestType": "FETCH"},
    {"path": "/a", "port": 5683, "requestType": "GET", "sendAttempts": 6},
    {"path": "/a", "port": 5683, "requestType": "GET", "confirmable": True},
    {"path": "/a", "port": 5683, "requestType": "PUT", "payload": "%%%", "payloadType": "BASE64"},
])
async def test_bad_coap_bodies_400(api, body):
    answer = await api.client("User").post(coap_path(), json=body)
    assert answer.status == 400, answer.body
    bulk = await api.client("User").post("/v1/integrate/devices/actions/COAP", json={**body, "deviceIds": [DEVICE.iccid]})
    assert bulk.status == 400
    assert (await api.client("User").get(REQUESTS)).body["items"] == []  # nothing stored


async def test_unknown_and_disabled_devices(api):
    http = api.client("User")
    body = {"payload": "a", "payloadType": "STRING", "port": 3000}
    assert (await http.post(udp_path(UNKNOWN), json=body)).status == 404
    disabled = await http.post(udp_path(DISABLED.iccid), json=body)
    assert disabled.status == 409 and "Disabled" in disabled.body["errors"][0]["message"]
    # the older LwM2M path answers like /actions/LWM2M: the device is not registered
    lwm2m = await http.post(f"/v1/devices/{DEVICE.iccid}/actions", json={"action": "read", "resourceAddress": "/3/0"})
    assert lwm2m.status == 409 and "not registered" in lwm2m.body["errors"][0]["message"]
    assert (await http.post(f"/v1/devices/{UNKNOWN}/actions",
                            json={"action": "read", "resourceAddress": "/3/0"})).status == 404
    # a read-only token may list but not send
    assert (await api.client("API").get(REQUESTS)).status == 200


def coap_uplink(gateway: Any, device=DEVICE) -> None:
    """A plain CoAP uplink from the device's address, by libcoap's client."""
    subprocess.run(["coap-client-notls", "-a", device.ip_address, "-m", "post", "-e", "hi", "-B", "5",
                    f"coap://127.0.0.1:{gateway.coap_port}/"], check=True, capture_output=True, timeout=10)


@pytest.mark.skipif(shutil.which("coap-server-notls") is None, reason="libcoap3-bin is not installed")
async def test_coap_requests_answered_by_libcoap(start_gateway, tmp_path, receiver, ca_file):
    config = make_config(tmp_path, controller=FAST, webhooks=[webhook(receiver, ca_file)])
    api = await start_api(start_gateway, config, [DEVICE])
    http = api.client("User")
    port = free_port(DEVICE.ip_address)
    server = subprocess.Popen(["coap-server-notls", "-A", DEVICE.ip_address, "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(coap_uplink, api.gateway)
        await heard(api.gateway)
        put = await http.post(coap_path(), json={"path": "example_data", "port": port, "requestType": "PUT",
                                                 "payload": "enable_sensor", "payloadType": "STRING"})
        assert put.status == 202, put.body
        item = await wait_status(http, put.body["id"], "SUCCEEDED")
        assert item["resultData"] == {"code": "2.01", "address": f"{DEVICE.ip_address}:{port}", "transport": "coap"}
        assert item["requestData"] == {"port": port, "payloadType": "STRING", "payload": "enable_sensor",
                                       "requestType": "PUT", "path": "example_data"}

        get = await http.post(coap_path(), json={"path": "/example_data", "port": port, "requestType": "GET"})
        item = await wait_status(http, get.body["id"], "SUCCEEDED")
        assert item["resultData"]["code"] == "2.05", item
        assert base64.b64decode(item["resultData"]["payload"]) == b"enable_sensor"
        # the answer is the device's data: a TELEMETRY_DATA event (source COAP) to the integrations
        telemetry = [e for e in await receiver.wait_for(2) if e["type"] == "TELEMETRY_DATA"]
        answer = [e for e in telemetry if e["payload"]["value"] == base64.b64encode(b"enable_sensor").decode()]
        assert answer and answer[0]["source"] == "COAP" and answer[0]["device"]["iccid"] == DEVICE.iccid

        query = await http.post(coap_path(), json={"path": "/time?ticks", "port": port, "requestType": "GET"})
        item = await wait_status(http, query.body["id"], "SUCCEEDED")
        assert base64.b64decode(item["resultData"]["payload"]).isdigit()  # ticks: the query reached the server

        missing = await http.post(coap_path(), json={"path": "/no/such/thing", "port": port, "requestType": "GET"})
        item = await wait_status(http, missing.body["id"], "FAILED")
        assert item["resultData"]["code"] == "4.04"
        errors = [e for e in await receiver.wait_for(4) if e["type"] == "ERROR"]
        assert errors[0]["error"]["description"] == (f"CoAP GET /no/such/thing to port {port} "
                                                     f"(request {missing.body['id']}): 4.04")
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(shutil.which("coap-client-notls") is None, reason="libcoap3-bin is not installed")
async def test_no_answer_is_tried_again_with_the_next_uplink(start_gateway, tmp_path):
    config = make_config(tmp_path, controller={**FAST, "response_timeout_seconds": 2.0})
    api = await start_api(start_gateway, config, [DEVICE])
    http = api.client("User")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a device port that never answers
    silent.bind((DEVICE.ip_address, 0))
    silent.settimeout(10)
    port = silent.getsockname()[1]
    try:
        posted = await http.post(coap_path(), json={"path": "/cmd", "port": port, "requestType": "POST",
                                                    "payload": "go", "payloadType": "STRING", "sendAttempts": 2})
        request_id = posted.body["id"]
        await asyncio.to_thread(coap_uplink, api.gateway)
        data, _ = await asyncio.to_thread(silent.recvfrom, 2048)  # the request arrived; no answer
        item = (await http.get(f"{REQUESTS}/{request_id}")).body
        assert (item["status"], item["sendAttemptsLeft"]) == ("IN_PROGRESS", 1)  # waiting for the answer
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # first attempt: no answer → SCHEDULED again with one attempt left
            item = (await http.get(f"{REQUESTS}/{request_id}")).body
            if item["status"] == "SCHEDULED" and item["sendAttemptsLeft"] == 1:
                break
            assert asyncio.get_running_loop().time() < deadline, item
            await asyncio.sleep(0.05)
        assert item["resultData"]["error"] == "timeout"
        assert data[1] == 2 and data.endswith(b"\xffgo")  # POST, payload "go"
        # the second attempt goes with the next uplink of any protocol (1NCE's cross-protocol trigger): UDP here
        send_udp("127.0.0.1", api.gateway.udp_port, DEVICE.ip_address, b"udp uplink")
        item = await wait_status(http, request_id, "FAILED")
        silent.setblocking(False)
        arrived = [data]
        while True:
            try:
                arrived.append(silent.recv(2048))
            except BlockingIOError:
                break
        # sent again with a new message ID (besides CoAP retransmissions of the first, same ID)
        assert all(d.endswith(b"\xffgo") for d in arrived) and len({d[2:4] for d in arrived}) == 2, (arrived, item)
        assert item["sendAttemptsLeft"] == 0 and item["resultData"]["error"] == "timeout"
    finally:
        silent.close()


async def test_a_restart_keeps_waiting_requests(start_gateway, tmp_path):
    config = make_config(tmp_path, controller=FAST)
    api = await start_api(start_gateway, config, [DEVICE])
    port = free_port(DEVICE.ip_address)
    posted = await api.client("User").post(udp_path(), json={"payload": "after restart", "payloadType": "STRING",
                                                             "port": port, "requestMode": "SEND_WHEN_ACTIVE"})
    assert posted.status == 202
    user = api.users["User"]
    await api.gateway.stop()

    gateway = await start_gateway(config)
    http = ApiClient(f"http://127.0.0.1:{gateway.api_port}/management-api", gateway.api_auth.issue(user)[0])
    assert (await http.get(f"{REQUESTS}/{posted.body['id']}")).body["status"] == "SCHEDULED"
    device = UdpDevice(gateway, port)
    try:
        assert (await device.line()).startswith("sent ")
        assert await device.line() == (f"received 13 bytes from 127.0.0.1:{gateway.udp_port}: "
                                       f"{b'after restart'.hex()}")
        await wait_status(http, posted.body["id"], "SUCCEEDED")
    finally:
        device.close()


async def test_coap_request_inside_the_device_dtls_session(api):
    """A device whose last uplink came over DTLS gets the request inside that session (the
    project's DTLS device, python-mbedtls, answering by hand as a device firmware would)."""
    from aiocoap import Message
    from aiocoap.numbers.codes import Code
    from aiocoap.numbers.types import Type

    from firmware_examples.device import CoapsDevice, os_auth

    gw, http = api.gateway, api.client("User")
    onboarding = await asyncio.to_thread(os_auth, ("127.0.0.1", gw.coap_port), DEVICE.ip_address)
    async with CoapsDevice(("127.0.0.1", gw.coaps_port), onboarding, DEVICE.ip_address) as device:
        assert await device.post(b"hello") == "2.04"
        posted = await http.post(coap_path(), json={"path": "/led?state=on", "port": 5683, "requestType": "PUT",
                                                    "payload": "1", "payloadType": "STRING"})
        assert posted.status == 202
        request = Message.decode(await device.dtls.recv(timeout=5))
        assert (request.mtype, request.code, request.opt.uri_path, request.opt.uri_query, request.payload) == (
            Type.CON, Code.PUT, ("led",), ("state=on",), b"1")
        reply = Message(code=Code.CHANGED, payload=b"on")  # a piggybacked answer, as firmware sends it
        reply.mtype, reply.mid, reply.token = Type.ACK, request.mid, request.token
        await device.dtls.send(reply.encode())
        item = await wait_status(http, posted.body["id"], "SUCCEEDED")
        local = device.dtls.local_addr
        assert item["resultData"] == {"code": "2.04", "address": f"{local[0]}:{local[1]}", "transport": "coaps",
                                      "payload": base64.b64encode(b"on").decode(), "payloadType": "BASE64"}
    text = gw.metrics.render().decode()
    assert 'nce_controller_sent_total{transport="coaps"} 1.0' in text
    assert 'nce_controller_finished_total{protocol="COAP",status="SUCCEEDED"} 1.0' in text


async def test_cli_send_list_show(api, tmp_path, capsys):
    """``nce-gateway actions``: the CLI writes the request, the running gateway sends it."""
    import json

    from gateway.cli import main as cli

    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[store]\npath = "{api.gateway.config.store.path}"\n')
    device = UdpDevice(api.gateway)
    try:
        assert (await device.line()).startswith("sent ")
        await heard(api.gateway)
        code = await asyncio.to_thread(cli, ["actions", "send", DEVICE.iccid, "udp", "--port", str(device.port),
                                             "--payload-base64", "AAE=", "--timeout", "10", "--config", str(cfg)])
        shown = json.loads(capsys.readouterr().out)
        assert code == 0 and shown["status"] == "SUCCEEDED" and shown["protocol"] == "UDP"
        assert shown["requestData"] == {"port": device.port, "payloadType": "BASE64", "payload": "AAE="}
        assert await device.line() == f"received 2 bytes from 127.0.0.1:{api.gateway.udp_port}: 0001"
    finally:
        device.close()
    # a device not heard from: --no-wait prints the id; the request waits
    code = await asyncio.to_thread(cli, ["actions", "send", OTHER.iccid, "coap", "--port", "5683", "--method", "PUT",
                                         "--path", "/led?state=on", "--payload", "1", "--no-wait",
                                         "--config", str(cfg)])
    waiting = capsys.readouterr().out.strip()
    assert code == 0 and len(waiting) == 20
    assert await asyncio.to_thread(cli, ["actions", "show", waiting, "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "SCHEDULED"
    assert await asyncio.to_thread(cli, ["actions", "list", "--active", "--format", "json", "--config", str(cfg)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["id"], i["protocol"], i["requestData"]["path"]) for i in listed] == [(waiting, "COAP", "/led?state=on")]
    assert await asyncio.to_thread(cli, ["actions", "send", OTHER.iccid, "udp", "--port", "1", "--payload-base64",
                                         "!!", "--config", str(cfg)]) == 1
    assert "not valid base64" in capsys.readouterr().err
    assert await asyncio.to_thread(cli, ["actions", "show", "nope", "--config", str(cfg)]) == 1


@pytest.mark.parametrize("path, segments, query", [
    ("", [], []),
    ("/", [], []),
    ("example?param1=query_param_example", ["example"], ["param1=query_param_example"]),
    ("/a/b%20c/?x=1&y=%26&&z#frag", ["a", "b c"], ["x=1", "y=&", "z"]),
    ("//a//b", ["a", "b"], []),
])
def test_coap_path_and_query(path, segments, query):
    from gateway.controller import coap_target

    assert coap_target(path) == (segments, query)


async def test_bulk_coap_accepts_known_devices(api):
    http = api.client("User")
    answer = await http.post("/v1/integrate/devices/actions/COAP", json={
        "deviceIds": [DEVICE.iccid, OTHER.iccid, DEVICE.iccid, UNKNOWN, DISABLED.iccid], "path": "/cfg?x=1",
        "port": 5683, "requestType": "POST", "payload": "\ud800", "payloadType": "STRING"})
    assert answer.status == 400 and "UTF-8" in answer.body["errors"][0]["message"]
    answer = await http.post("/v1/integrate/devices/actions/COAP", json={
        "deviceIds": [DEVICE.iccid, OTHER.iccid, DEVICE.iccid, UNKNOWN, DISABLED.iccid], "path": "/cfg?x=1",
        "port": 5683, "requestType": "POST", "payload": "e30=", "payloadType": "BASE64",
        "requestMode": "SEND_WHEN_ACTIVE", "sendAttempts": 3})
    assert answer.status == 202
    accepted = answer.body["acceptedRequests"]
    assert [a["deviceId"] for a in accepted] == [DEVICE.iccid, OTHER.iccid]
    assert answer.body["rejectedDevices"] == [UNKNOWN, DISABLED.iccid]
    assert answer.body["message"] == "CoAP POST /cfg?x=1 scheduled for 2 device(s)."
    for a in accepted:
        item = (await http.get(f"{REQUESTS}/{a['requestId']}")).body
        assert (item["deviceId"], item["status"], item["mode"], item["sendAttempts"], item["sendAttemptsLeft"]) == (
            a["deviceId"], "SCHEDULED", "SEND_WHEN_ACTIVE", 3, 3)


@pytest.mark.parametrize("seconds, retransmit, wait", [(93, 4, 93.0), (30, 2, 21.0), (10, 1, 9.0), (3, 0, 3.0),
                                                      (1, 0, 1.0)])
def test_retransmissions_end_within_the_timeout(seconds, retransmit, wait):
    """A CON exchange must not outlive the caller's timeout: aiocoap queues the next request to
    the same device behind it (NSTART = 1)."""
    from gateway.lwm2m.client_requests import tuning_within

    tuning = tuning_within(seconds)
    assert tuning.MAX_RETRANSMIT == retransmit and tuning.MAX_TRANSMIT_WAIT == pytest.approx(wait)
