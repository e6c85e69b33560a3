"""Account integrity (issue 19, items 10 and 11): the role policy is checked on the row that is
written, and a new account never inherits a deleted one's id or tokens."""

from __future__ import annotations

import asyncio
import sqlite3

from gateway import accounts
from inspector import accounts as store_accounts
from inspector.schema import migrations
from inspector.sqlite import SqliteStore, _split_sql
from tests.api_support import EMAILS, ApiClient, add_user, start_api
from tests.conftest import make_config


async def test_admin_cannot_reset_a_password_of_a_user_promoted_meanwhile(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path))
    owner, admin = api.client("Owner"), api.client("Admin")
    auth = api.gateway.api_auth
    # hold the password thread so the Admin's request waits between its policy check and its write
    gate = asyncio.Event()
    blocker = asyncio.ensure_future(auth.checks.run("test", _wait_for, gate, asyncio.get_running_loop(),
                                                    capped=False))
    await asyncio.sleep(0.05)
    reset = asyncio.ensure_future(admin.patch(f"/v1/users/{EMAILS['User']}", json={"password": "the admin's own pw"}))
    await asyncio.sleep(0.2)  # the Admin's request checked User -> may, and waits for hashing
    promoted = await owner.patch(f"/v1/users/{EMAILS['User']}", json={"role": "Owner"})
    assert promoted.status == 200 and promoted.body["role"] == "Owner"
    gate.set()
    await blocker
    answer = await reset
    assert answer.status == 403, answer.body
    assert "cannot change a user of role Owner" in answer.body["errors"][0]["message"]
    # the new Owner's password is unchanged: the Admin cannot log in as an Owner
    assert (await api.client().login(EMAILS["User"], "the admin's own pw")).status == 400
    assert (await api.client().login(EMAILS["User"])).status == 200


def _wait_for(gate: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(10)


def test_policy_callback_runs_inside_the_write(tmp_path):
    store = SqliteStore(tmp_path / "g.db")
    store_accounts.create_account(store, "own@example.com", "h", "Owner")
    store_accounts.create_account(store, "u@example.com", "h", "User")
    seen = []

    def allowed(current: store_accounts.Account) -> None:
        seen.append(current.role)
        accounts.check_change("Admin", current.role, None)

    store_accounts.update_account(store, "u@example.com", role="Owner")
    try:
        store_accounts.update_account(store, "u@example.com", password_hash="new", allowed=allowed)
    except accounts.PolicyError:
        pass
    else:
        raise AssertionError("the Admin changed an Owner")
    assert seen == ["Owner"]
    assert store_accounts.get_account(store, "u@example.com").password_hash == "h"


async def test_a_new_account_does_not_inherit_a_deleted_accounts_tokens(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), roles=("Owner", "Admin"))
    gateway = api.gateway
    admin_token = api.token("Admin")
    assert (await ApiClient(api.base, admin_token).get("/v1/users")).status == 200
    old = api.users["Admin"]
    # the account is deleted (there is no API for it: an operator with the store file)
    await gateway.committer.write(lambda: gateway.store.connection().execute(
        "DELETE FROM api_users WHERE id = ?", (old.id,)))
    await gateway.api_auth.reload()
    assert (await ApiClient(api.base, admin_token).get("/v1/users")).status == 401
    # a new account gets a new id, and even one with the old id and name would not take the token
    again = await add_user(gateway, EMAILS["Admin"], "Admin")
    assert again.id > old.id
    assert (await ApiClient(api.base, admin_token).get("/v1/users")).status == 401
    await gateway.committer.write(lambda: gateway.store.connection().execute(
        "UPDATE api_users SET id = ? WHERE id = ?", (old.id, again.id)))
    await gateway.api_auth.reload()
    refused = await ApiClient(api.base, admin_token).get("/v1/users")
    assert refused.status == 401 and "no longer exists" in refused.body["errors"][0]["message"]
    # a token of the new account works
    fresh = gateway.api_auth.issue(gateway.api_auth.user_by_id(old.id))[0]
    assert (await ApiClient(api.base, fresh).get("/v1/users")).status == 200


def test_migration_keeps_ids_and_never_reuses_them(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    for name, script in migrations():
        if name >= "0030":
            break
        for statement in _split_sql(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    for i, name in ((1, "a@example.com"), (2, "b@example.com"), (3, "c@example.com")):
        conn.execute("INSERT INTO api_users (id, username, password_hash, role, created_ms, updated_ms)"
                     " VALUES (?, ?, 'h', 'Owner', 1, 1)", (i, name))
    conn.execute("INSERT INTO api_revoked_tokens VALUES ('j', 7, 9999999999999, 1)")  # a user 7 existed once
    conn.execute("DELETE FROM api_users WHERE id = 3")
    conn.close()
    store = SqliteStore(path)
    assert [(a.id, a.username) for a in store_accounts.all_accounts(store)] == [(1, "a@example.com"),
                                                                               (2, "b@example.com")]
    created = store_accounts.create_account(store, "d@example.com", "h", "User")
    assert created.id == 8
    version = store_accounts.accounts_version(store)
    store.connection().execute("DELETE FROM api_users WHERE id = 8")
    assert store_accounts.create_account(store, "e@example.com", "h", "User").id == 9
    assert store_accounts.accounts_version(store) == version + 2  # the triggers came back
