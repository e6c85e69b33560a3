"""AWS IoT Core over HTTPS (boto3 ``iot-data`` publish), against moto's server on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
from aiohttp import web

from firmware_examples.emulator import send_udp
from gateway import events
from gateway.config import AwsIntegrationConfig
from integrators.aws_iot_data import AwsIotDataSender, AwsIotDataSettings
from integrators.base import INTEGRATION_FAILED
from tests.conftest import make_config, sim
from tests.test_aws_mqtt import errors, stored_bodies, wait_until
from tests.test_uplink_e2e import coap_post

# event times are now: the retention purge that runs at start-up drops events older than
# 7 days (with their outbox rows), and a fixed 2023 date raced with it
NOW = time.time_ns() // 1_000_000

moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")

ACCOUNT = "123456789012"
REGION = "eu-central-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/nce-os-integration"


@pytest.fixture(scope="module")
def moto_url():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, tmp_path):
    """The default credential chain finds test keys in the environment, and nothing else."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
                       "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def published() -> list[tuple[str, bytes]]:
    from moto.iotdata.models import iotdata_backends

    return iotdata_backends[ACCOUNT][REGION].published_payloads


@pytest.fixture(autouse=True)
def clear_published():
    published().clear()
    yield


def iot_data(moto_url: str, **overrides: Any) -> AwsIntegrationConfig:
    values: dict[str, Any] = {"name": "iot-https", "mode": "iot_data", "region": REGION, "endpoint_url": moto_url,
                              "retry_schedule": [0.1]}
    values.update(overrides)
    return AwsIntegrationConfig(**values)


async def start(start_gateway, tmp_path, integration: AwsIntegrationConfig, sims: list):
    config = make_config(tmp_path)
    config.aws_integrations = [integration]
    return await start_gateway(config, sims)


async def wait_published(count: int, timeout: float = 15.0) -> list[tuple[str, bytes]]:
    deadline = time.monotonic() + timeout
    while len(published()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(published())} of {count} published: {published()[-3:]}")
        await asyncio.sleep(0.02)
    return list(published())


async def test_recorded_topic_payload_pairs_equal_what_was_sent(tmp_path, moto_url, start_gateway):
    device, other = sim(25), sim(26)
    gw = await start(start_gateway, tmp_path, iot_data(moto_url), [device, other])
    await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, device.ip_address, b"udp")
    assert (await coap_post(gw.coap_port, device.ip_address, b"with t", topic="a/b")).code == "2.04"
    assert (await coap_post(gw.coap_port, other.ip_address, b"without t")).code == "2.04"
    gw.pipeline.translated(device, "LWM2M", b"\x00", {"3/0/0": "nce"})
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "hello"))
    gw.pipeline.emit(events.error(device, NOW + 1, error_type="DEVICE", message="m", description="d",
                                  payload_exists=False))
    gw.pipeline.emit(events.location(device, NOW + 2, "CellTower", 13.4, 52.5))
    worker = next(iter(gw.integrations.workers.values()))
    gw.integrations.send_test(worker.handle, NOW + 3)
    records = await wait_published(8)
    await gw.committer.flush()
    topic_of_type = {"LIFECYCLE": "lifecycle", "ERROR": "error", "LOCATION": "location",
                     "TEST_MESSAGE": "integration-status"}
    expected = []
    for _event_id, (event_type, body) in stored_bodies(gw).items():
        envelope = json.loads(body)
        if event_type == "TELEMETRY_DATA":
            iccid, t = envelope["device"]["iccid"], envelope["payload"].get("topic")
            topic = (f"{iccid}/{t}" if t else iccid) if envelope["source"] == "COAP" else f"{iccid}/messages"
        else:
            topic = topic_of_type[event_type]
        expected.append((topic, body.encode()))
    assert sorted(records) == sorted(expected)
    assert len(records) == 8


async def test_assume_role_with_external_id_and_refresh(tmp_path, moto_url, start_gateway):
    from moto.sts.models import sts_backends

    device = sim(27)
    integration = iot_data(moto_url, role_arn=ROLE, external_id="1nce-external-id-42",
                           session_name="nce-test", sts_endpoint_url=moto_url, event_types=["LIFECYCLE"])
    gw = await start(start_gateway, tmp_path, integration, [device])
    sender: AwsIotDataSender = next(iter(gw.integrations.workers.values())).sender
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "one"))
    await wait_published(1)
    assert sender.role_sessions == 1
    roles = [r for r in sts_backends[ACCOUNT]["global"].assumed_roles if r.session_name == "nce-test"]
    assert roles and roles[-1].external_id == "1nce-external-id-42" and roles[-1].role_arn == ROLE
    first_key = sender.credentials.access_key

    # near expiry: botocore refreshes before the next request is signed
    sender.credentials._expiry_time = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
    gw.pipeline.emit(events.lifecycle(device, NOW + 1, "DEVICE_FIRST_TIME_REGISTERED", "two"))
    records = await wait_published(2)
    assert sender.role_sessions == 2
    assert sender.credentials.access_key != first_key
    assert [json.loads(p)["lifecycle"]["message"] for _t, p in records] == ["one", "two"]


async def test_boto3_runs_off_the_event_loop(moto_url):
    sender = AwsIotDataSender(AwsIotDataSettings(region=REGION, endpoint_url=moto_url))
    threads: list[str] = []
    original = sender._publish

    def spy(topic: str, payload: bytes) -> None:
        threads.append(threading.current_thread().name)
        original(topic, payload)

    sender._publish = spy  # type: ignore[method-assign]
    body = events.lifecycle(sim(28), 1, "DEVICE_FIRST_TIME_REGISTERED", "x").body
    await sender.send(body, None, "LIFECYCLE")
    await sender.close()
    assert threads and threads[0] != threading.main_thread().name and threads[0].startswith("aws-")


@pytest.fixture
async def forbidding_endpoint():
    """An iot-data endpoint that denies publishing as AWS IoT Core does when the policy says no."""
    async def publish(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"message": "Access to the requested resource is denied"}, status=403,
                                 headers={"x-amzn-ErrorType": "ForbiddenException:"})

    app = web.Application()
    app.router.add_post("/topics/{topic:.*}", publish)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


async def test_forbidden_publish_gives_a_clear_error(tmp_path, forbidding_endpoint, start_gateway):
    device = sim(29)
    gw = await start(start_gateway, tmp_path, AwsIntegrationConfig(
        name="iot-https", mode="iot_data", region=REGION, endpoint_url=forbidding_endpoint, retry_schedule=[0.1],
        event_types=["LIFECYCLE"]), [device])
    gw.pipeline.emit(events.lifecycle(device, NOW, "DEVICE_FIRST_TIME_REGISTERED", "x"))
    worker = next(iter(gw.integrations.workers.values()))
    await wait_until(lambda: worker.handle.state == INTEGRATION_FAILED)
    await gw.committer.flush()
    early, final = errors(gw)
    assert early["error"]["message"] == "CloudIntegrator[PublishDenied]"
    assert "publishing to topic 'lifecycle' was denied (ForbiddenException)" in early["error"]["description"]
    assert final["error"]["message"] == "CloudIntegrator[IntegrationDisabled]"
    assert "ForbiddenException" in final["error"]["description"]
    assert "testing" not in json.dumps([early, final])  # no credentials in events
