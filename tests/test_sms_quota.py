"""One SMS counter: MT SMS (API, CLI) and MO SMS (from smpp34's SMSC) count against the
connectivity SMS quota and the monthly MT-SMS/MO-SMS limits (gateway/connectivity/quota.py);
refusals are a 1NCE-shaped 422 for the API and ESME_RX_R_APPN for the SMSC; SMS show in /usage."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from datetime import datetime, timezone

import pytest

from gateway.cli import main as cli
from gateway.config import ConfigError, load_config
from gateway.connectivity import quota
from inspector import bindings as sql
from inspector import sms as repo
from inspector.sqlite import SqliteStore
from tests.api_support import start_api
from tests.conftest import sim, webhook
from tests.test_sms import smsc, sms_config, sms_id_of  # noqa: F401 (smsc: the fixture)

pytest.importorskip("smpp34", reason="the stand-in SMSC is smpp34's SMPP server (pip install smpp34)")

MSISDN = "491700000010"
SIM = dataclasses.replace(sim(10), msisdn=MSISDN)
ESME_RX_R_APPN = 0x65
DEFAULTS = quota.QuotaDefaults(data_total=500_000_000, sms_total=4, lifetime_ms=10 * 365 * 86_400_000)


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


async def test_mt_and_mo_share_the_connectivity_sms_quota(start_gateway, tmp_path, smsc, receiver, ca_file):
    config = sms_config(tmp_path, smsc.port, connectivity={"sms_quota": 4}, webhooks=[webhook(receiver, ca_file)])
    api = await start_api(start_gateway, config, [SIM], roles=("User", "Owner"))
    gw = api.gateway
    assert await gw.sms.session.wait_bound(5)
    client = api.client("User")
    sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "x" * 400}))  # 3 parts
    assert (await client.get(f"/v1/sims/{SIM.iccid}/quota/sms")).body["volume"] == 1
    refused = await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "y" * 200})  # 2 parts
    assert refused.status == 422
    assert refused.body == {"statusCode": 422, "statusText": "Unprocessable Entity", "errors": [{
        "message": f"SMS_QUOTA_EXHAUSTED: SIM {SIM.iccid} has used 3 of its 4 SMS; this message needs 2 more: "
                   f"top it up (POST /v1/sims/{SIM.iccid}/topup)", "field": "payload"}]}
    assert await smsc.mo(MSISDN, b"mo one") == 0  # the last SMS of the quota
    quota_sms = (await client.get(f"/v1/sims/{SIM.iccid}/quota/sms")).body
    assert (quota_sms["volume"], quota_sms["total_volume"]) == (0, 4)
    assert await smsc.mo(MSISDN, b"mo two") == ESME_RX_R_APPN  # refused for good, not stored
    single = await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "z"})
    assert single.status == 422 and "has used 4 of its 4 SMS; this message needs 1 more" in single.text
    metrics = gw.metrics.render().decode()
    assert 'nce_sms_mt_total{outcome="over_quota"} 2.0' in metrics
    assert 'nce_sms_mo_total{outcome="over_quota"} 1.0' in metrics
    assert 'nce_sms_mo_total{outcome="stored"} 1.0' in metrics
    await gw.committer.flush()
    assert [e["sms"]["payload"] for e in gw.store.events(event_type="MO_SMS")] == ["mo one"]
    # the MO SMS that took the last one announced it (in its own transaction), once
    [used_up] = [e for e in gw.store.events(event_type="NETWORK_EVENT") if e["networkEvent"]["type"] != "QUOTA_TOPUP"]
    assert used_up["networkEvent"] == {"type": "QUOTA_EXHAUSTED", "description": "the SMS quota is used up: SMS are "
                                       "refused", "service": "sms", "reason": "SMS_QUOTA_EXHAUSTED"}
    # the day's usage: 3 MT parts to the device (RX), 1 MO from it (TX)
    [day] = (await client.get(f"/v1/sims/{SIM.iccid}/usage")).body["stats"]
    assert day["date"] == f"{today()}T00:00:00.000Z"
    assert {k: day["sms"][k] for k in ("volume", "volume_rx", "volume_tx")} == {
        "volume": "4", "volume_rx": "3", "volume_tx": "1"}
    assert day["data"]["volume"] == "0.000000"
    # a top-up adds one quota of SMS: both directions work again
    assert (await api.client("Owner").post(f"/v1/sims/{SIM.iccid}/topup")).status == 201
    quota_sms = (await client.get(f"/v1/sims/{SIM.iccid}/quota/sms")).body
    assert (quota_sms["volume"], quota_sms["total_volume"]) == (4, 8)
    sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "z"}))
    assert await smsc.mo(MSISDN, b"mo three") == 0
    assert (await client.get(f"/v1/sims/{SIM.iccid}/quota/sms")).body["volume"] == 2
    await gw.committer.flush()
    assert [e["networkEvent"]["type"] for e in gw.store.events(event_type="NETWORK_EVENT")] == [
        "QUOTA_TOPUP", "QUOTA_EXHAUSTED"]


async def test_monthly_mt_and_mo_limits(start_gateway, tmp_path, smsc):
    api = await start_api(start_gateway, sms_config(tmp_path, smsc.port), [SIM], roles=("User", "Owner"))
    gw = api.gateway
    assert await gw.sms.session.wait_bound(5)
    owner, client = api.client("Owner"), api.client("User")
    # option 1 of smsMt and smsMo: 5 SMS a month (GET /v1/sims/smsMT/limits)
    assert (await owner.post("/v1/sims/limits", json={"smsMtLimitId": 1, "smsMoLimitId": 1})).status == 201
    sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "x" * 300}))  # 2 parts
    sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "x" * 300}))  # 4 this month
    over = await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "x" * 300})
    assert over.status == 422 and over.body["errors"][0]["message"] == (
        f"SMS_LIMIT_REACHED: SIM {SIM.iccid} has MT SMS 4 of its monthly limit of 5; this message needs 2 more")
    sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "fifth"}))
    for n in range(5):
        assert await smsc.mo(MSISDN, f"mo {n}".encode()) == 0
    assert await smsc.mo(MSISDN, b"mo 6") == ESME_RX_R_APPN
    assert 'nce_sms_mo_total{outcome="over_limit"} 1.0' in gw.metrics.render().decode()
    assert 'nce_sms_mt_total{outcome="over_limit"} 1.0' in gw.metrics.render().decode()
    # the lifetime quota counted every SMS that was taken: 5 MT + 5 MO parts
    assert (await client.get(f"/v1/sims/{SIM.iccid}/quota/sms")).body["volume"] == 240


def test_charge_is_atomic_expiry_and_refund(tmp_path):
    """Units of gateway/connectivity/quota.py on a real store: expiry refuses, a cancel gives back,
    and two writers racing for the last SMS cannot both get it."""
    store = SqliteStore(tmp_path / "q.db", "normal")
    store.upsert_sims([SIM])
    now = 1_764_633_600_000  # 2025-12-02
    new = repo.NewMt(SIM.iccid, MSISDN, "", 145, 0, None, "x", None, [(b"a", 0x40), (b"b", 0x40)])
    first = repo.queue_mt(store, new, now, quota.sms_charge(DEFAULTS, SIM.iccid, quota.MT, now))
    assert repo.cancel_mt(store, SIM.iccid, first, now, quota.sms_refund(SIM.iccid)) == "CANCELED"
    assert store.read_with(sql.quotas, SIM.iccid)[(SIM.iccid, "sms")]["used"] == 0
    repo.queue_mt(store, new, now, quota.sms_charge(DEFAULTS, SIM.iccid, quota.MT, now))  # 2 of 4 used
    # two threads, each with its own connection, both want the last 2: exactly one gets them
    results: list[str] = []

    def take() -> None:
        own = SqliteStore(tmp_path / "q.db", "normal")
        try:
            repo.queue_mt(own, new, now, quota.sms_charge(DEFAULTS, SIM.iccid, quota.MT, now))
            results.append("queued")
        except quota.SmsRefused as exc:
            results.append(exc.reason)
        except sqlite3.OperationalError as exc:  # pragma: no cover - would be a locking bug
            results.append(str(exc))

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["SMS_QUOTA_EXHAUSTED", "queued"]
    assert store.read_with(sql.quotas, SIM.iccid)[(SIM.iccid, "sms")]["used"] == 4
    # an expired quota refuses even with SMS left, and refuses a top-up
    store.write_with(sql.add_quota, SIM.iccid, "sms", 4, 0, 10, now)
    store.connection().execute("UPDATE sim_quotas SET expiry_ms = ? WHERE iccid = ?", (now - 1, SIM.iccid))
    store.connection().commit()
    with pytest.raises(quota.SmsRefused) as refused:
        repo.queue_mt(store, new, now, quota.sms_charge(DEFAULTS, SIM.iccid, quota.MO, now))
    assert refused.value.reason == "QUOTA_EXPIRED"
    assert str(refused.value) == ("The following SIMs are expired and cannot be modified via API. Only extensions "
                                  f"are permitted: {SIM.iccid} (expired 2025-12-01); extend it "
                                  "(POST /v1/sims/extension) before sending SMS")
    with pytest.raises(quota.TopupRefused):
        store.write_with(quota.topup_in, [SIM.iccid], DEFAULTS, 1, 1, now)


def test_old_sms_quota_setting_is_a_clear_error(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text("[sms]\nquota = 100\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert str(error.value) == ("sms.quota was removed: MT and MO SMS count against the connectivity SMS quota; set "
                                "connectivity.sms_quota instead (docs/sms.md)")
    with pytest.raises(ConfigError, match="connectivity.sms_quota"):
        load_config(None, environ={"NCE_SMS_QUOTA": "100"})


async def test_cli_send_counts_against_the_same_quota(tmp_path, capsys):
    store_path = tmp_path / "cli.db"
    store = SqliteStore(store_path, "normal")
    store.upsert_sims([SIM])
    store.close()
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{store_path}"\n[connectivity]\nsms_quota = 2\n')
    args = ["--config", str(config)]
    assert await asyncio.to_thread(cli, ["sms", "send", SIM.iccid, "hello", *args]) == 0
    assert await asyncio.to_thread(cli, ["sms", "send", SIM.iccid, "x" * 200, *args]) == 1
    err = capsys.readouterr().err
    assert (f"SMS_QUOTA_EXHAUSTED: SIM {SIM.iccid} has used 1 of its 2 SMS; this message needs 2 more: top it up "
            f"(POST /v1/sims/{SIM.iccid}/topup)") in err
    assert await asyncio.to_thread(cli, ["sms", "send", SIM.iccid, "last", *args]) == 0
    store = SqliteStore(store_path, "normal")
    assert [e["networkEvent"]["type"] for e in store.events(event_type="NETWORK_EVENT")] == ["QUOTA_EXHAUSTED"]
    capsys.readouterr()
    assert await asyncio.to_thread(cli, ["sims", "usage", SIM.iccid, *args]) == 0
    out = capsys.readouterr().out
    assert [[cell.strip() for cell in line.split("│")[1:7]] for line in out.splitlines() if today() in line] == [
        [today(), "0.000000", "0.000000", "0.000000", "2", "0"]]
    assert "1 day(s) with traffic" in out


def test_migration_carries_sms_stored_before_into_the_quota(tmp_path):
    """0041_sms_quota.sql: SMS counted by the old rule (rows of the sms table) become used SMS of
    the quota: added to an existing row, or a new row with the defaults; canceled ones do not count."""
    from inspector.schema import migrations
    from inspector.sqlite import _split_sql

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    for name, script in migrations():
        if name >= "0041":
            break
        for statement in _split_sql(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    other = sim(11).iccid
    for iccid, direction, parts, status, at in ((SIM.iccid, "MT", 3, "SENT", 1000), (SIM.iccid, "MO", 1, "RECEIVED", 2000),
                                                (SIM.iccid, "MT", 2, "CANCELED", 3000), (other, "MT", 1, "QUEUED", 4000)):
        conn.execute("INSERT INTO sms (iccid, direction, dcs, payload, parts, status, submit_ms, day)"
                     " VALUES (?, ?, 0, 'x', ?, ?, ?, '1970-01-01')", (iccid, direction, parts, status, at))
    conn.execute("INSERT INTO sim_quotas VALUES (?, 'sms', 500, 10, 99, 250, 1)", (other,))
    conn.commit()
    conn.close()
    store = SqliteStore(path, "normal")
    rows = store.read_with(sql.quotas)
    assert rows[(SIM.iccid, "sms")] == {"total": 250, "used": 4, "expiry_ms": 1000 + 315_360_000_000,
                                        "last_volume_added": 250, "last_change_ms": 2000}
    assert rows[(other, "sms")]["used"] == 11 and rows[(other, "sms")]["total"] == 500
