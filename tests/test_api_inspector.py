"""Device Inspector through the API: history pages (exactly once, in order, while messages keep
arriving), time windows with offsets, retention, insights, latest state, devices."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from datetime import datetime, timedelta, timezone

import pytest

from inspector.records import MessageRecord, Pending
from tests.api_support import start_api
from tests.conftest import make_config, sim

DEVICES = [sim(n) for n in (10, 11, 12)]
HOUR = 3_600_000
DAY = 24 * HOUR


def iso(ms: int, offset_minutes: int | None = None) -> str:
    tz = timezone.utc if offset_minutes is None else timezone(timedelta(minutes=offset_minutes))
    text = datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if offset_minutes is None else text


def message(n: int, received_ms: int, device=None, protocol: str | None = None, translated: str | None = None,
            topic: str | None = None) -> Pending:
    device = device or DEVICES[n % len(DEVICES)]
    protocol = protocol or ("UDP", "COAP", "LWM2M")[n % 3]
    return Pending(MessageRecord(device.iccid, protocol, received_ms, f"m{n:06d}".encode(), topic, translated), [])


async def store_messages(gateway, pendings: list[Pending]) -> None:
    await gateway.committer.write(gateway.store.commit, pendings)


def payload_id(item: dict) -> str:
    return base64.b64decode(item["payload"]).decode()


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), DEVICES, roles=("User",))


def snapshot_of(first_token: str) -> int:
    """The high-water mark a query's token carries (white box: the token is base64url JSON)."""
    return json.loads(base64.urlsafe_b64decode(first_token + "=" * (-len(first_token) % 4)))["h"]


def stored_ids(gateway, high_water: int, start_ms: int, iccid: str | None = None, protocol: str | None = None) -> set:
    sql = "SELECT payload FROM messages WHERE seq <= ? AND received_ms >= ?"
    args: list = [high_water, start_ms]
    if iccid:
        sql += " AND iccid = ?"
        args.append(iccid)
    if protocol:
        sql += " AND protocol = ?"
        args.append(protocol)
    return {bytes(r[0]).decode() for r in gateway.store.connection().execute(sql, args)}


async def page_through(client, path: str, params: dict, first_page: asyncio.Event | None = None,
                       tokens: list | None = None) -> list[dict]:
    items: list[dict] = []
    answer = await client.get(path, params=params)
    assert answer.status == 200, answer.body
    assert "firstToken" in answer.body
    if tokens is not None:
        tokens.append(answer.body["firstToken"])
    if first_page is not None:
        first_page.set()
    items += answer.body["items"]
    while "nextToken" in answer.body:
        assert len(answer.body["items"]) == params["pageSize"]
        answer = await client.get(path, params={**params, "nextToken": answer.body["nextToken"]})
        assert answer.status == 200, answer.body
        assert "firstToken" not in answer.body
        items += answer.body["items"]
    return items


async def test_history_pages_exactly_once_in_order_while_writing(api):
    gateway, client = api.gateway, api.client("User")
    now = int(time.time() * 1000)
    base = now - 2 * HOUR
    rng = random.Random(7)
    # 3,000 messages in the last two hours, written out of time order (as group commits of
    # several transports can be), several sharing a millisecond
    times = sorted(base + rng.randrange(0, 2 * HOUR - 1000) for _ in range(3000))
    shuffled = list(enumerate(times))
    rng.shuffle(shuffled)
    for start in range(0, 3000, 500):
        await store_messages(gateway, [message(n, t) for n, t in shuffled[start:start + 500]])
    for i in range(0, 3000, 300):  # duplicates of a millisecond
        await store_messages(gateway, [message(10_000 + i, times[i])])
    existing = {f"m{n:06d}" for n in range(3000)} | {f"m{10_000 + i:06d}" for i in range(0, 3000, 300)}

    written_during: list[str] = []
    stop = asyncio.Event()
    first_page = asyncio.Event()
    tokens: list[str] = []

    async def writer() -> None:
        n = 20_000
        await first_page.wait()
        while not stop.is_set():
            # new messages everywhere in the window, even before the pages already read
            late = base + rng.randrange(0, 2 * HOUR)
            for p in (message(n, late), message(n + 1, int(time.time() * 1000))):
                gateway.committer.submit(p)
            written_during.extend([f"m{n:06d}", f"m{n + 1:06d}"])
            n += 2
            await asyncio.sleep(0.002)

    task = asyncio.create_task(writer())
    try:
        all_items = await page_through(client, "/v1/inspect/devices/history",
                                       {"pageSize": 97, "startDateTime": iso(base - 1000)}, first_page, tokens)
        device = DEVICES[1]
        device_items = await page_through(client, f"/v1/inspect/devices/{device.iccid}/history",
                                          {"pageSize": 50, "startDateTime": iso(base - 1000)}, tokens=tokens)
        coap_items = await page_through(client, "/v1/inspect/devices/history",
                                        {"pageSize": 200, "protocol": "COAP", "startDateTime": iso(base - 1000)},
                                        tokens=tokens)
    finally:
        stop.set()
        await task
    await gateway.committer.flush()
    assert len(written_during) > 50

    ids = [payload_id(i) for i in all_items]
    assert len(ids) == len(set(ids))                 # exactly once
    assert set(ids) == existing                      # all of the snapshot, none of the later ones
    keys = [i["time"] for i in all_items]
    assert keys == sorted(keys)                      # in time order
    # the later queries: exactly their snapshot (which holds some of the messages written meanwhile)
    for items, token, iccid, protocol in ((device_items, tokens[1], device.iccid, None),
                                          (coap_items, tokens[2], None, "COAP")):
        got = [payload_id(i) for i in items]
        assert len(got) == len(set(got))
        assert set(got) == stored_ids(gateway, snapshot_of(token), base - 1000, iccid, protocol)
        assert set(got) & set(written_during) and set(got) >= stored_ids(gateway, snapshot_of(tokens[0]),
                                                                           base - 1000, iccid, protocol)
        assert [i["time"] for i in items] == sorted(i["time"] for i in items)
    assert all(i["deviceId"] == device.iccid for i in device_items)
    assert all(i["protocol"] == "COAP" for i in coap_items)

    # a new query sees what arrived meanwhile
    await gateway.committer.flush()
    again = await page_through(client, "/v1/inspect/devices/history",
                               {"pageSize": 1000, "startDateTime": iso(base - 1000)})
    assert {payload_id(i) for i in again} == existing | set(written_during)


async def test_first_token_repeats_the_snapshot(api):
    gateway, client = api.gateway, api.client("User")
    now = int(time.time() * 1000)
    await store_messages(gateway, [message(n, now - 1000 + n) for n in range(5)])
    first = await client.get("/v1/inspect/devices/history", params={"pageSize": 2})
    await store_messages(gateway, [message(99, now - 5000)])
    again = await client.get("/v1/inspect/devices/history", params={"nextToken": first.body["firstToken"],
                                                                     "pageSize": 2})
    assert again.body["items"] == first.body["items"]
    rest = await client.get("/v1/inspect/devices/history", params={"nextToken": first.body["nextToken"],
                                                                    "pageSize": 10})
    assert [payload_id(i) for i in rest.body["items"]] == ["m000002", "m000003", "m000004"]
    assert "nextToken" not in rest.body


async def test_time_windows_and_offsets(api):
    gateway, client = api.gateway, api.client("User")
    t0 = int(datetime(2030, 3, 7, 8, 0, tzinfo=timezone.utc).timestamp() * 1000)
    gateway.config.store.retention_days = 10_000  # these times are in the future: keep them
    await store_messages(gateway, [message(n, t0 + n * 60_000, device=DEVICES[0], protocol="COAP", topic="t/a")
                                   for n in range(10)])
    path = f"/v1/inspect/devices/{DEVICES[0].iccid}/history"
    # start inclusive, end exclusive; answered in the offset of startDateTime
    answer = await client.get(path, params={"startDateTime": "2030-03-07T10:02:00+02:00",
                                            "endDateTime": "2030-03-07T08:05:00Z", "pageSize": 100})
    assert answer.status == 200
    assert [payload_id(i) for i in answer.body["items"]] == ["m000002", "m000003", "m000004"]
    assert [i["time"] for i in answer.body["items"]] == ["2030-03-07T10:02:00.000+02:00",
                                                        "2030-03-07T10:03:00.000+02:00",
                                                        "2030-03-07T10:04:00.000+02:00"]
    assert answer.body["items"][0]["topic"] == "t/a" and answer.body["items"][0]["protocol"] == "COAP"
    # a '+' the client did not encode arrives as a space: still understood
    raw = await client.get(f"{path}?startDateTime=2030-03-07T03:08:00-05:00&endDateTime=2030-03-07T10:10:00+02:00"
                           "&pageSize=100")
    assert [i["time"] for i in raw.body["items"]] == ["2030-03-07T03:08:00.000-05:00", "2030-03-07T03:09:00.000-05:00"]
    # Z (or no offset): answered in Z; the all-devices history has no topic field
    utc = await client.get("/v1/inspect/devices/history", params={"startDateTime": "2030-03-07T08:09:00",
                                                                   "pageSize": 5})
    assert [i["time"] for i in utc.body["items"]] == ["2030-03-07T08:09:00.000Z"]
    assert "topic" not in utc.body["items"][0]
    # only endDateTime: the window is the 7 days before it, in its offset
    only_end = await client.get(path, params={"endDateTime": "2030-03-07T09:01:00.000+01:00", "pageSize": 100})
    assert [i["time"] for i in only_end.body["items"]] == ["2030-03-07T09:00:00.000+01:00"]
    for params, field in (({"startDateTime": "yesterday"}, "startDateTime"),
                          ({"endDateTime": "2030-13-01T00:00:00Z"}, "endDateTime"),
                          ({"startDateTime": "2030-03-08T00:00:00Z", "endDateTime": "2030-03-07T00:00:00Z"},
                           "startDateTime"),
                          ({"protocol": "SMS"}, "protocol"), ({"pageSize": 0}, "pageSize"),
                          ({"pageSize": 1001}, "pageSize"), ({"nextToken": "garbage!"}, "nextToken")):
        bad = await client.get(path, params=params)
        assert bad.status == 400 and bad.body["errors"][0]["field"] == field, (params, bad.body)


async def test_next_token_belongs_to_its_query(api):
    gateway, client = api.gateway, api.client("User")
    now = int(time.time() * 1000)
    await store_messages(gateway, [message(n, now - 10_000 + n) for n in range(9)])
    a, b = DEVICES[0].iccid, DEVICES[1].iccid
    first = await client.get(f"/v1/inspect/devices/{a}/history", params={"pageSize": 1})
    token = first.body["nextToken"]
    other = await client.get(f"/v1/inspect/devices/{b}/history", params={"pageSize": 1, "nextToken": token})
    assert other.status == 400 and other.body["errors"][0]["field"] == "nextToken"
    changed = await client.get(f"/v1/inspect/devices/{a}/history",
                               params={"pageSize": 1, "nextToken": token, "protocol": "COAP"})
    assert changed.status == 400 and changed.body["errors"][0]["field"] == "protocol"
    same = await client.get(f"/v1/inspect/devices/{a}/history", params={"pageSize": 5, "nextToken": token})
    assert same.status == 200 and len(same.body["items"]) == 2
    mixed = await client.get("/v1/inspect/devices/history", params={"deviceId": a, "iccid": b})
    assert mixed.status == 400
    by_query = await client.get("/v1/inspect/devices/history", params={"iccid": a, "pageSize": 10})
    assert {i["iccid"] for i in by_query.body["items"]} == {a} and len(by_query.body["items"]) == 3


async def test_retention_purge_is_reflected(api):
    gateway, client = api.gateway, api.client("User")
    now = int(time.time() * 1000)
    old = [message(n, now - 8 * DAY + n * 1000) for n in range(30)]
    recent = [message(100 + n, now - DAY + n * 1000) for n in range(30)]
    await store_messages(gateway, old + recent)
    params = {"startDateTime": iso(now - 9 * DAY), "pageSize": 25}
    first = await client.get("/v1/inspect/devices/history", params=params)
    assert [payload_id(i) for i in first.body["items"]] == [f"m{n:06d}" for n in range(25)]
    counts = await gateway.purge_once()
    assert counts["messages"] == 30
    rest = await page_through(client, "/v1/inspect/devices/history", {**params, "pageSize": 25})
    assert [payload_id(i) for i in rest] == [f"m{100 + n:06d}" for n in range(30)]
    # continuing the query from before the purge: no error, nothing twice, the purged are gone
    tail = await client.get("/v1/inspect/devices/history", params={"nextToken": first.body["nextToken"],
                                                                    "pageSize": 100})
    assert [payload_id(i) for i in tail.body["items"]] == [f"m{100 + n:06d}" for n in range(30)]
    # the default window is 7 days
    default = await client.get("/v1/inspect/devices/history", params={"pageSize": 100})
    assert len(default.body["items"]) == 30


async def test_insights(api):
    gateway, client = api.gateway, api.client("User")
    gateway.config.store.retention_days = 10_000
    midnight = int(datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
    batch = []
    for hour in range(48):  # two days, a message per hour and protocol pattern
        batch.append(message(hour, midnight + hour * HOUR + 60_000, device=DEVICES[0], protocol="UDP"))
        if hour % 2 == 0:
            batch.append(message(1000 + hour, midnight + hour * HOUR + 120_000, device=DEVICES[1], protocol="COAP"))
    await store_messages(gateway, batch)
    params = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-01-03T00:00:00Z", "interval": "1d"}
    daily = await client.get("/v1/inspect/devices/history/insights", params=params)
    assert daily.body == {"interval": "1d", "items": [
        {"time": "2030-01-01T00:00:00.000Z", "protocol": "COAP", "amount": 12},
        {"time": "2030-01-01T00:00:00.000Z", "protocol": "UDP", "amount": 24},
        {"time": "2030-01-02T00:00:00.000Z", "protocol": "COAP", "amount": 12},
        {"time": "2030-01-02T00:00:00.000Z", "protocol": "UDP", "amount": 24}]}
    # days of the client's zone (+05:00): buckets start at its midnight
    shifted = await client.get("/v1/inspect/devices/history/insights",
                               params={"startDateTime": "2030-01-01T05:00:00+05:00",
                                       "endDateTime": "2030-01-03T05:00:00+05:00", "interval": "1d",
                                       "protocol": "UDP"})
    assert shifted.body["items"] == [
        {"time": "2030-01-01T00:00:00.000+05:00", "protocol": "UDP", "amount": 19},
        {"time": "2030-01-02T00:00:00.000+05:00", "protocol": "UDP", "amount": 24},
        {"time": "2030-01-03T00:00:00.000+05:00", "protocol": "UDP", "amount": 5}]
    device = await client.get(f"/v1/inspect/devices/{DEVICES[1].iccid}/history/insights",
                              params={**params, "interval": "12h"})
    assert [(i["time"], i["protocol"], i["amount"]) for i in device.body["items"]] == [
        ("2030-01-01T00:00:00.000Z", "COAP", 6), ("2030-01-01T12:00:00.000Z", "COAP", 6),
        ("2030-01-02T00:00:00.000Z", "COAP", 6), ("2030-01-02T12:00:00.000Z", "COAP", 6)]
    for interval in ("1y", "0d", "d", "60s"):
        bad = await client.get("/v1/inspect/devices/history/insights", params={**params, "interval": interval})
        assert bad.status == 400 and bad.body["errors"][0]["field"] == "interval"
    too_many = await client.get("/v1/inspect/devices/history/insights",
                                params={"startDateTime": "2000-01-01T00:00:00Z", "interval": "1m"})
    assert too_many.status == 400 and too_many.body["errors"][0]["field"] == "interval"


async def test_devices_and_telemetry(api):
    gateway, client = api.gateway, api.client("User")
    now = int(time.time() * 1000)
    a = DEVICES[0]
    await store_messages(gateway, [
        message(1, now - 3000, device=a, protocol="UDP"),
        message(2, now - 2000, device=a, protocol="UDP"),
        message(3, now - 1000, device=a, protocol="COAP", translated='{"temp":21.5,"ok":true}', topic="env"),
    ])
    state = await client.get(f"/v1/inspect/devices/{a.iccid}/telemetry")
    assert state.status == 200 and state.body["id"] == a.iccid
    assert state.body["state"] == {
        "UDP": {"time": iso(now - 2000), "payload": base64.b64encode(b"m000002").decode(), "encoding": "base64"},
        "COAP": {"time": iso(now - 1000), "payload": {"temp": 21.5, "ok": True}, "topic": "env"}}
    only = await client.get(f"/v1/inspect/devices/{a.iccid}/telemetry", params={"protocol": "COAP"})
    assert list(only.body["state"]) == ["COAP"]
    quiet = await client.get(f"/v1/inspect/devices/{DEVICES[2].iccid}/telemetry")
    assert quiet.body == {"id": DEVICES[2].iccid, "state": {}}
    assert (await client.get("/v1/inspect/devices/8988280666999999999/telemetry")).status == 404
    # the translated payload is its JSON text in the history, raw ones base64
    items = (await client.get(f"/v1/inspect/devices/{a.iccid}/history", params={"pageSize": 10})).body["items"]
    assert json.loads(items[-1]["payload"]) == {"temp": 21.5, "ok": True}
    assert base64.b64decode(items[0]["payload"]) == b"m000001"
    # devices
    listed = await client.get("/v1/inspect/devices", params={"pageSize": 2})
    assert listed.body["page"] == 1 and listed.body["pageAmount"] == 2 and len(listed.body["items"]) == 2
    assert listed.body["items"][0] == {"id": a.iccid, "iccid": a.iccid, "imsi1": a.imsi, "ip": a.ip_address}
    second = await client.get("/v1/inspect/devices", params={"pageSize": 2, "page": 2, "sort": "-iccid"})
    assert [d["iccid"] for d in second.body["items"]] == [a.iccid]
    one = await client.get("/v1/inspect/devices", params={"q": f"iccid:{DEVICES[1].iccid}"})
    assert [d["iccid"] for d in one.body["items"]] == [DEVICES[1].iccid]
    single = await client.get(f"/v1/inspect/devices/{a.iccid}")
    assert single.body == {"id": a.iccid, "iccid": a.iccid, "imsi1": a.imsi, "ip": a.ip_address, "name": "test-10"}
    assert (await client.get("/v1/inspect/devices/8988280666999999999")).status == 404
    assert (await client.get("/v1/inspect/devices", params={"pageSize": 51})).status == 400


def test_history_pages_are_index_range_scans(tmp_path):
    """Every page is one range scan of an index in (..., received_ms, seq) order: no sort, no OFFSET."""
    from inspector.history import HistoryQuery, history_sql
    from inspector.sqlite import SqliteStore

    conn = SqliteStore(tmp_path / "plans.db").connection()
    # one device: a range scan of device_messages' key merged with the not yet indexed tail of
    # messages, a range of seq (sorted: it holds at most a fill interval of traffic)
    for query in (HistoryQuery("x", None, 0, 100, 5), HistoryQuery("x", "UDP", 0, None, 5, (3, 4)),
                  HistoryQuery("x", None, 0, None, 5, (3, 4), newest_first=True)):
        sql, args = history_sql(query, 10, 3)
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        indexed, _, tail = plan.partition(" | RIGHT | ")
        assert indexed.startswith("MERGE (UNION ALL) | LEFT | SEARCH d USING PRIMARY KEY (iccid=? AND received_ms>"), plan
        assert "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)" in indexed and "TEMP B-TREE" not in indexed, plan
        assert tail.startswith("SEARCH messages USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"), plan
    cases = {
        "messages_by_protocol": [HistoryQuery(None, "UDP", 0, 100, 5, (3, 4))],
        "messages_by_time": [HistoryQuery(None, None, 0, None, 5), HistoryQuery(None, None, 0, 100, 5, (3, 4))],
    }
    for index, queries in cases.items():
        for query in queries:
            sql, args = history_sql(query, 10)
            plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert f"SEARCH messages USING INDEX {index}" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
