"""inspector/device_actions.py on a real store: limits inside the insert's transaction, the
status conditions that keep a cancel, an expiry and a result from overwriting each other, the
restart rule, and the one listing of UDP, CoAP and LwM2M requests."""

from __future__ import annotations

from inspector import device_actions as sql
from inspector.sqlite import SqliteStore
from gateway.controller import new_record, validate
from gateway.lwm2m import storage as lwm2m_sql
from gateway.lwm2m.actions import new_record as lwm2m_record, validate as lwm2m_validate

A, B = "8988280660000000010", "8988280660000000011"


def record(iccid: str, expiry: float = 60.0, **body) -> dict:
    fields = validate("UDP", {"payload": "x", "payloadType": "STRING", "port": 3000, **body}, 1024)
    return new_record(iccid, "127.0.0.10", fields, expiry)


def test_limits_claim_cancel_expire_resume(tmp_path):
    conn = SqliteStore(tmp_path / "g.db").connection()
    first, second = record(A), record(A)
    assert sql.insert(conn, first, per_device=2, total=3) is None
    assert sql.insert(conn, second, per_device=2, total=3) is None
    assert sql.insert(conn, record(A), per_device=2, total=3) == "device"
    assert sql.insert(conn, record(B), per_device=2, total=3) is None
    assert sql.insert(conn, record(B), per_device=2, total=3) == "total"
    assert sql.open_count(conn) == 3
    assert [r["id"] for r in sql.scheduled(conn, A)] == [first["id"], second["id"]]
    assert sql.waiting_devices(conn) == [(A, True), (B, True)]

    assert sql.claim(conn, first["id"]) == 0  # one attempt, used
    assert sql.claim(conn, first["id"]) is None  # not SCHEDULED any more: nobody sends it twice
    assert sql.get(conn, first["id"])["status"] == "IN_PROGRESS"
    assert sql.cancel(conn, request_id=second["id"]) == [second["id"]]
    assert not sql.update_open(conn, second["id"], "SUCCEEDED", {"sentBytes": 1})  # a result after a cancel
    assert sql.get(conn, second["id"])["status"] == "CANCELLED"

    assert sql.resume_interrupted(conn) == 1  # a restart: IN_PROGRESS → SCHEDULED, an attempt again
    again = sql.get(conn, first["id"])
    assert (again["status"], again["attempts_left"]) == ("SCHEDULED", 1)

    assert sql.expire(conn, first["expires_ms"] - 1) == []  # not yet
    expired = sql.expire(conn, first["expires_ms"] + 1000)
    assert sorted(r["id"] for r in expired) == sorted(i for _, i in sql.page(conn, statuses=("FAILED",))[0])
    assert {r["iccid"] for r in expired} == {A, B} and {r["status"] for r in expired} == {"FAILED"}
    assert sql.open_count(conn) == 0 and sql.waiting_devices(conn) == []
    assert not sql.update_open(conn, first["id"], "SUCCEEDED", {})  # too late: it expired


def test_one_listing_of_every_protocol(tmp_path):
    conn = SqliteStore(tmp_path / "g.db").connection()
    udp = record(A)
    sql.insert(conn, udp, 10, 10)
    lw = lwm2m_record(A, "127.0.0.10", lwm2m_validate("read", "/3/0"))
    lw["created_ms"] = lw["updated_ms"] = udp["created_ms"] + 1
    lwm2m_sql.insert_action(conn, lw)
    coap = new_record(B, "127.0.0.11", validate("COAP", {"path": "/a", "port": 5683, "requestType": "GET"}, 1024), 60)
    coap["created_ms"] = coap["updated_ms"] = udp["created_ms"] + 2
    sql.insert(conn, coap, 10, 10)

    assert sql.page(conn) == ([("COAP", coap["id"]), ("LWM2M", lw["id"]), ("UDP", udp["id"])], 3)
    assert sql.page(conn, newest_first=False, limit=2) == ([("UDP", udp["id"]), ("LWM2M", lw["id"])], 3)
    assert sql.page(conn, iccid=A, protocols=("LWM2M",)) == ([("LWM2M", lw["id"])], 1)
    assert sql.page(conn, protocols=("UDP", "COAP"), offset=1) == ([("UDP", udp["id"])], 2)
    sql.cancel(conn, iccid=B)
    assert sql.page(conn, statuses=("CANCELLED",)) == ([("COAP", coap["id"])], 1)
    assert sql.purge(conn, coap["created_ms"] + 1) == 1  # final and old: gone; open ones stay
    assert sql.get(conn, coap["id"]) is None and sql.get(conn, udp["id"]) is not None
