"""The API's contract: 501 for every 1NCE route not implemented, the served OpenAPI document,
the route-registration hook for features, and a schemathesis run finding no server error."""

from __future__ import annotations

import asyncio
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
from tests.api_support import ContractError, check_response, document, start_api
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
        ApiRoute("GET", "/v1/partners/plugins", list_templates, READ, spec="1nce-os"),
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
    answer = await owner.get("/v1/partners/plugins")
    assert answer.status == 200 and answer.body == []
    anonymous = api.client()
    anonymous.check = False
    assert (await anonymous.get("/v1/partners/plugins")).status == 401
    # parameters validated against the 1NCE operation
    fences = await owner.get("/v1/locate/geofences", params={"page": 3})
    assert fences.status == 200 and (fences.body["page"], fences.body["size"]) == (3, 10)
    bad = await owner.get("/v1/locate/geofences", params={"pageSize": "many"})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "pageSize"
    assert (await owner.get("/v1/locate/geofences", params={"page": 51})).status == 400
    assert (await user.get("/v1/admin-only")).status == 403
    # still a stub: a route nobody registered
    assert (await owner.post("/v1/sims/simTransfer", json={})).status == 501
    served = (await owner.get("/openapi.json")).body
    assert "get" in served["paths"]["/v1/partners/plugins"] and "/v1/admin-only" in served["paths"]
    assert "GET /v1/partners/plugins" not in served["x-nce-not-implemented"]
    assert "POST /v1/sims/simTransfer" in served["x-nce-not-implemented"]


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
