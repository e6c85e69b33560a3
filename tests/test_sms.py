"""SMS over SMPP against a stand-in SMSC the project does not implement (smpp34's server):
bind, MT with receipt, long and UCS-2 messages, throttling, MO to a webhook, SMSC down then up,
a restart with SMS queued, cancel, the CLI (the quota: test_sms_quota.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.cli import main as cli_main
from gateway.sms import codec
from gateway.sms.smpp import BOUND
from tests.api_support import start_api
from tests.conftest import make_config, sim, webhook
from inspector.records import Pending
from tests.smsc import Smsc, free_port

pytest.importorskip("smpp34", reason="the stand-in SMSC is smpp34's SMPP server (pip install smpp34)")

MSISDN = "491700000010"
SIM = dataclasses.replace(sim(10), msisdn=MSISDN)
OTHER = dataclasses.replace(sim(11), msisdn="+49 170 0000011")


@pytest.fixture
async def smsc():
    server = Smsc(free_port())
    await server.start()
    yield server
    await server.stop()


def sms_config(tmp_path, port, **extra):
    values = {"enabled": True, "port": port, "system_id": "nce-gw", "password": "secret", "reconnect_min_seconds": 0.2,
              "reconnect_max_seconds": 0.5, "retry_seconds": 0.3, "throttle_min_seconds": 0.1}
    values.update(extra.pop("sms", {}))
    return make_config(tmp_path, sms=values, **extra)


async def wait_status(client, iccid, sms_id, status, timeout=10.0):
    answer = None
    for _ in range(int(timeout / 0.05)):
        answer = await client.get(f"/v1/sims/{iccid}/sms/{sms_id}")
        if answer.body["status"]["description"] == status:
            return answer.body
        await asyncio.sleep(0.05)
    raise AssertionError(f"SMS {sms_id} is {answer.body['status'] if answer else None}, not {status}")


async def get_health(gateway) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{gateway.api_port}/health") as answer:
            return await answer.json()


def sms_id_of(answer) -> int:
    assert answer.status == 201, answer.text
    return int(answer.headers["Location"].rsplit("/", 1)[1])


# codecs ------------------------------------------------------------------------------------------

def test_gsm_alphabet_and_escapes():
    assert codec.gsm_encode("@§£$") == bytes([0x00, 0x5F, 0x01, 0x02])
    assert codec.gsm_encode("€[]") == bytes([0x1B, 0x65, 0x1B, 0x3C, 0x1B, 0x3E])
    assert codec.gsm_decode(bytes([0x1B, 0x65, 0x48, 0x69])) == "€Hi"
    assert codec.encode_text("a`b") == ("a`b".encode("utf-16-be"), codec.DCS_UCS2)  # ` is not GSM
    with pytest.raises(codec.SmsEncodingError, match="'`' is not in the GSM 7-bit alphabet"):
        codec.encode_text("a`b", codec.DCS_GSM)


def test_split_long_gsm_keeps_escape_pairs_and_headers():
    text = "x" * 152 + "€" + "y" * 10  # the escape would fall on octet 153
    parts = codec.split(codec.gsm_encode(text), codec.DCS_GSM, reference=7)
    assert [p.esm_class for p in parts] == [0x40, 0x40]
    assert parts[0].short_message == bytes([5, 0, 3, 7, 2, 1]) + b"x" * 152
    assert parts[1].short_message == bytes([5, 0, 3, 7, 2, 2, 0x1B, 0x65]) + b"y" * 10
    assert codec.split(b"z" * 160, codec.DCS_GSM) == [codec.Part(b"z" * 160, 0)]
    ucs2 = codec.split("Ж".encode("utf-16-be") * 71, codec.DCS_UCS2, reference=1)
    assert [len(p.short_message) for p in ucs2] == [6 + 134, 6 + 8]
    udh, body, concat = codec.parse_udh(ucs2[1].short_message)
    assert (udh.hex(), body, concat) == ("050003010202", "Ж".encode("utf-16-be") * 4, codec.Concat(1, 2, 2))


# MT --------------------------------------------------------------------------------------------

async def test_mt_with_receipt_long_and_ucs2(start_gateway, tmp_path, smsc):
    api = await start_api(start_gateway, sms_config(tmp_path, smsc.port), [SIM], roles=("User",))
    assert await api.gateway.sms.session.wait_bound(5)
    client = api.client("User")
    first = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "hello", "source_address": "4321"}))
    body = await wait_status(client, SIM.iccid, first, "DELIVERED")
    assert (body["payload"], body["dcs"], body["msisdn"], body["sms_type"], body["status"]) == (
        "hello", 0, MSISDN, {"id": 1, "description": "MT"}, {"id": 4, "description": "DELIVERED"})
    assert "delivery_date" in body and body["source_address"] == "4321"
    s = smsc.submits[0]
    assert (s.destination, s.source, s.short_message, s.data_coding, s.esm_class, s.registered_delivery) == (
        MSISDN, "4321", b"hello", 0, 0, 1)

    long_text = "".join(str(i % 10) for i in range(200))
    second = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": long_text}))
    await wait_status(client, SIM.iccid, second, "DELIVERED")
    parts = smsc.submits[1:3]
    assert [p.esm_class for p in parts] == [0x40, 0x40]
    headers = [codec.parse_udh(p.short_message) for p in parts]
    assert [h[2].number for h in headers] == [1, 2] and {h[2].total for h in headers} == {2}
    assert headers[0][2].reference == headers[1][2].reference
    assert b"".join(h[1] for h in headers).decode("ascii") == long_text

    third = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "Привет 😀"}))
    body = await wait_status(client, SIM.iccid, third, "DELIVERED")
    assert body["dcs"] == 8 and smsc.submits[3].data_coding == 8
    assert smsc.submits[3].short_message == "Привет 😀".encode("utf-16-be")

    binary = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms",
                                         json={"payload": "c0ffee", "dcs": 4, "udh": "0605040B8423F0"}))
    await wait_status(client, SIM.iccid, binary, "DELIVERED")
    assert (smsc.submits[4].short_message, smsc.submits[4].esm_class, smsc.submits[4].data_coding) == (
        bytes.fromhex("0605040B8423F0c0ffee"), 0x40, 4)

    late = await client.delete(f"/v1/sims/{SIM.iccid}/sms/{first}")
    assert late.status == 409 and f"SMS {first} cannot be canceled: it is DELIVERED" in late.text
    listing = await client.get(f"/v1/sims/{SIM.iccid}/sms", params={"sort": "id"})
    assert [m["id"] for m in listing.body] == [first, second, third, binary]
    assert listing.headers["X-Total-Count"] == "4"
    metrics = api.gateway.metrics.render().decode()
    assert 'nce_sms_mt_total{outcome="delivered"} 4.0' in metrics
    assert 'nce_smpp_state{state="BOUND"} 1.0' in metrics


async def test_bad_requests_are_refused_with_the_field(start_gateway, tmp_path, smsc):
    no_msisdn = sim(12)
    api = await start_api(start_gateway, sms_config(tmp_path, smsc.port), [SIM, no_msisdn], roles=("User",))
    client = api.client("User")
    cases = [({"payload": "a`b", "dcs": 0}, "'`' is not in the GSM 7-bit alphabet"),
             ({"payload": "zz", "dcs": 4}, "with dcs 4 the payload is hex octets"),
             ({"payload": "x", "dcs": 5}, "dcs: 5 is not supported"),
             ({"payload": "x", "expiry_date": "2001-01-01T00:00:00Z"}, "is in the past"),
             ({"payload": "x", "udh": "0500"}, "udh: its first octet (5) must be the length of the rest (1)")]
    for body, reason in cases:
        answer = await client.post(f"/v1/sims/{SIM.iccid}/sms", json=body)
        assert answer.status == 400 and reason in answer.text, (body, answer.text)
    answer = await client.post(f"/v1/sims/{no_msisdn.iccid}/sms", json={"payload": "x"})
    assert answer.status == 400 and "has no MSISDN" in answer.text
    await client.put(f"/v1/sims/{SIM.iccid}", json={"iccid": SIM.iccid, "status": "Disabled"})
    disabled = await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "x"})
    assert disabled.status == 422 and f"SIM {SIM.iccid} is Disabled: a disabled SIM cannot receive SMS" in disabled.text
    assert (await client.post("/v1/sims/8988280660000000099/sms", json={"payload": "x"})).status == 404
    assert smsc.submits == []


async def test_failed_by_receipt_and_refused_by_the_smsc(start_gateway, tmp_path, smsc):
    api = await start_api(start_gateway, sms_config(tmp_path, smsc.port), [SIM], roles=("User",))
    client = api.client("User")
    smsc.receipt_stat = ("UNDELIV", 5)
    undelivered = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "nobody home"}))
    body = await wait_status(client, SIM.iccid, undelivered, "FAILED")
    assert body["status"] == {"id": 5, "description": "FAILED"} and "final_date" in body
    await smsc.wait(lambda: len(smsc.submits) == 1)
    smsc.reject_with = 0x0B  # ESME_RINVDSTADR: permanent
    refused = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "wrong number"}))
    body = await wait_status(client, SIM.iccid, refused, "FAILED")
    assert body["error"] == "submit_sm refused: ESME_RINVDSTADR (0x0000000B): Invalid Destination Address"
    assert len(smsc.submits) == 1
    metrics = api.gateway.metrics.render().decode()
    assert 'nce_sms_mt_total{outcome="failed"} 2.0' in metrics
    assert 'nce_sms_receipts_total{status="failed"} 1.0' in metrics


async def test_an_sms_queued_past_its_expiry_is_not_sent(start_gateway, tmp_path):
    from datetime import datetime, timedelta, timezone
    port = free_port()
    api = await start_api(start_gateway, sms_config(tmp_path, port), [SIM], roles=("User",))
    client = api.client("User")
    expiry = (datetime.now(timezone.utc) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sms_id = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms",
                                         json={"payload": "too late", "expiry_date": expiry}))
    await asyncio.sleep(1.2)
    smsc = Smsc(port)
    await smsc.start()
    try:
        body = await wait_status(client, SIM.iccid, sms_id, "EXPIRED")
        assert body["error"] == "expired before it could be sent" and smsc.submits == []
    finally:
        await smsc.stop()


async def test_throttled_submits_are_sent_again(start_gateway, tmp_path, smsc):
    smsc.throttle_next = 2
    api = await start_api(start_gateway, sms_config(tmp_path, smsc.port), [SIM], roles=("User",))
    client = api.client("User")
    sms_id = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "slow down"}))
    await wait_status(client, SIM.iccid, sms_id, "DELIVERED")
    assert smsc.throttled == 2 and api.gateway.sms.session.throttled == 2
    assert "nce_smpp_throttled_total 2.0" in api.gateway.metrics.render().decode()
    assert [s.short_message for s in smsc.submits] == [b"slow down"]


async def test_smsc_down_then_up_loses_nothing(start_gateway, tmp_path):
    port = free_port()
    api = await start_api(start_gateway, sms_config(tmp_path, port), [SIM], roles=("User",))
    client = api.client("User")
    ids = [sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": f"m{i}"})) for i in range(3)]
    await asyncio.sleep(0.5)
    assert [(await client.get(f"/v1/sims/{SIM.iccid}/sms/{i}")).body["status"]["description"] for i in ids] == \
        ["QUEUED"] * 3
    health = await get_health(api.gateway)
    assert health["sms"]["state"] in ("DISCONNECTED", "CONNECTING")
    assert f"connection to 127.0.0.1:{port}: ConnectionRefusedError" in health["sms"]["last_error"]
    smsc = Smsc(port)
    await smsc.start()
    try:
        for i in ids:
            await wait_status(client, SIM.iccid, i, "DELIVERED")
        assert sorted(s.short_message for s in smsc.submits) == [b"m0", b"m1", b"m2"]
        await smsc.stop()  # down again: the next one waits, then goes
        later = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "after"}))
        smsc = Smsc(port)
        await smsc.start()
        await wait_status(client, SIM.iccid, later, "DELIVERED")
        assert [(s.short_message, s.message_id) for s in smsc.submits] == [(b"after", "M1000")]  # an id again
        assert (await client.get(f"/v1/sims/{SIM.iccid}/sms/{ids[0]}")).body["status"]["description"] == "DELIVERED"
    finally:
        await smsc.stop()


async def test_sms_queued_before_a_restart_are_sent_by_the_next_gateway(tmp_path):
    port = free_port()
    config = sms_config(tmp_path, port)
    first = Gateway(config)
    first.store.upsert_sims([SIM])
    await first.start()
    from gateway.sms.mt import build_mt
    from inspector import sms as repo
    new = build_mt(SIM, {"payload": "survives"}, default_source="", validity_hours=1, now_ms=repo_now())
    sms_id = await first.committer.write(repo.queue_mt, first.store, new, repo_now())
    await first.stop()
    smsc = Smsc(port)
    await smsc.start()
    second = Gateway(config)
    await second.start()
    try:
        for _ in range(200):
            row = await second.read(repo.get_sms, second.store, SIM.iccid, sms_id)
            if row["status"] == "DELIVERED":
                break
            await asyncio.sleep(0.05)
        assert row["status"] == "DELIVERED" and [s.short_message for s in smsc.submits] == [b"survives"]
    finally:
        await second.stop()
        await smsc.stop()


def repo_now() -> int:
    from gateway.sms.service import now_ms
    return now_ms()


async def test_cancel_a_queued_sms(start_gateway, tmp_path):
    api = await start_api(start_gateway, sms_config(tmp_path, free_port()), [SIM], roles=("User",))
    client = api.client("User")
    sms_id = sms_id_of(await client.post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "never"}))
    assert (await client.delete(f"/v1/sims/{SIM.iccid}/sms/{sms_id}")).status == 204
    assert (await client.get(f"/v1/sims/{SIM.iccid}/sms/{sms_id}")).body["status"] == {"id": 3,
                                                                                      "description": "CANCELED"}
    assert (await client.delete(f"/v1/sims/{SIM.iccid}/sms/{sms_id}")).status == 204  # idempotent
    assert (await client.delete(f"/v1/sims/{SIM.iccid}/sms/999")).status == 404


async def test_sms_disabled_answers_409(start_gateway, tmp_path):
    api = await start_api(start_gateway, make_config(tmp_path), [SIM], roles=("User",))
    answer = await api.client("User").post(f"/v1/sims/{SIM.iccid}/sms", json={"payload": "x"})
    assert answer.status == 409 and "[sms] enabled = true" in answer.text
    assert (await api.client("User").get(f"/v1/sims/{SIM.iccid}/sms")).body == []


# MO --------------------------------------------------------------------------------------------

async def test_mo_forwarded_to_the_webhook_and_concatenated(start_gateway, tmp_path, smsc, receiver, ca_file):
    config = sms_config(tmp_path, smsc.port, webhooks=[webhook(receiver, ca_file, event_types=["MO_SMS"])])
    api = await start_api(start_gateway, config, [SIM, OTHER], roles=("User",))
    assert await api.gateway.sms.session.wait_bound(5)
    assert await smsc.mo(MSISDN, codec.gsm_encode("temp=21€")) == 0
    assert await smsc.mo("491700000011", "Grüß dich".encode("utf-16-be"), data_coding=8) == 0
    head = bytes([5, 0, 3, 0x42, 2])
    assert await smsc.mo(MSISDN, head + b"\x02" + b" world", esm_class=0x40) == 0  # second part first
    assert await smsc.mo(MSISDN, head + b"\x01" + b"hello", esm_class=0x40) == 0
    assert await smsc.mo("4999999", b"who am i") == 0  # unknown MSISDN: answered, not forwarded
    events = await receiver.wait_for(3)
    await asyncio.sleep(0.3)
    assert len(receiver.events) == 3
    # order is kept per SIM, not across SIMs (delivery is ordered per device and integration)
    sms = sorted(((e["device"]["iccid"], e["sms"]) for e in events), key=lambda x: (x[0], x[1]["parts"]))
    assert sms == [
        (SIM.iccid, {"msisdn": MSISDN, "destinationAddress": "1234", "dcs": 0, "payload": "temp=21€", "parts": 1}),
        (SIM.iccid, {"msisdn": MSISDN, "destinationAddress": "1234", "dcs": 0, "payload": "hello world",
                     "parts": 2}),
        (OTHER.iccid, {"msisdn": "491700000011", "destinationAddress": "1234", "dcs": 8, "payload": "Grüß dich",
                       "parts": 1}),
    ]
    assert [e["sms"]["parts"] for e in events if e["device"]["iccid"] == SIM.iccid] == [1, 2]  # in order
    assert {e["type"] for e in events} == {"MO_SMS"} and events[0]["version"] == "1.0.0"
    listing = (await api.client("User").get(f"/v1/sims/{SIM.iccid}/sms")).body
    assert [(m["sms_type"]["description"], m["payload"], m["status"]["description"]) for m in listing] == [
        ("MO", "hello world", "RECEIVED"), ("MO", "temp=21€", "RECEIVED")]
    metrics = api.gateway.metrics.render().decode()
    assert 'nce_sms_mo_total{outcome="unknown_msisdn"} 1.0' in metrics
    assert 'nce_sms_mo_total{outcome="stored"} 3.0' in metrics


# CLI -------------------------------------------------------------------------------------------

async def test_cli_send_list_status(start_gateway, tmp_path, smsc, capsys):
    config_file = tmp_path / "gw.toml"
    config_file.write_text(f'[store]\npath = "{tmp_path / "gateway.db"}"\n[api]\nport = 0\n'
                           f'[sms]\nenabled = true\nport = {smsc.port}\nsystem_id = "nce-gw"\npassword = "secret"\n')
    config = sms_config(tmp_path, smsc.port)
    gateway = await start_gateway(config, [SIM])
    assert await asyncio.to_thread(cli_main, ["sms", "send", SIM.iccid, "from the cli", "-c", str(config_file)]) == 0
    assert capsys.readouterr().out == f"SMS 1 queued for {SIM.iccid} ({MSISDN}), 1 part(s)\n"
    await smsc.wait(lambda: len(smsc.submits) == 1)  # the running gateway picked it up from the store
    for _ in range(100):
        if gateway.store.connection().execute("SELECT status FROM sms").fetchone()[0] == "DELIVERED":
            break
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(cli_main, ["sms", "list", SIM.iccid, "--format", "json", "-c",
                                              str(config_file)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["direction"], r["status"], r["payload"]) for r in listed] == [
        (1, "MT", "DELIVERED", "from the cli")]
    assert await asyncio.to_thread(cli_main, ["sms", "send", "8988280660000000099", "x", "-c", str(config_file)]) == 1
    assert "no SIM with ICCID 8988280660000000099" in capsys.readouterr().err
    assert await asyncio.to_thread(cli_main, ["sms", "status", "--format", "json", "-c", str(config_file)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"MT DELIVERED": 1} and report["configured"]["system_id"] == "nce-gw"
    assert gateway.sms.session.state == BOUND


# receipts, numbers, usage -----------------------------------------------------------------------

def test_receipt_fields_from_tlvs_or_text():
    from types import SimpleNamespace

    from gateway.sms.service import normalise_msisdn, receipt_of
    text_only = SimpleNamespace(short_message=b"id:7A2 sub:001 dlvrd:000 submit date:2612021500 done date:2612021501 "
                                              b"stat:UNDELIV err:012 text:", receipted_message_id=None,
                                message_state=None)
    assert receipt_of(text_only) == ("7A2", "FAILED")
    tlvs = SimpleNamespace(short_message=b"", receipted_message_id=b"X9", message_state=3)
    assert receipt_of(tlvs) == ("X9", "EXPIRED")
    enroute = SimpleNamespace(short_message=b"", receipted_message_id=b"X9", message_state=1)
    assert receipt_of(enroute) == ("X9", None)
    assert normalise_msisdn("+49 170 0000011") == normalise_msisdn("0049170 0000011") == "491700000011"


def test_usage_per_day_counts_parts_and_skips_canceled(tmp_path):
    from inspector import sms as repo
    from inspector.sqlite import SqliteStore
    store = SqliteStore(tmp_path / "s.db", "normal")
    store.upsert_sims([SIM])
    day1, day2 = 1764633600000, 1764633600000 + 86400_000  # 2025-12-02, 2025-12-03 UTC
    new = repo.NewMt(SIM.iccid, MSISDN, "", 145, 0, None, "x", None, [(b"a", 0x40), (b"b", 0x40)])
    repo.queue_mt(store, new, day1)
    canceled = repo.queue_mt(store, new, day2)
    refunded: list[int] = []
    assert repo.cancel_mt(store, SIM.iccid, canceled, day2, lambda conn, n: refunded.append(n)) == "CANCELED"
    assert refunded == [2]
    ids: list[int] = []
    store.commit([Pending(None, [], extra=repo.mo_writer(
        repo.NewMo(SIM.iccid, MSISDN, "1", 0, "hi", 1, day2, None), ids))])
    assert store.read_with(repo.sms_daily, SIM.iccid, "2025-12-01", "2025-12-31") == {
        "2025-12-02": (2, 0), "2025-12-03": (0, 1)}
    assert store.read_with(repo.sms_month_count, SIM.iccid, "MT", "2025-12-01") == 2
    assert store.read_with(repo.sms_month_count, SIM.iccid, "MO", "2025-12-03") == 1
    assert len(ids) == 1


def test_mo_sms_aws_topic():
    from integrators.aws_common import aws_topic
    assert aws_topic({"type": "MO_SMS", "device": {"iccid": SIM.iccid}}) == f"{SIM.iccid}/sms"
