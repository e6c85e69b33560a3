"""AWS IoT Core integrations through the management API, publishing to a private Mosquitto with
mutual TLS (the stand-in for AWS IoT Core of tests/test_aws_mqtt.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bench.mqtt_broker import Mosquitto, Pki, available
from gateway.config import AwsIntegrationConfig
from integrators.base import INTEGRATION_ACTIVE, ROLLOUT_STARTED
from tests.api_support import ApiClient, start_api
from tests.conftest import make_config, sim
from tests.test_aws_mqtt import broker, pki, subscriber  # noqa: F401 - the same broker fixtures
from tests.test_uplink_e2e import coap_post

pytestmark = pytest.mark.skipif(not available(), reason="Debian's mosquitto is not installed")

DEVICE = sim(14)
AWS = "/v1/integrate/clouds/aws"
CLOUDS = "/v1/integrate/clouds"


@pytest.fixture
async def api(start_gateway, tmp_path, broker, pki):
    files = pki.client("gateway")
    config = make_config(tmp_path, api={"test_timeout_seconds": 5})
    # a config-file integration beside the API's (read-only through the API; its reconnect keys are
    # config-file only and left out of answers)
    config.aws_integrations = [AwsIntegrationConfig(
        name="from-file", host="localhost", port=broker.port, ca_file=pki.ca_file, cert_file=files.cert_file,
        key_file=files.key_file, client_id="gw-from-file", event_types=["GEOFENCE"], reconnect_min_seconds=0.1,
        reconnect_max_seconds=0.5)]
    return await start_api(start_gateway, config, [DEVICE], roles=("Admin",))


def connection(broker: Mosquitto, pki: Pki, **overrides) -> dict:
    files = pki.client("gateway")
    values = {"mode": "mqtt", "host": "localhost", "port": broker.port, "caFile": pki.ca_file,
              "certFile": files.cert_file, "keyFile": files.key_file, "clientId": "gw-api"}
    values.update(overrides)
    return values


def secrets_of(pki: Pki) -> list[str]:
    """What must never appear in an answer or the log: the key file's path and content."""
    key_file = pki.client("gateway").key_file
    pem = Path(key_file).read_text()
    return [key_file, pem.splitlines()[1]]


async def test_aws_mqtt_life_cycle(api, broker, pki, subscriber, caplog):
    caplog.set_level(logging.DEBUG)
    client = api.client("Admin")
    body = {"name": "iot", "eventTypes": [{"type": "TELEMETRY_DATA"}, {"type": "LIFECYCLE", "version": "1.0.0"}],
            "jsonPayloadEnabled": False, "connection": connection(broker, pki), "retrySchedule": [0.1, 0.1]}
    created = await client.post(AWS, json=body)
    assert created.status == 201, created.body
    integration = created.body
    assert set(integration) == {"id", "name", "type", "state", "eventTypes", "jsonPayloadEnabled", "jwt",
                                "createdTime", "updatedTime"}
    assert (integration["type"], integration["name"], integration["state"]) == ("AWS", "iot", INTEGRATION_ACTIVE)
    assert integration["eventTypes"] == [{"type": "TELEMETRY_DATA", "version": "1.0.0"},
                                         {"type": "LIFECYCLE", "version": "1.0.0"}]
    ident = integration["id"]
    answers = [created.raw]

    # an event is published on its SPEC §4 topic
    assert (await coap_post(api.gateway.coap_port, DEVICE.ip_address, b"via api", topic="api/t")).code == "2.04"
    ((topic, payload),) = await subscriber.wait_for(1)
    assert topic == f"{DEVICE.iccid}/api/t" and json.loads(payload)["device"]["iccid"] == DEVICE.iccid

    # test: a TEST_MESSAGE on integration-status, confirmed by PUBACK
    tested = await client.post(f"{AWS}/{ident}/test")
    assert tested.status == 200 and tested.body == {"testStatus": "SUCCESS", "message": "Test was successful"}
    received = await subscriber.wait_for(2)
    assert received[1][0] == "integration-status"
    assert json.loads(received[1][1])["integration"] == {"id": ident, "name": "iot"}

    # restart: nothing to restart, a test message queued
    restarted = await client.post(f"{AWS}/{ident}/restart")
    assert restarted.status == 200 and restarted.body["restartStatus"] == "SUCCESS"
    assert restarted.body["integration"]["id"] == ident and "nothing to restart" in restarted.body["message"]
    assert (await subscriber.wait_for(3))[2][0] == "integration-status"

    # list and get: without secrets
    listed = await client.get(CLOUDS)
    assert {(i["name"], i["type"]) for i in listed.body["items"]} == {("iot", "AWS"), ("from-file", "AWS")}
    got = await client.get(f"{CLOUDS}/{ident}")
    assert got.status == 200
    assert got.body["connection"] == {"mode": "mqtt", "host": "localhost", "port": broker.port,
                                      "caFile": pki.ca_file, "certFile": pki.client("gateway").cert_file,
                                      "clientId": "gw-api"}
    assert got.body["retrySchedule"] == [0.1, 0.1] and got.body["jwt"] == integration["jwt"]
    answers += [listed.raw, got.raw]
    from_file = next(i for i in listed.body["items"] if i["name"] == "from-file")
    got_file = await client.get(f"{CLOUDS}/{from_file['id']}")
    assert got_file.status == 200 and got_file.body["connection"]["clientId"] == "gw-from-file"
    answers.append(got_file.raw)

    # PATCH: event types and a connection key; the running worker follows
    patched = await client.patch(f"{CLOUDS}/{ident}", json={"eventTypes": [{"type": "LIFECYCLE"}],
                                                            "connection": {"publishRateLimit": 50}})
    assert patched.status == 200, patched.body
    assert patched.body["eventTypes"] == [{"type": "LIFECYCLE", "version": "1.0.0"}]
    assert patched.body["connection"]["publishRateLimit"] == 50 and patched.body["state"] == INTEGRATION_ACTIVE
    assert patched.body["createdTime"] == integration["createdTime"]
    answers.append(patched.raw)
    worker = next(w for w in api.gateway.integrations.workers.values() if w.handle.uuid == ident)
    assert worker.handle.event_types == frozenset({"LIFECYCLE"})
    # config-file integrations are changed in the file
    refused = await client.patch(f"{CLOUDS}/{from_file['id']}", json={"jsonPayloadEnabled": True})
    assert refused.status == 409 and "[[aws_integrations]]" in refused.body["errors"][0]["message"]

    # delete: gone, and nothing more is published
    assert (await client.delete(f"{CLOUDS}/{ident}")).status == 204
    assert (await client.get(f"{CLOUDS}/{ident}")).status == 404
    assert (await client.post(f"{AWS}/{ident}/test")).status == 404
    assert all(w.handle.uuid != ident for w in api.gateway.integrations.workers.values())

    assert any(r.name == "nce.api.aws" for r in caplog.records)
    for secret in secrets_of(pki):
        assert all(secret.encode() not in raw for raw in answers), secret
        assert all(secret not in repr(vars(record)) for record in caplog.records), secret  # extra fields too


async def test_waiting_for_a_connection_then_patched_to_https(api, broker, pki):
    client = api.client("Admin")
    created = await client.post(AWS, json={"name": "later", "eventTypes": [{"type": "GEOFENCE"}]})
    assert created.status == 201 and created.body["state"] == ROLLOUT_STARTED
    ident = created.body["id"]
    for action in ("test", "restart"):  # nothing would deliver a test message: 409, not a queued event
        answer = await client.post(f"{AWS}/{ident}/{action}")
        assert answer.status == 409 and ROLLOUT_STARTED in answer.body["errors"][0]["message"], action
    got = await client.get(f"{CLOUDS}/{ident}")
    assert got.body["state"] == ROLLOUT_STARTED and "connection" not in got.body
    # the connection arrives: HTTPS with an assumed role (kind and state change)
    patched = await client.patch(f"{CLOUDS}/{ident}", json={"connection": {
        "mode": "iot_data", "region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/nce",
        "externalId": "external-id-secret"}})
    assert patched.status == 200, patched.body
    assert patched.body["state"] == INTEGRATION_ACTIVE and patched.body["awsAccountId"] == "123456789012"
    assert patched.body["connection"] == {"mode": "iot_data", "region": "eu-west-1",
                                          "roleArn": "arn:aws:iam::123456789012:role/nce", "externalIdSet": True}
    assert b"external-id-secret" not in patched.raw
    rows = await api.gateway.read(api.gateway.store.list_integrations)
    assert next(r for r in rows if r["uuid"] == ident)["kind"] == "aws_iot_data"
    assert (await client.delete(f"{CLOUDS}/{ident}")).status == 204


async def test_bad_bodies_name_the_field(api, broker, pki, tmp_path):
    client = api.client("Admin")
    good = {"name": "iot-bad", "eventTypes": [{"type": "TELEMETRY_DATA"}], "connection": connection(broker, pki)}
    cases = [
        ({**good, "colour": "red"}, "colour"),
        ({**good, "eventTypes": [{"type": "TEST_MESSAGE"}]}, "eventTypes[0].type"),
        ({**good, "eventTypes": []}, "eventTypes"),
        ({**good, "name": ""}, "name"),
        ({**good, "connection": connection(broker, pki, certFile=str(tmp_path / "missing.pem"))},
         "connection.certFile"),
        ({**good, "connection": connection(broker, pki, mode="ftp")}, "connection.mode"),
        ({**good, "connection": connection(broker, pki, port="8883")}, "connection.port"),
        ({**good, "connection": connection(broker, pki, region="eu-west-1")}, "connection.region"),
        ({**good, "connection": {**connection(broker, pki), "password": "x"}}, "connection.password"),
        ({**good, "retrySchedule": [-1]}, "retrySchedule[0]"),
    ]
    for body, field in cases:
        answer = await client.post(AWS, json=body)
        assert answer.status == 400, (field, answer.body)
        assert answer.body["errors"][0]["field"] == field, (field, answer.body)
    assert (await client.post(AWS, json={**good, "name": "from-file"})).status == 409
    rows = await api.gateway.read(api.gateway.store.list_integrations)
    assert [r["name"] for r in rows] == ["from-file"]  # nothing refused was stored

    created = await client.post(AWS, json=good)
    ident = created.body["id"]
    for body, field in (({"url": "https://example.com"}, "url"), ({"connection": {"port": 0}}, "connection.port"),
                        ({"connection": {"keepalive": "long"}}, "connection.keepalive"),
                        ({"retrySchedule": []}, "retrySchedule"), ({"name": "renamed"}, "name")):
        answer = await client.patch(f"{CLOUDS}/{ident}", json=body)
        assert answer.status == 400 and answer.body["errors"][0]["field"] == field, (body, answer.body)
    # a webhook has no AWS fields
    hook = await client.post(f"{CLOUDS}/webhooks", json={"name": "hook", "url": "https://localhost:9/x",
                                                          "headers": {}, "eventTypes": [{"type": "GEOFENCE"}]})
    assert hook.status == 201
    answer = await client.patch(f"{CLOUDS}/{hook.body['id']}", json={"connection": {"port": 1}})
    assert answer.status == 400 and answer.body["errors"][0]["field"] == "connection"
    # the CloudFormation parameters name the template the gateway serves (tests/test_api_os_rest.py)
    answer = await client.get(f"{AWS}/parameters")
    assert answer.status == 200 and answer.body["awsIntegration"][0]["url"].endswith("/aws/templates/v1")
    assert (await ApiClient(api.base).post(AWS, json=good)).status == 401
