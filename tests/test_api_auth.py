"""Management API authentication: token flow, expiry, revocation, bad logins, throttling, CLI users."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import aiohttp
import pytest

from gateway.cli import main as cli
from tests.api_support import EMAILS, PASSWORD, ApiClient, basic, start_api, write_password_file
from tests.conftest import make_config


async def test_token_flow(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path))
    client = api.client()
    answer = await client.login(EMAILS["Owner"])
    assert answer.status == 200
    body = answer.body
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["status_code"] == 200
    assert body["userId"] == "owner@example.com" and body["scope"] == "all"
    assert answer.headers["Cache-Control"] == "no-store"
    header, claims, _ = body["access_token"].split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) ["alg"] == "HS256"
    assert json.loads(base64.urlsafe_b64decode(claims + "=="))["sub"] == "owner@example.com"
    me = await ApiClient(api.base, body["access_token"]).get("/v1/users/me")
    assert me.status == 200 and me.body["role"] == "Owner" and "lastLoginTime" in me.body
    # the API role's scope says what it is; user names are not case sensitive
    api_login = await client.login("API@Example.com")
    assert api_login.status == 200 and api_login.body["scope"] == "api"
    assert api_login.body["userId"] == "api@example.com"
    # form-encoded, as generic OAuth2 clients send it
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api.base}/oauth/token", data={"grant_type": "client_credentials"},
                                headers=basic(EMAILS["User"], PASSWORD)) as response:
            assert response.status == 200 and (await response.json())["scope"] == "user"


async def test_bad_logins_answer_as_1nce(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner",))
    client = api.client()
    wrong = await client.login(EMAILS["Owner"], "not the password")
    unknown = await client.login("nobody@example.com", PASSWORD)
    assert wrong.status == unknown.status == 400
    assert wrong.body == unknown.body  # no user enumeration
    assert wrong.body["errorCode"] == "BadCredentials"
    no_auth = await client.post("/oauth/token", token=None, json={"grant_type": "client_credentials"})
    assert no_auth.status == 400 and no_auth.body["errorCode"] == "AuthValidationError"
    no_password = await client.post("/oauth/token", token=None, json={"grant_type": "client_credentials"},
                                    headers={"Authorization": "Basic " + base64.b64encode(b"owner@x.com:").decode()})
    assert no_password.status == 400 and "'password'" in no_password.body["message"]
    no_grant = await client.post("/oauth/token", token=None, json={},
                                 headers=basic(EMAILS["Owner"], PASSWORD))
    assert no_grant.status == 400 and no_grant.body["errorCode"] == "BodyValidationError"
    assert "grant_type" in no_grant.body["message"]
    other_grant = await client.post("/oauth/token", token=None, json={"grant_type": "password"},
                                    headers=basic(EMAILS["Owner"], PASSWORD))
    assert other_grant.status == 400 and other_grant.body["errorCode"] == "BodyValidationError"
    xml = await client.post("/oauth/token", token=None, data=b"<x/>",
                            headers={"Content-Type": "application/xml", **basic(EMAILS["Owner"], PASSWORD)})
    assert xml.status == 400 and xml.body["errorCode"] == "UnsupportedContentTypeError"


async def test_bearer_required_everywhere_with_challenge(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner",))
    anonymous = ApiClient(api.base)
    for path in ("/v1/sims", "/v1/inspect/devices", "/openapi.json", "/v1/users/me", "/v1/sims/limits"):
        answer = await anonymous.get(path)
        assert answer.status == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="nce-gateway"'
        assert answer.body["statusText"] == "Unauthorized"
    garbage = await ApiClient(api.base, "not.a.token").get("/v1/sims")
    assert garbage.status == 401 and 'error="invalid_token"' in garbage.headers["WWW-Authenticate"]
    basic = await anonymous.get("/v1/sims", headers={"Authorization": "Basic b3duZXI6eA=="})
    assert basic.status == 401 and 'error="invalid_request"' in basic.headers["WWW-Authenticate"]
    # a token signed with another key (another gateway) is refused
    token = api.token("Owner")
    header, claims, signature = token.split(".")
    forged_claims = base64.urlsafe_b64encode(json.dumps({**json.loads(base64.urlsafe_b64decode(claims + "==")),
                                                         "uid": 999}).encode()).rstrip(b"=").decode()
    forged = await ApiClient(api.base, f"{header}.{forged_claims}.{signature}").get("/v1/sims")
    assert forged.status == 401 and "signature" in forged.body["errors"][0]["message"]
    # the operational endpoints stay open
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{api.gateway.api_port}/health") as response:
            assert response.status == 200


async def test_expiry_with_injected_clock(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path, api={"token_ttl_seconds": 60}), roles=("User",))
    token = api.token("User")
    client = ApiClient(api.base, token)
    assert (await client.get("/v1/sims")).status == 200
    auth = api.gateway.api_auth
    auth.clock = lambda: time.time() + 55  # expiry is whole seconds: keep a margin
    assert (await client.get("/v1/sims")).status == 200
    auth.clock = lambda: time.time() + 61
    expired = await client.get("/v1/sims")
    assert expired.status == 401 and "expired" in expired.body["errors"][0]["message"]
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]


async def test_revocation(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path))
    user_token, other_user_token = api.token("User"), api.token("User")
    user = ApiClient(api.base, user_token)
    # revoke your own token: it stops working at once, others of the same user keep working
    answer = await user.post("/oauth/revoke")
    assert answer.status == 200 and answer.body["revoked"] is True
    assert (await user.get("/v1/sims")).status == 401
    assert (await ApiClient(api.base, other_user_token).get("/v1/sims")).status == 200
    # an API user cannot revoke the Admin's token; the Owner can revoke anyone's
    admin_token = api.token("Admin")
    refused = await api.client("API").post("/oauth/revoke", json={"token": admin_token})
    assert refused.status == 403
    assert (await ApiClient(api.base, admin_token).get("/v1/sims")).status == 200
    done = await api.client("Owner").post("/oauth/revoke", json={"token": admin_token})
    assert done.status == 200 and done.body["revoked"]
    assert (await ApiClient(api.base, admin_token).get("/v1/sims")).status == 401
    # a foreign token is not an error (RFC 7009)
    foreign = await api.client("Owner").post("/oauth/revoke", json={"token": "abc.def.ghi"})
    assert foreign.status == 200 and foreign.body["revoked"] is False
    # revocations are in the store: a restarted gateway still refuses the token
    await api.gateway.stop()
    again = await start_gateway(api.gateway.config)
    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{again.api_port}/management-api"
        async with session.get(f"{base}/v1/sims", headers={"Authorization": f"Bearer {user_token}"}) as r:
            assert r.status == 401
        async with session.get(f"{base}/v1/sims", headers={"Authorization": f"Bearer {other_user_token}"}) as r:
            assert r.status == 200  # same signing key after a restart


async def test_disabled_user_and_password_change(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path))
    user_token = api.token("User")
    owner = api.client("Owner")
    assert (await owner.patch("/v1/users/user@example.com", json={"status": "Disabled"})).status == 200
    assert (await ApiClient(api.base, user_token).get("/v1/sims")).status == 401
    disabled = await api.client().login(EMAILS["User"])
    assert disabled.status == 400 and disabled.body["errorCode"] == "BadCredentials"
    assert "disabled" in disabled.body["message"]
    assert (await owner.patch("/v1/users/user@example.com", json={"status": "Enabled"})).status == 200
    assert (await ApiClient(api.base, user_token).get("/v1/sims")).status == 401  # old tokens stay dead
    assert (await api.client().login(EMAILS["User"])).status == 200
    # a new password: old tokens stop working, the old password too
    api_token = api.token("API")
    changed = await owner.patch("/v1/users/api@example.com", json={"password": "a brand new password"})
    assert changed.status == 200
    assert (await ApiClient(api.base, api_token).get("/v1/sims")).status == 401
    assert (await api.client().login(EMAILS["API"])).status == 400
    assert (await api.client().login(EMAILS["API"], "a brand new password")).status == 200


async def test_login_throttling(start_gateway, tmp_path):
    config = make_config(tmp_path, api={"login_max_failures_per_user": 2, "login_max_failures_per_ip": 4,
                                        "login_window_seconds": 60})
    api = await start_api(start_gateway, config, roles=("Owner", "User"))
    client = api.client()
    for _ in range(2):
        assert (await client.login(EMAILS["Owner"], "wrong password!")).status == 400
    started = time.perf_counter()
    blocked = await client.login(EMAILS["Owner"])  # even the right password: no check at all
    assert time.perf_counter() - started < 0.2
    assert blocked.status == 429 and blocked.body["errorCode"] == "TooManyRequests"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # another user from the same address still gets in, until the address is over its limit
    assert (await client.login(EMAILS["User"])).status == 200
    for _ in range(2):
        assert (await client.login("nobody@example.com", "x" * 12)).status == 400
    assert (await client.login(EMAILS["User"])).status == 429  # 4 failures from this address
    # the window passes
    limiter = api.gateway.api_auth.limiter
    limiter.clock = lambda: time.monotonic() + 61
    assert (await client.login(EMAILS["Owner"])).status == 200


async def test_cli_users_reach_the_running_gateway(start_gateway, tmp_path, capsys):
    config_file = tmp_path / "g.toml"
    config = make_config(tmp_path)
    config_file.write_text(f'[store]\npath = "{config.store.path}"\n')
    password_file = write_password_file(tmp_path)
    assert cli(["users", "create-owner", "Boss@Example.com", "--password-file", password_file,
                "-c", str(config_file)]) == 0
    assert "created boss@example.com (Owner)" in capsys.readouterr().out
    gateway = await start_gateway(config)
    client = ApiClient(f"http://127.0.0.1:{gateway.api_port}/management-api")
    login = await client.login("boss@example.com")
    assert login.status == 200
    boss = ApiClient(client.base, login.body["access_token"])
    # created by the CLI while the gateway runs: logs in at once
    assert await asyncio.to_thread(cli, ["users", "add", "ops@example.com", "--role", "API",
                                         "--password-file", password_file, "-c", str(config_file)]) == 0
    ops_login = await client.login("ops@example.com")
    assert ops_login.status == 200
    ops = ApiClient(client.base, ops_login.body["access_token"])
    assert (await ops.get("/v1/sims")).status == 200
    # disabled by the CLI: its token stops working within the poll interval
    assert await asyncio.to_thread(cli, ["users", "disable", "ops@example.com", "-c", str(config_file)]) == 0
    for _ in range(50):
        if (await ops.get("/v1/sims")).status == 401:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the disabled user's token still works")
    assert await asyncio.to_thread(cli, ["users", "set-role", "ops@example.com", "Admin", "-c", str(config_file)]) == 0
    assert await asyncio.to_thread(cli, ["users", "list", "--format", "json", "-c", str(config_file)]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 3)[-1])
    assert {u["userId"]: (u["role"], u["status"]) for u in listed} == {
        "boss@example.com": ("Owner", "Enabled"), "ops@example.com": ("Admin", "Disabled")}
    # the last enabled Owner stays
    assert await asyncio.to_thread(cli, ["users", "disable", "boss@example.com", "-c", str(config_file)]) == 1
    assert "last enabled Owner" in capsys.readouterr().err
    assert (await boss.get("/v1/users")).status == 200


async def test_signing_key_is_never_logged(start_gateway, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner",))
    login = await api.client().login(EMAILS["Owner"])
    token = login.body["access_token"]
    secret = api.gateway.store.connection().execute("SELECT secret FROM api_signing_keys").fetchone()[0]
    logged = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert secret.hex() not in logged and base64.b64encode(secret).decode() not in logged
    assert token not in logged and PASSWORD not in logged
    assert "login" in logged
