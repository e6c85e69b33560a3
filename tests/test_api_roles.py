"""Roles against route classes (SPEC §7): 401 without a token, 403 for a role that may not,
and a refused call changes nothing."""

from __future__ import annotations

import re

import pytest

from gateway.api.routes import ACCESS_ROLES, stub_access
from tests.api_support import EMAILS, ROLES, ApiClient, document, start_api
from tests.conftest import make_config, sim

ICCID = sim(10).iccid

# one representative call per access class, and who may make it
CLASSES = {
    "read": ("GET", "/v1/sims", None),
    "manage": ("PUT", f"/v1/sims/{ICCID}", {"iccid": ICCID, "status": "Enabled", "label": "changed"}),
    "integrate": ("DELETE", "/v1/integrate/clouds/no-such-integration", None),  # 404 for those who may
    "users": ("GET", "/v1/users", None),
    "purchase": ("POST", "/v1/sims/topup", [ICCID]),
    "any": ("GET", "/v1/users/me", None),
}
EXPECTED = {  # role -> class -> status
    "Owner": {"read": 200, "manage": 200, "integrate": 404, "users": 200, "purchase": 201, "any": 200},
    "Admin": {"read": 200, "manage": 200, "integrate": 404, "users": 200, "purchase": 201, "any": 200},
    "User": {"read": 200, "manage": 200, "integrate": 403, "users": 403, "purchase": 403, "any": 200},
    "API": {"read": 200, "manage": 200, "integrate": 403, "users": 403, "purchase": 403, "any": 200},
    None: {"read": 401, "manage": 401, "integrate": 401, "users": 401, "purchase": 401, "any": 401},
}


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), [sim(10), sim(11)])


async def test_role_table(api):
    for role, expected in EXPECTED.items():
        client = api.client(role) if role else ApiClient(api.base)
        for access, (method, path, body) in CLASSES.items():
            answer = await client.request(method, path, json=body)
            assert answer.status == expected[access], (role, access, answer.status, answer.body)
    # the table above is the one the code enforces
    for role, expected in EXPECTED.items():
        if role is None:
            continue
        for access, status in expected.items():
            assert (role in ACCESS_ROLES[access]) == (status not in (401, 403)), (role, access)


def _fill(path: str) -> str:
    values = {"iccid": "8988280666000000099", "deviceId": "8988280666000000099", "integrationId": "no-such-id",
              "userId": "nobody@example.com", "protocol": "COAP", "requestId": "r1", "templateId": "t1",
              "geofenceId": "g1", "pluginId": "p1", "adminLogId": "a1", "service": "data", "name": "x", "id": "1"}
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x"), path)


async def test_every_route_checks_token_and_role(api):
    doc = document()
    routes = [(m.upper(), p, op["x-nce-roles"]) for p, item in doc["paths"].items() for m, op in item.items()]
    for entry in doc["x-nce-not-implemented"]:
        method, path = entry.split(" ", 1)
        access = stub_access(method, path)
        routes.append((method, path, sorted(ACCESS_ROLES.get(access, ROLES))))
    assert len(routes) > 100
    anonymous = ApiClient(api.base)
    clients = {role: api.client(role) for role in ROLES}
    for method, path, roles in routes:
        if path in ("/oauth/token", "/oauth/revoke"):
            continue  # public; revoking would end the test's tokens (tested in test_api_auth)
        url = _fill(path)
        answer = await anonymous.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert answer.status == 401, (method, path, answer.status)
        for role, client in clients.items():
            answer = await client.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
            if role in roles:
                assert answer.status not in (401, 403), (role, method, path, answer.body)
            else:
                assert answer.status == 403, (role, method, path, answer.status)
                assert answer.body["statusText"] == "Forbidden"


async def _users(api) -> dict[str, tuple[str, str]]:
    listed = await api.client("Owner").get("/v1/users")
    return {u["userId"]: (u["role"], u["status"]) for u in listed.body}


async def test_user_administration_rules(api):
    owner, admin, user, script = (api.client(r) for r in ROLES)
    before = await _users(api)
    new_user = {"userId": "new@example.com", "password": "long enough password", "role": "User"}
    # User and API: no user administration at all, and nothing changes
    for client in (user, script):
        assert (await client.post("/v1/users", json=new_user)).status == 403
        assert (await client.patch(f"/v1/users/{EMAILS['Admin']}", json={"role": "User"})).status == 403
        assert (await client.patch(f"/v1/users/{EMAILS['User']}", json={"status": "Disabled"})).status == 403
        assert (await client.get("/v1/users")).status == 403
    assert await _users(api) == before
    # Admin: assigns User only, changes Users only
    for role in ("Owner", "Admin", "API"):
        refused = await admin.post("/v1/users", json={**new_user, "role": role})
        assert refused.status == 403 and role in refused.body["errors"][0]["message"]
    assert (await admin.patch(f"/v1/users/{EMAILS['User']}", json={"role": "Admin"})).status == 403
    assert (await admin.patch(f"/v1/users/{EMAILS['API']}", json={"status": "Disabled"})).status == 403
    assert (await admin.patch(f"/v1/users/{EMAILS['Owner']}", json={"password": "taken over now!"})).status == 403
    assert (await admin.patch(f"/v1/users/{EMAILS['Admin']}", json={"role": "Owner"})).status == 403
    assert await _users(api) == before
    created = await admin.post("/v1/users", json=new_user)
    assert created.status == 201 and created.body["role"] == "User" and created.body["userId"] == "new@example.com"
    assert (await admin.post("/v1/users", json=new_user)).status == 409
    assert (await admin.patch("/v1/users/new@example.com", json={"status": "Disabled"})).status == 200
    assert (await admin.patch("/v1/users/new@example.com", json={"role": "User", "status": "Enabled"})).status == 200
    # Owner: every role; but the last enabled Owner stays
    promoted = await owner.patch(f"/v1/users/{EMAILS['API']}", json={"role": "Admin"})
    assert promoted.status == 200 and promoted.body["role"] == "Admin"
    last = await owner.patch(f"/v1/users/{EMAILS['Owner']}", json={"role": "Admin"})
    assert last.status == 409 and "last enabled Owner" in last.body["errors"][0]["message"]
    assert (await owner.patch(f"/v1/users/{EMAILS['Owner']}", json={"status": "Disabled"})).status == 409
    assert (await owner.patch(f"/v1/users/{EMAILS['Admin']}", json={"role": "Owner"})).status == 200
    assert (await owner.patch(f"/v1/users/{EMAILS['Owner']}", json={"role": "User"})).status == 200
    new_owner = api.client("Admin")  # the former Admin is Owner now (the old Owner is a User)
    listed = await new_owner.get("/v1/users")
    after = {u["userId"]: u["role"] for u in listed.body}
    assert after == {"owner@example.com": "User", "admin@example.com": "Owner", "user@example.com": "User",
                     "api@example.com": "Admin", "new@example.com": "User"}
    # the demoted Owner's token now has User rights
    assert (await owner.get("/v1/users")).status == 403


async def test_user_validation(api):
    owner = api.client("Owner")
    short = await owner.post("/v1/users", json={"userId": "a@b.c", "password": "short", "role": "User"})
    assert short.status == 400 and short.body["errors"][0]["field"] == "password"
    bad_email = await owner.post("/v1/users", json={"userId": "not-an-email", "password": "long enough pw",
                                                    "role": "User"})
    assert bad_email.status == 400 and bad_email.body["errors"][0]["field"] == "userId"
    bad_role = await owner.post("/v1/users", json={"userId": "x@y.z", "password": "long enough pw", "role": "King"})
    assert bad_role.status == 400 and bad_role.body["errors"][0]["field"] == "role"
    extra = await owner.patch(f"/v1/users/{EMAILS['User']}", json={"admin": True})
    assert extra.status == 400 and extra.body["errors"][0]["field"] == "admin"
    assert (await owner.get("/v1/users/nobody@example.com")).status == 404
    assert (await owner.patch("/v1/users/nobody@example.com", json={"status": "Disabled"})).status == 404
    assert (await owner.get(f"/v1/users/{EMAILS['User'].upper()}")).status == 200
