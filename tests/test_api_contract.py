"""The API's contract: 501 for every 1NCE route not implemented, the served OpenAPI document,
the route-registration hook for features, and a schemathesis run finding no server error."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sys
import time
import types

import pytest
from aiohttp import web

from gateway.api import routes as route_table
from gateway.api.app import build_table
from gateway.api.openapi import reference_operations
from gateway.api.routes import MANAGE, READ, USERS, ApiRoute, gateway_of, json_response, params_of
from inspector.records import MessageRecord, Pending
from tests.api_support import EMAILS, ContractError, check_response, document, start_api
from tests.conftest import make_config, sim


async def test_every_1nce_route_is_implemented_or_501(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner",))
    doc = document()
    implemented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    stubs = {tuple(entry.split(" ", 1)) for entry in doc["x-nce-not-implemented"]}
    reference = {(m, p) for _, m, p, _ in reference_operations()}
    assert reference == (implemented & reference) | stubs and not implemented & stubs
    owner = api.client("Owner")
    for method, path in sorted(stubs):
        url = path.replace("{", "").replace("}", "")
        answer = await owner.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert answer.status == 501, (method, path)
        assert answer.body["statusText"] == "Not Implemented"
        assert path in answer.body["errors"][0]["message"] and "not implemented" in answer.body["errors"][0]["message"]
    # unknown routes under the prefix: JSON 404, and 405 with Allow
    unknown = await owner.get("/v2/nothing")
    assert unknown.status == 404 and unknown.body["statusCode"] == 404
    wrong_method = await owner.request("DELETE", "/v1/sims")
    assert wrong_method.status == 405 and "GET" in wrong_method.headers["Allow"]


async def test_served_document_is_the_route_table(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("API",))
    served = await api.client("API").get("/openapi.json")
    assert served.status == 200 and served.body == document()
    doc = served.body
    assert doc["servers"] == [{"url": "/management-api"}]
    sims = doc["paths"]["/v1/sims"]["get"]
    assert sims["x-nce-access"] == "read" and sims["x-nce-roles"] == ["Owner", "Admin", "User", "API"]
    assert doc["paths"]["/v1/users"]["get"]["x-nce-roles"] == ["Owner", "Admin"]
    assert doc["paths"]["/oauth/token"]["post"].get("security") == [{"BasicAuthentication": []}]
    assert "^[0-9]{19}$" not in json.dumps(doc)  # ICCIDs of 19 or 20 digits
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


def test_checker_catches_a_deviation():
    good = json.dumps({"testStatus": "SUCCESS", "message": "ok"}).encode()
    headers = {"Content-Type": "application/json"}
    check_response("POST", "/management-api/v1/integrate/clouds/webhooks/x/test", 200, headers, good)
    with pytest.raises(ContractError):
        check_response("POST", "/management-api/v1/integrate/clouds/webhooks/x/test", 200, headers,
                       json.dumps({"testStatus": "MAYBE", "message": "ok"}).encode())
    with pytest.raises(ContractError):  # status not documented
        check_response("POST", "/management-api/v1/integrate/clouds/webhooks/x/test", 418, headers, good)
    with pytest.raises(ContractError):  # an extra field where the schema forbids it
        check_response("GET", "/management-api/v1/inspect/devices/history", 200, headers,
                       json.dumps({"items": [], "extra": 1}).encode())


# the hook for features ----------------------------------------------------------------------

async def list_templates(request: web.Request) -> web.Response:
    gateway_of(request)  # a feature reaches the gateway like this
    return json_response([])


async def list_geofences(request: web.Request) -> web.Response:
    params = params_of(request)  # converted and checked against the 1NCE operation, defaults applied
    return json_response({"items": [], "page": params["page"], "pageAmount": 1, "size": params["pageSize"]})


async def secret_route(request: web.Request) -> web.Response:
    return json_response({"ok": True})


def feature_module(*routes: ApiRoute) -> types.ModuleType:
    module = types.ModuleType("gateway.api.endpoints.fake_feature")
    module.routes = lambda: list(routes)  # type: ignore[attr-defined]
    return module


async def test_a_feature_module_replaces_a_501_stub(start_gateway, tmp_path, monkeypatch):
    feature = feature_module(
        ApiRoute("POST", "/v1/sims/simTransfer", list_templates, READ, spec="sim-management"),
        ApiRoute("GET", "/v1/locate/geofences", list_geofences, READ, spec="1nce-os"),
        ApiRoute("GET", "/v1/admin-only", secret_route, USERS, operation={
            "summary": "A route of the feature's own", "responses": {"200": {"description": "OK"}}}))
    real = route_table.endpoint_modules
    # without the real geofence module its routes are 501 stubs again, which the fake one replaces
    monkeypatch.setattr(route_table, "endpoint_modules", lambda: [
        *(m for m in real() if m.__name__ != "gateway.api.endpoints.geofences"), feature])
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner", "User"))
    owner, user = api.client("Owner"), api.client("User")
    owner.check = user.check = False  # the test session's document does not know the fake feature
    answer = await owner.post("/v1/sims/simTransfer", json={"iccids": ["8988280666000000000"]})
    assert answer.status == 200 and answer.body == []
    # the body is validated against the 1NCE operation before the handler runs
    refused = await owner.post("/v1/sims/simTransfer", json={"iccids": "not a list"})
    assert refused.status == 400 and refused.body["errors"][0]["field"] == "iccids"
    anonymous = api.client()
    anonymous.check = False
    assert (await anonymous.post("/v1/sims/simTransfer", json={})).status == 401
    # parameters validated against the 1NCE operation
    fences = await owner.get("/v1/locate/geofences", params={"page": 3})
    assert fences.status == 200 and (fences.body["page"], fences.body["size"]) == (3, 10)
    bad = await owner.get("/v1/locate/geofences", params={"pageSize": "many"})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "pageSize"
    assert (await owner.get("/v1/locate/geofences", params={"page": 51})).status == 400
    assert (await user.get("/v1/admin-only")).status == 403
    # still a stub: the POST nobody registered (the real geofence module is left out here)
    assert (await owner.post("/v1/locate/geofences", json={})).status == 501
    served = (await owner.get("/openapi.json")).body
    assert "post" in served["paths"]["/v1/sims/simTransfer"] and "/v1/admin-only" in served["paths"]
    assert "POST /v1/sims/simTransfer" not in served["x-nce-not-implemented"]
    assert "POST /v1/locate/geofences" in served["x-nce-not-implemented"]


def test_two_modules_cannot_claim_one_route():
    first = feature_module(ApiRoute("GET", "/v1/optimize/templates", list_templates, READ, spec="1nce-os"))
    second = types.ModuleType("gateway.api.endpoints.other")
    second.routes = lambda: [ApiRoute("GET", "/v1/optimize/templates", list_templates, MANAGE, spec="1nce-os")]
    with pytest.raises(ValueError, match="fake_feature.*other"):
        route_table.collect_routes([first, second])
    with pytest.raises(ValueError, match="needs an operation"):
        ApiRoute("GET", "/v1/undocumented", list_templates, READ)
    with pytest.raises(KeyError):
        build_table([feature_module(ApiRoute("GET", "/v1/not-in-1nce", list_templates, READ, spec="1nce-os"))])


# schemathesis ---------------------------------------------------------------------------------

async def run_schemathesis(base: str, token: str, spec_file: str, *args: str) -> tuple[int, str]:
    """The schemathesis CLI in a child process (its cache goes beside the spec file, not into the tree)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", spec_file, "--url", base,
        "-H", f"Authorization: Bearer {token}", "--workers", "1", "--no-color", "--seed", "20261126",
        "--generation-database", "none", "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
        "response_headers_conformance", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=os.path.dirname(spec_file))
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")


async def test_schemathesis_finds_no_server_error(start_gateway, tmp_path):
    pytest.importorskip("schemathesis")
    if shutil.which("python") is None and not sys.executable:
        pytest.skip("no interpreter")
    # the gateway's webhook test waits less than schemathesis waits for an answer (10 s)
    api = await start_api(start_gateway, make_config(tmp_path, api={"test_timeout_seconds": 3}), [sim(10), sim(11)],
                          roles=("Owner",))
    now = int(time.time() * 1000)
    await api.gateway.committer.write(api.gateway.store.commit, [
        Pending(MessageRecord(sim(10 + i % 2).iccid, ("UDP", "COAP")[i % 2], now - i * 1000, b"x" * i,
                              "t" if i % 3 else None, '{"a":1}' if i % 4 == 0 else None), []) for i in range(40)])
    spec_file = tmp_path / "openapi.json"
    spec_file.write_text(json.dumps(document()))
    # everything but the user changes (schemathesis finds its own user and revokes its token) ...
    code, out = await run_schemathesis(api.base, api.token("Owner"), str(spec_file), "-n", "4",
                                       "--phases", "examples,coverage,fuzzing",
                                       "--exclude-path", "/v1/users/{userId}", "--exclude-path", "/oauth/revoke")
    assert code == 0, out[-8000:]
    assert "generated" in out and " 0 generated" not in out
    # ... then those, last
    code, out = await run_schemathesis(api.base, api.token("Owner"), str(spec_file), "-n", "4",
                                       "--phases", "examples,fuzzing",
                                       "--include-path", "/v1/users/{userId}", "--include-path", "/oauth/revoke")
    assert code == 0, out[-8000:]


# every implemented operation, called with valid input -----------------------------------------

#: 1NCE operations the gateway answers 501 on purpose, with the reason in the answer
NOT_OFFERED = {("POST", f"/v1/partners/{p}/plugins") for p in ("DATACAKE", "MENDER", "TARTABIT", "MEMFAULT")} | {
    ("POST", "/v1/sims/simTransfer")}  # no other customer accounts to transfer to (the stub example above)

TEMPLATE = '{"sense": [{"asset": "t", "value": {"byte": 0, "bytelength": 1, "type": "uint"}}]}'


def valid_calls(iccid: str, other: str, receiver_url: str) -> list[tuple[str, str, dict]]:
    """(METHOD, path template, request) for every implemented 1NCE operation, in an order where
    each finds what it needs (``{id}`` placeholders are filled from earlier answers)."""
    sim_path = f"/v1/sims/{iccid}"
    return [
        ("POST", "/oauth/token", {"basic": True, "json": {"grant_type": "client_credentials"}}),
        ("GET", "/v1/sims", {}),
        ("POST", "/v1/sims", {"json": [{"iccid": other, "status": "Enabled", "label": "other"}]}),
        ("GET", "/v1/sims/{iccid}", {"path": sim_path}),
        ("PUT", "/v1/sims/{iccid}", {"path": sim_path, "json": {"iccid": iccid, "status": "Enabled",
                                                                 "label": "first"}}),
        ("GET", "/v1/sims/{iccid}/status", {"path": f"{sim_path}/status"}),
        ("GET", "/v1/sims/{iccid}/quota/data", {"path": f"{sim_path}/quota/data"}),
        ("GET", "/v1/sims/{iccid}/quota/sms", {"path": f"{sim_path}/quota/sms"}),
        ("GET", "/v1/sims/{iccid}/connectivity_info", {"path": f"{sim_path}/connectivity_info"}),
        ("GET", "/v1/sims/{iccid}/usage", {"path": f"{sim_path}/usage"}),
        ("GET", "/v1/sims/{iccid}/events", {"path": f"{sim_path}/events"}),
        ("POST", "/v1/sims/{iccid}/reset", {"path": f"{sim_path}/reset"}),
        ("POST", "/v1/sims/{iccid}/topup", {"path": f"{sim_path}/topup"}),
        ("GET", "/v1/sims/{iccid}/sms", {"path": f"{sim_path}/sms"}),
        ("POST", "/v1/sims/{iccid}/sms", {"path": f"{sim_path}/sms", "json": {"payload": "hello"},
                                          "status": 409}),  # [sms] not configured: the documented 409
        ("GET", "/v1/sims/{iccid}/sms/{id}", {"path": f"{sim_path}/sms/1", "status": 404}),  # none sent
        ("DELETE", "/v1/sims/{iccid}/sms/{id}", {"path": f"{sim_path}/sms/1", "status": 404}),
        ("GET", "/v1/sims/limits", {}),
        ("POST", "/v1/sims/topup", {"json": [iccid]}),
        ("POST", "/v1/sims/autoTopup", {"json": {"enabled": False, "iccids": [iccid]}}),
        ("POST", "/v1/sims/limits", {"json": {"dataLimitId": 1}}),
        ("GET", "/v1/sims/{service}/limits", {"path": "/v1/sims/data/limits"}),
        ("POST", "/v1/sims/extension", {"json": {"iccids": [iccid]}}),
        ("GET", "/v1/products", {}),
        ("GET", "/v1/orders", {}),
        ("GET", "/v1/inspect/devices/history", {}),
        ("GET", "/v1/inspect/devices/{deviceId}/history", {"path": f"/v1/inspect/devices/{iccid}/history"}),
        ("GET", "/v1/inspect/devices", {}),
        ("GET", "/v1/inspect/devices/{deviceId}", {"path": f"/v1/inspect/devices/{iccid}"}),
        ("GET", "/v1/inspect/devices/{deviceId}/telemetry", {"path": f"/v1/inspect/devices/{iccid}/telemetry"}),
        ("GET", "/v1/inspect/devices/history/insights", {}),
        ("GET", "/v1/inspect/devices/{deviceId}/history/insights", {
            "path": f"/v1/inspect/devices/{iccid}/history/insights"}),
        ("GET", "/v1/integrate/devices/endpoints", {}),
        ("GET", "/v1/integrate/devices/endpoints/{protocol}", {"path": "/v1/integrate/devices/endpoints/UDP"}),
        ("PATCH", "/v1/integrate/devices/endpoints/{protocol}", {"path": "/v1/integrate/devices/endpoints/LWM2M",
                                                                  "json": {"settings": [{
                                                                      "name": "LWM2M_PASSIVE_REPORTING",
                                                                      "state": "ENABLED"}]}}),
        ("POST", "/v1/integrate/devices/{deviceId}/psk", {"path": f"/v1/integrate/devices/{iccid}/psk",
                                                          "json": {"secretKey": "secret-of-10", "protocol": "COAP"}}),
        ("POST", "/v1/integrate/devices/{deviceId}/presharedkey", {
            "path": f"/v1/integrate/devices/{iccid}/presharedkey",
            "json": {"secretKey": "secret-of-10", "protocol": "LWM2M"}}),
        ("GET", "/v1/integrate/devices/{deviceId}/psk/{protocol}", {
            "path": f"/v1/integrate/devices/{iccid}/psk/COAP"}),
        ("POST", "/v1/integrate/devices/psk/jobs", {"json": [{"deviceId": other, "protocol": "COAP",
                                                              "secretKey": "secret-of-11"}]}),
        ("POST", "/v1/integrate/devices/presharedkey/jobs", {"json": [{"deviceId": other, "protocol": "LWM2M",
                                                                       "secretKey": "secret-of-11"}]}),
        ("GET", "/v1/integrate/devices/psk/jobs", {}),
        ("GET", "/v1/integrate/devices/presharedkey/jobs", {}),
        ("POST", "/v1/integrate/devices/{deviceId}/actions/LWM2M", {
            "path": f"/v1/integrate/devices/{iccid}/actions/LWM2M",
            "json": {"action": "read", "resourceAddress": "/3/0/0", "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("POST", "/v1/integrate/devices/actions/LWM2M", {
            "json": {"deviceIds": [iccid], "action": "read", "resourceAddress": "/3/0/1",
                     "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("GET", "/v1/integrate/devices/{deviceId}/actions", {"path": f"/v1/integrate/devices/{iccid}/actions"}),
        ("POST", "/v1/devices/{deviceId}/actions", {
            "path": f"/v1/devices/{iccid}/actions", "json": {"action": "read", "resourceAddress": "/3/0/2", "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("POST", "/v1/integrate/devices/{deviceId}/actions/UDP", {
            "path": f"/v1/integrate/devices/{iccid}/actions/UDP",
            "json": {"payload": "enable_sensor", "payloadType": "STRING", "port": 4445,
                     "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("POST", "/v1/integrate/devices/actions/UDP", {
            "json": {"deviceIds": [iccid], "payload": "aGk=", "payloadType": "BASE64", "port": 4445,
                     "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("POST", "/v1/integrate/devices/{deviceId}/actions/COAP", {
            "path": f"/v1/integrate/devices/{iccid}/actions/COAP",
            "json": {"path": "/x", "port": 5683, "requestType": "GET", "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("POST", "/v1/integrate/devices/actions/COAP", {
            "json": {"deviceIds": [iccid], "path": "/x", "port": 5683, "requestType": "GET",
                     "requestMode": "SEND_WHEN_ACTIVE"}}),
        ("GET", "/v1/integrate/devices/actions/requests/{requestId}", {
            "path": "/v1/integrate/devices/actions/requests/{request}"}),
        ("GET", "/v1/integrate/devices/actions/requests", {}),
        ("GET", "/v1/integrate/devices/actions/requests/active", {}),
        ("GET", "/v1/integrate/devices/actions/requests/archived", {}),
        ("DELETE", "/v1/integrate/devices/actions/requests/{requestId}", {
            "path": "/v1/integrate/devices/actions/requests/{request}"}),
        ("DELETE", "/v1/integrate/devices/{deviceId}/actions/requests", {
            "path": f"/v1/integrate/devices/{iccid}/actions/requests"}),
        ("POST", "/v1/optimize/templates", {"json": {"name": "t", "template": TEMPLATE, "protocolFilter": ["UDP"]}}),
        ("GET", "/v1/optimize/templates", {}),
        ("PATCH", "/v1/optimize/templates/{templateId}", {"path": "/v1/optimize/templates/{template}",
                                                          "json": {"status": "ACTIVE"}}),
        ("POST", "/v1/optimize/messages/test", {"json": {"template": TEMPLATE, "payload": "AQ=="}}),
        ("GET", "/v1/optimize/savings", {"params": {"range": "7"}}),
        ("DELETE", "/v1/optimize/templates/{templateId}", {"path": "/v1/optimize/templates/{template}"}),
        ("POST", "/v1/integrate/clouds/webhooks", {"json": {
            "name": "contract", "url": receiver_url, "headers": {"X-Key": "k"}, "jsonPayloadEnabled": True,
            "eventTypes": [{"type": "TELEMETRY_DATA", "version": "1.0.0"}]}}),
        ("GET", "/v1/integrate/clouds", {}),
        ("GET", "/v1/integrate/clouds/eventTypes", {}),
        ("GET", "/v1/integrate/clouds/{integrationId}", {"path": "/v1/integrate/clouds/{webhook}"}),
        ("PATCH", "/v1/integrate/clouds/{integrationId}", {"path": "/v1/integrate/clouds/{webhook}",
                                                           "json": {"headers": {"X-Key": "k2"}}}),
        ("PATCH", "/v1/integrate/clouds/webhooks/{integrationId}", {
            "path": "/v1/integrate/clouds/webhooks/{webhook}", "json": {"headers": {"X-Key": "k3"}}}),
        ("POST", "/v1/integrate/clouds/webhooks/{integrationId}/test", {
            "path": "/v1/integrate/clouds/webhooks/{webhook}/test"}),
        ("POST", "/v1/integrate/clouds/webhooks/{integrationId}/restart", {
            "path": "/v1/integrate/clouds/webhooks/{webhook}/restart"}),
        ("DELETE", "/v1/integrate/clouds/{integrationId}", {"path": "/v1/integrate/clouds/{webhook}"}),
        ("POST", "/v1/integrate/clouds/aws", {"json": {"name": "aws", "eventTypes": [{"type": "LIFECYCLE"}]}}),
        ("POST", "/v1/integrate/clouds/aws/{integrationId}/test", {
            "path": "/v1/integrate/clouds/aws/{aws}/test", "status": 409}),  # no connection yet: documented 409
        ("POST", "/v1/integrate/clouds/aws/{integrationId}/restart", {
            "path": "/v1/integrate/clouds/aws/{aws}/restart", "status": 409}),
        ("GET", "/v1/integrate/clouds/aws/parameters", {}),
        ("GET", "/v1/settings/1nceos", {}),
        ("PATCH", "/v1/settings/1nceos/{name}", {"path": "/v1/settings/1nceos/CELL_TOWER_LOCATION",
                                                 "json": {"state": "DISABLED"}}),
        ("POST", "/v1/agreements/1nceos", {"json": {"accepted": True}}),
        ("GET", "/v1/partners/plugins", {}),
        ("GET", "/v1/partners/plugins/{pluginId}", {"path": "/v1/partners/plugins/{plugin}"}),
        ("POST", "/v1/partners/plugins/{pluginId}/restart", {"path": "/v1/partners/plugins/{plugin}/restart"}),
        ("DELETE", "/v1/partners/plugins/{pluginId}", {"path": "/v1/partners/plugins/{plugin}"}),
        ("GET", "/v1/locate/devices/{deviceId}/positions", {"path": f"/v1/locate/devices/{iccid}/positions"}),
        ("GET", "/v1/locate/positions/latest", {}),
        ("GET", "/v1/locate/devices/{deviceId}/activity", {"path": f"/v1/locate/devices/{iccid}/activity"}),
        ("GET", "/v1/devices/stats", {}),
        ("POST", "/v1/locate/geofences", {"json": {"name": "depot", "type": "circle", "radius": 1000,
                                                   "center": [13.4, 52.5], "deviceId": iccid}}),
        ("GET", "/v1/locate/geofences", {}),
        ("GET", "/v1/locate/geofences/{geofenceId}", {"path": "/v1/locate/geofences/{geofence}"}),
        ("PATCH", "/v1/locate/geofences/{geofenceId}", {"path": "/v1/locate/geofences/{geofence}",
                                                        "json": {"name": "yard"}}),
        ("DELETE", "/v1/locate/geofences/{geofenceId}", {"path": "/v1/locate/geofences/{geofence}"}),
        ("GET", "/v1/administrationLogs", {}),
        ("GET", "/v1/administrationLogs/stats", {"params": {"timezone": "UTC"}}),
        ("GET", "/v1/administrationLogs/{adminLogId}/payload", {"path": "/v1/administrationLogs/{log}/payload"}),
        ("GET", "/v1/users", {}),
    ]


async def test_every_implemented_operation_answers_valid_input_as_documented(start_gateway, tmp_path, receiver,
                                                                            ca_file):
    config = make_config(tmp_path, api={"webhook_ca_file": ca_file, "test_timeout_seconds": 5})
    device = dataclasses.replace(sim(10), msisdn="882285000000010")
    api = await start_api(start_gateway, config, [device, sim(11)], roles=("Owner",))
    owner = api.client("Owner")  # checks every answer against the document (tests/api_support.check_response)
    calls = valid_calls(sim(10).iccid, sim(11).iccid, receiver.url + "/contract")
    implemented = {(m.upper(), p) for p, item in document()["paths"].items() for m in item}
    reference = {(m, p) for _, m, p, _ in reference_operations()}
    called = {(m, p) for m, p, _ in calls}
    missing = (reference & implemented) - called
    assert not missing, f"add a valid call for {sorted(missing)}"
    assert reference - implemented <= NOT_OFFERED, sorted(reference - implemented)
    ids: dict[str, str] = {}
    for method, template, request in calls:
        if (method, template) not in implemented:
            continue
        path = request.get("path", template).format(**ids)
        if request.get("basic"):
            answer = await owner.login(EMAILS["Owner"])
        else:
            answer = await owner.request(method, path, json=request.get("json"), params=request.get("params"))
        expected = request.get("status")
        if "{plugin}" in request.get("path", "") and ids["plugin"] == "none":
            expected = 404  # no plugin installed (.ci/run installs examples/plugins/kv_codec)
        assert (answer.status == expected) if expected else 200 <= answer.status < 300, (
            method, path, answer.status, answer.raw[:500])
        body = answer.body if answer.raw and answer.headers.get("Content-Type", "").startswith("application/json") else None
        if template == "/v1/integrate/devices/{deviceId}/actions/LWM2M":
            ids["request"] = body["id"]
        elif template == "/v1/optimize/templates" and method == "POST":
            ids["template"] = body["id"]
        elif template == "/v1/integrate/clouds/webhooks" and method == "POST":
            ids["webhook"] = body["id"]
        elif template == "/v1/integrate/clouds/aws" and method == "POST":
            ids["aws"] = body["id"]
        elif template == "/v1/partners/plugins":
            ids["plugin"] = body["items"][0]["id"] if body["items"] else "none"
        elif template == "/v1/locate/geofences" and method == "POST":
            ids["geofence"] = body["id"]
        elif template == "/v1/administrationLogs":
            ids["log"] = body["items"][0]["id"]
