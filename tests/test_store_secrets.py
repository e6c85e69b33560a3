"""Secrets encrypted at rest with NCE_SECRETS_KEY or [store] secrets_key_file (issue 19, item 8)."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from gateway.cli import main as cli
from gateway.config import ConfigError, load_config
from inspector import accounts as store_accounts
from inspector.secretbox import MARK, new_key
from inspector.sqlite import SqliteStore, StoreError
from tests.api_support import ApiClient, start_api
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post

DEVICE = sim(15)
HEADER_SECRET = "Bearer header-secret-31337"
PSK = b"0123456789abcdef"


def _raw(path) -> dict:
    """The secret columns as stored on disk (read without the gateway's code)."""
    conn = sqlite3.connect(path)
    try:
        return {"psks": [bytes(r[0]) for r in conn.execute("SELECT key FROM psks")],
                "signing": [bytes(r[0]) for r in conn.execute("SELECT secret FROM api_signing_keys")],
                "configs": [r[0] for r in conn.execute("SELECT config FROM integrations")]}
    finally:
        conn.close()


async def test_a_gateway_with_a_key_keeps_secrets_sealed(start_gateway, tmp_path, receiver, ca_file, monkeypatch):
    monkeypatch.setenv("NCE_SECRETS_KEY", new_key())
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file, event_types=["TELEMETRY_DATA"],
                                                     headers={"Authorization": HEADER_SECRET})])
    api = await start_api(start_gateway, config, [DEVICE], roles=("Owner",))
    gateway = api.gateway
    await gateway.committer.write(gateway.store.set_psk, DEVICE.iccid, "coaps", PSK, True)
    # everything works as without a key: tokens, delivery with the header, the PSK
    login = await api.client().login("owner@example.com")
    assert login.status == 200
    assert (await ApiClient(api.base, login.body["access_token"]).get("/v1/sims")).status == 200
    assert (await coap_post(gateway.coap_port, DEVICE.ip_address, b"x")).code == "2.04"
    await receiver.wait_for(1)
    assert receiver.requests[0][1]["Authorization"] == HEADER_SECRET
    assert [k for i, p, k, _, _ in gateway.store.all_psks() if i == DEVICE.iccid] == [PSK]
    # on disk every secret is sealed
    raw = _raw(config.store.path)
    assert raw["psks"] and all(k.startswith(MARK) and PSK not in k for k in raw["psks"])
    assert raw["signing"] and all(s.startswith(MARK) and len(s) > 60 for s in raw["signing"])
    (stored,) = raw["configs"]
    assert HEADER_SECRET not in stored
    assert json.loads(stored)["headers"]["Authorization"].startswith(MARK.decode())
    # another gateway with the same key opens it; without the key or with another one it refuses
    path = config.store.path
    assert SqliteStore(path, secrets_key=os.environ["NCE_SECRETS_KEY"]).all_psks()
    with pytest.raises(StoreError, match="holds encrypted secrets: set NCE_SECRETS_KEY"):
        SqliteStore(path)
    with pytest.raises(StoreError, match="does not open the store's secrets"):
        SqliteStore(path, secrets_key=new_key())


def test_plain_secrets_are_sealed_when_a_key_is_set(tmp_path):
    path = tmp_path / "g.db"
    store = SqliteStore(path)
    store.set_psk(DEVICE.iccid, "coaps", PSK, True)
    store_accounts.ensure_signing_key(store)
    store.upsert_integration(uuid="u", name="h", kind="webhook", origin="api",
                             config={"url": "https://x", "headers": {"X-Key": "k"}}, state="ROLLOUT_DONE")
    signing = store_accounts.signing_keys(store)
    assert _raw(path)["psks"] == [PSK]  # plain without a key
    store.close()
    key = new_key()
    sealed = SqliteStore(path, secrets_key=key)
    raw = _raw(path)
    assert all(v.startswith(MARK) for v in raw["psks"] + raw["signing"])
    assert '"k"' not in raw["configs"][0]
    assert sealed.all_psks()[0][2] == PSK and store_accounts.signing_keys(sealed) == signing
    assert sealed.list_integrations()[0]["config"]["headers"] == {"X-Key": "k"}


def test_key_from_a_file_and_bad_keys(tmp_path):
    key_file = tmp_path / "secrets.key"
    key_file.write_text(new_key() + "\n")
    config = load_config(environ={})
    config.store.secrets_key_file = str(key_file)
    assert config.store.secrets_key(environ={}) == key_file.read_text().strip()
    assert config.store.secrets_key(environ={"NCE_SECRETS_KEY": "from-env"}) == "from-env"
    config.store.secrets_key_file = str(tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="store.secrets_key_file: cannot read"):
        config.store.secrets_key(environ={})
    with pytest.raises(StoreError, match="32 bytes in URL-safe base64"):
        SqliteStore(tmp_path / "g.db", secrets_key="not a key")


def test_cli_prints_a_key_and_reports_a_missing_one(tmp_path, capsys, monkeypatch):
    assert cli(["secrets-key"]) == 0
    key = capsys.readouterr().out.strip()
    SqliteStore(tmp_path / "probe.db", secrets_key=key)  # a usable key
    config_file = tmp_path / "g.toml"
    config_file.write_text(f'[store]\npath = "{tmp_path / "g.db"}"\n')
    monkeypatch.setenv("NCE_SECRETS_KEY", key)
    store = SqliteStore(tmp_path / "g.db", secrets_key=key)
    store_accounts.ensure_signing_key(store)
    assert cli(["users", "list", "-c", str(config_file)]) == 0
    capsys.readouterr()
    monkeypatch.delenv("NCE_SECRETS_KEY")
    assert cli(["users", "list", "-c", str(config_file)]) == 1
    assert "holds encrypted secrets: set NCE_SECRETS_KEY" in capsys.readouterr().err
