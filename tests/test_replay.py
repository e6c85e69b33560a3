"""Replay of stored events into an integration (docs/delivery.md#replay): API, CLI, roles,
retention, order per SIM while live traffic flows. Real gateway, real CoAP uplinks, a real
HTTPS receiver."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api_support import start_api
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post

ROOT = Path(__file__).resolve().parents[1]
SIMS = [sim(61), sim(62)]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    from gateway.api.timefmt import format_time
    return format_time(ms)


def text_of(event: dict) -> str:
    return base64.b64decode(event["payload"]["value"]).decode()


async def send(gateway, device, texts: list[str]) -> None:
    for text in texts:
        assert (await coap_post(gateway.coap_port, device.ip_address, text.encode())).code == "2.04"


async def wait_until(predicate, timeout: float = 15.0) -> None:
    async def _wait() -> None:
        while not predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(_wait(), timeout)


@pytest.fixture
async def api(start_gateway, tmp_path, receiver, ca_file):
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file)])
    return await start_api(start_gateway, config, SIMS, roles=("Owner", "Admin", "User", "API"))


async def hook_id(api) -> str:
    return (await api.client("Owner").get("/v1/integrate/clouds")).body["items"][0]["id"]


async def test_a_receiver_that_dropped_events_gets_them_back_in_order_while_live_traffic_flows(api, receiver):
    gateway = api.gateway
    start = now_ms() - 1
    # the receiver acknowledges these, but loses them (a bug on its side)
    for i in range(3):
        for device in SIMS:
            await send(gateway, device, [f"lost {device.iccid[-2:]} {i}"])
    lost = await receiver.wait_for(6)
    originals = [dict(e) for e in lost]
    receiver.events.clear()
    await asyncio.sleep(0.01)
    until = now_ms() + 1
    await asyncio.sleep(0.01)

    # replay the window while both SIMs keep sending
    live = asyncio.gather(*(send(gateway, d, [f"live {d.iccid[-2:]} {i}" for i in range(4)]) for d in SIMS))
    answer = await api.client("Admin").post(f"/v1/integrate/clouds/{await hook_id(api)}/replay",
                                            json={"since": iso(start), "until": iso(until)})
    await live
    assert answer.status == 200, answer.text
    assert answer.body["queued"] == 6 and answer.body["name"] == "hook"
    assert gateway.metrics.replayed.labels("hook")._value.get() == 6
    assert answer.body["eventTypes"] == ["TELEMETRY_DATA", "LIFECYCLE", "ERROR", "LOCATION", "GEOFENCE", "MO_SMS"]
    events = await receiver.wait_for(6 + 8)
    await asyncio.sleep(0.3)
    assert len(receiver.events) == 14  # nothing twice

    replayed = [e for e in events if e.get("replayed") is True]
    assert sorted(e["id"] for e in replayed) == sorted(e["id"] for e in originals)
    by_id = {e["id"]: e for e in originals}
    for event in replayed:  # the stored event, unchanged, plus the mark
        assert {k: v for k, v in event.items() if k != "replayed"} == by_id[event["id"]]
    for device in SIMS:
        tail = device.iccid[-2:]
        mine = [text_of(e) for e in events if e["device"]["iccid"] == device.iccid]
        assert [t for t in mine if t.startswith("lost")] == [f"lost {tail} {i}" for i in range(3)]
        assert [t for t in mine if t.startswith("live")] == [f"live {tail} {i}" for i in range(4)]
        assert all("replayed" not in e for e in events if text_of(e).startswith("live"))


async def test_only_owner_and_admin_may_replay(api):
    path = f"/v1/integrate/clouds/{await hook_id(api)}/replay"
    body = {"since": iso(now_ms() - 60_000)}
    for role in ("User", "API"):
        answer = await api.client(role).post(path, json=body)
        assert answer.status == 403, (role, answer.text)
    for role in ("Owner", "Admin"):
        answer = await api.client(role).post(path, json=body)
        assert answer.status == 200, (role, answer.text)
        assert answer.body["queued"] == 0
    assert (await api.client("Owner").post("/v1/integrate/clouds/nope/replay", json=body)).status == 404


async def test_windows_outside_retention_are_refused(api):
    path = f"/v1/integrate/clouds/{await hook_id(api)}/replay"
    client = api.client("Owner")
    old = await client.post(path, json={"since": iso(now_ms() - 8 * 86_400_000)})
    assert old.status == 400
    message = old.body["errors"][0]["message"]
    assert message.startswith("replay refused: the window starts before the retention limit: events are kept 7 "
                              "days, so the oldest that can be replayed is from ")
    empty = await client.post(path, json={"since": iso(now_ms() - 1000), "until": iso(now_ms() - 2000)})
    assert empty.status == 400 and "the window is empty" in empty.body["errors"][0]["message"]
    wrong_type = await client.post(path, json={"since": iso(now_ms() - 1000), "eventType": "TEST_MESSAGE"})
    assert wrong_type.status == 400  # not replayable: the schema's enum refuses it


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "integrations", "replay", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


async def test_cli_replay_reaches_the_running_gateway(api, receiver, tmp_path):
    gateway = api.gateway
    device = SIMS[0]
    await send(gateway, device, ["one", "two"])
    await receiver.wait_for(2)
    receiver.events.clear()
    config = tmp_path / "cli.toml"
    config.write_text(f'[store]\npath = "{gateway.config.store.path}"\n')

    result = await asyncio.to_thread(_cli, config, "hook", "--since", "10m", "--device", device.iccid,
                                     "--event-type", "TELEMETRY_DATA")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hook: queued 2 event(s) from ")
    assert "for delivery again, marked \"replayed\": true" in result.stdout
    events = await receiver.wait_for(2)
    assert [(text_of(e), e["replayed"]) for e in events] == [("one", True), ("two", True)]

    refused = await asyncio.to_thread(_cli, config, "hook", "--since", "8d")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: replay refused: the window starts before the retention limit")
    unknown = await asyncio.to_thread(_cli, config, "nope", "--since", "1h")
    assert unknown.returncode == 1 and unknown.stderr == "error: no integration named 'nope'\n"
    bad_time = await asyncio.to_thread(_cli, config, "hook", "--since", "yesterday")
    assert bad_time.returncode == 1 and "is neither an ISO 8601 time" in bad_time.stderr
