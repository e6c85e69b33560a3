"""Webhook delivery semantics: retries, order per SIM, INTEGRATION_FAILED, restart, resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.cli import main as cli
from integrators.base import INTEGRATION_ACTIVE, INTEGRATION_FAILED
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post


def payload_order(events: list[dict], iccid: str) -> list[str]:
    import base64
    return [base64.b64decode(e["payload"]["value"]).decode() for e in events
            if e["type"] == "TELEMETRY_DATA" and e["device"]["iccid"] == iccid]


async def send_numbered(port: int, devices: list, count: int) -> None:
    for n in range(count):
        for device in devices:
            assert (await coap_post(port, device.ip_address, f"{device.iccid[-2:]}-{n:03d}".encode())).code == "2.04"


async def test_receiver_down_then_up_loses_nothing_and_keeps_order(tmp_path, receiver, ca_file, start_gateway):
    devices = [sim(17), sim(18), sim(19)]
    hook = webhook(receiver, ca_file, retry_schedule=[0.2] * 30)
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), devices)
    receiver.status = 503
    await send_numbered(gw.coap_port, devices, 8)
    await asyncio.sleep(0.5)
    assert receiver.events == []
    receiver.status = 200
    events = await receiver.wait_for(24, timeout=20)
    for device in devices:
        assert payload_order(events, device.iccid) == [f"{device.iccid[-2:]}-{n:03d}" for n in range(8)]
    assert len(events) == 24
    text = gw.metrics.render().decode()
    assert 'nce_delivery_delivered_total{integration="hook"} 24.0' in text
    assert 'nce_delivery_retried_total{integration="hook"}' in text
    await asyncio.sleep(0.2)
    assert gw.store.outbox_depth(gw.integrations.workers[1].handle.id) == 0


async def test_last_failure_disables_integration_until_cli_restart(tmp_path, receiver, ca_file, start_gateway):
    devices = [sim(20), sim(21)]
    hook = webhook(receiver, ca_file, retry_schedule=[0.1, 0.1])
    config = make_config(tmp_path, webhooks=[hook])
    gw = await start_gateway(config, devices)
    receiver.status = 500
    await send_numbered(gw.coap_port, devices, 3)
    worker = next(iter(gw.integrations.workers.values()))
    for _ in range(100):
        if worker.handle.state == INTEGRATION_FAILED:
            break
        await asyncio.sleep(0.05)
    assert worker.handle.state == INTEGRATION_FAILED
    await gw.committer.flush()
    (row,) = gw.store.list_integrations()
    assert row["state"] == INTEGRATION_FAILED
    (error,) = gw.store.events(event_type="ERROR")
    assert error["error"]["message"] == "CloudIntegrator[IntegrationDisabled]"
    assert error["error"]["type"] == "INTEGRATION"
    assert "after 3 failed delivery attempts" in error["error"]["description"]
    assert "HTTP 500" in error["error"]["description"]

    # paused: more messages are stored and queued, nothing is attempted
    receiver.status = 200
    assert (await coap_post(gw.coap_port, devices[0].ip_address, f"{devices[0].iccid[-2:]}-003".encode())).code == "2.04"
    await asyncio.sleep(0.5)
    assert receiver.events == []

    # the CLI (another process in real life) restarts it through the store
    toml = Path(tmp_path) / "cli.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    assert await asyncio.to_thread(cli, ["integrations", "restart", "hook", "--config", str(toml)]) == 0
    events = await receiver.wait_for(8, timeout=10)  # 7 telemetry + the ERROR event
    assert payload_order(events, devices[0].iccid) == [f"{devices[0].iccid[-2:]}-{n:03d}" for n in range(4)]
    assert payload_order(events, devices[1].iccid) == [f"{devices[1].iccid[-2:]}-{n:03d}" for n in range(3)]
    assert [e["error"]["message"] for e in events if e["type"] == "ERROR"] == ["CloudIntegrator[IntegrationDisabled]"]
    (restarted,) = gw.integrations.workers.values()  # a restart replaces the worker (clean slate)
    assert restarted is not worker and restarted.handle.state == INTEGRATION_ACTIVE


async def test_restart_of_the_gateway_resumes_delivery(tmp_path, receiver, ca_file, start_gateway):
    device = sim(22)
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file, retry_schedule=[0.2] * 50)])
    gw = await start_gateway(config, [device])
    receiver.status = 503
    await send_numbered(gw.coap_port, [device], 5)
    await gw.stop()
    receiver.status = 200
    gw2 = await start_gateway(config)
    events = await receiver.wait_for(5)
    assert payload_order(events, device.iccid) == [f"{device.iccid[-2:]}-{n:03d}" for n in range(5)]
    assert len({e["id"] for e in events}) == 5
    await gw2.committer.flush()


async def test_event_types_filter_and_test_message(tmp_path, receiver, ca_file, start_gateway):
    device = sim(23)
    hook = webhook(receiver, ca_file, event_types=["ERROR", "TEST_MESSAGE"])
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [device])
    assert (await coap_post(gw.coap_port, device.ip_address, b"not for this hook")).code == "2.04"
    worker = next(iter(gw.integrations.workers.values()))
    event_id = gw.integrations.send_test(worker.handle, 1234)
    (event,) = await receiver.wait_for(1)
    assert event == {"id": event_id, "type": "TEST_MESSAGE", "received": "1234", "version": "1.0.0",
                     "integration": {"id": worker.handle.uuid, "name": "hook"}}
    await asyncio.sleep(0.3)
    assert len(receiver.events) == 1
    assert json.loads(json.dumps(gw.store.events(event_type="TELEMETRY_DATA")))[0]["device"]["iccid"] == device.iccid


async def test_untrusted_certificate_is_a_delivery_failure(tmp_path, receiver, start_gateway):
    device = sim(24)
    hook = webhook(receiver, None, retry_schedule=[0.1])  # system CAs do not know the test CA
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [device])
    assert (await coap_post(gw.coap_port, device.ip_address, b"x")).code == "2.04"
    worker = next(iter(gw.integrations.workers.values()))
    for _ in range(100):
        if worker.handle.state == INTEGRATION_FAILED:
            break
        await asyncio.sleep(0.05)
    await gw.committer.flush()
    (error,) = gw.store.events(event_type="ERROR")
    assert "certificate" in error["error"]["description"].lower()
    assert receiver.events == []


async def test_restart_right_after_the_failure_starts_from_attempt_one(tmp_path, receiver, ca_file, start_gateway):
    """The attempt counts of the failed round must not outlive the restart (they were flushed
    to the store up to 50 ms after INTEGRATION_FAILED, i.e. possibly after the restart's reset)."""
    device = sim(25)
    hook = webhook(receiver, ca_file, retry_schedule=[0.05])
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [device])
    receiver.status = 500
    assert (await coap_post(gw.coap_port, device.ip_address, b"x")).code == "2.04"
    for restart in range(3):
        worker = next(iter(gw.integrations.workers.values()))
        for _ in range(5000):
            if worker.handle.state == INTEGRATION_FAILED:
                break
            await asyncio.sleep(0.001)
        assert worker.handle.state == INTEGRATION_FAILED
        assert receiver.attempts == 2 * (restart + 1)
        await gw.integrations.restart(worker.handle.id)  # at once: within the worker's flush interval
    worker = next(iter(gw.integrations.workers.values()))
    for _ in range(5000):
        if worker.handle.state == INTEGRATION_FAILED:
            break
        await asyncio.sleep(0.001)
    await gw.committer.flush()
    assert [e["error"]["description"].split(";")[0] for e in gw.store.events(event_type="ERROR")] == [
        "Integration hook was disabled after 2 failed delivery attempts"] * 4
    assert receiver.attempts == 8


async def test_cli_restart_of_an_active_integration_retries_waiting_events_at_once(tmp_path, receiver, ca_file,
                                                                                    start_gateway):
    """A restart is a clean slate also while the integration is active: an event waiting for
    its next attempt (here 60 s away) goes out at once, from attempt 1."""
    device = sim(26)
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file, retry_schedule=[60, 60])])
    gw = await start_gateway(config, [device])
    receiver.status = 503
    assert (await coap_post(gw.coap_port, device.ip_address, b"waiting")).code == "2.04"
    for _ in range(200):
        if receiver.attempts:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the attempt count is written
    (row,) = gw.store.list_integrations()
    assert row["state"] == INTEGRATION_ACTIVE and row["restarts"] == 0
    receiver.status = 200
    toml = Path(tmp_path) / "cli.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    assert cli(["integrations", "restart", "hook", "--config", str(toml)]) == 0
    (event,) = await receiver.wait_for(1, timeout=10)
    assert payload_order([event], device.iccid) == ["waiting"]
    assert receiver.attempts == 2
    (row,) = gw.store.list_integrations()
    assert row["restarts"] == 1


async def test_deliveries_recorded_while_the_writer_is_busy_survive_a_stop(tmp_path, receiver, ca_file,
                                                                           start_gateway):
    """Stopping cancels the 50 ms flusher; a flush queued behind a busy writer thread must still
    delete the delivered rows, or the next start delivers them again."""
    import time

    device = sim(27)
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file)])
    gw = await start_gateway(config, [device])
    assert (await coap_post(gw.coap_port, device.ip_address, b"once")).code == "2.04"
    await receiver.wait_for(1)
    busy = asyncio.get_running_loop().create_task(gw.committer.write(time.sleep, 0.6))
    await asyncio.sleep(0.2)  # the flusher has queued the delete behind the busy writer
    await gw.stop()
    await busy
    (row,) = gw.store.list_integrations()
    assert gw.store.outbox_depth(row["id"]) == 0


@pytest.mark.abandons_worker
async def test_a_worker_that_does_not_stop_cannot_hold_up_a_restart(caplog):
    """A sender stuck even through cancellation (seen once as a hung restart) is abandoned
    after the timeout, with a log line, so restarts and shutdown go on."""
    import types

    from integrators.manager import stop_worker

    release = asyncio.Event()

    async def stuck_stop() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores cancellation, as a buggy sender could

    worker = types.SimpleNamespace(stop=stuck_stop, handle=types.SimpleNamespace(name="stuck"))
    started = asyncio.get_running_loop().time()
    await stop_worker(worker, timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 2
    assert [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "integration_stop_timeout"] == [
        "integration stuck did not stop within 0.2 s; going on without it"]
    release.set()
    await asyncio.sleep(0.01)
