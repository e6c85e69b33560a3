"""The management API's AWS bodies (integrators/aws_api.py): request → stored config → response."""

from __future__ import annotations

import base64
import json

import pytest

from integrators import aws_api
from integrators.aws_api import AwsApiError, apply_patch, create_response, integration_response, parse_create
from integrators.base import ROLLOUT_DONE, ROLLOUT_STARTED


@pytest.fixture
def files(tmp_path):
    for name in ("ca.pem", "thing.pem", "thing.key"):
        (tmp_path / name).write_text("-----BEGIN SOMETHING-----\n")
    return tmp_path


def mqtt_body(files, **overrides):
    body = {"name": "iot", "eventTypes": [{"type": "TELEMETRY_DATA"}, {"type": "ERROR", "version": "1.0.0"}],
            "jsonPayloadEnabled": True,
            "connection": {"mode": "mqtt", "host": "abc-ats.iot.eu-central-1.amazonaws.com",
                           "caFile": str(files / "ca.pem"), "certFile": str(files / "thing.pem"),
                           "keyFile": str(files / "thing.key"), "clientId": "gw-1", "publishRateLimit": 50}}
    body.update(overrides)
    return body


def row_of(request, **extra):
    return {"id": 1, "uuid": "5f0c0b9e-4f57-4c52-9a55-3a1c3b1f3f10", "name": request.name, "kind": request.kind,
            "origin": "api", "config": request.config, "state": request.state, "created_ms": 1646643089015,
            "updated_ms": 1646643089015, **extra}


def test_mqtt_request_to_config_and_back_without_secrets(files):
    request = parse_create(mqtt_body(files))
    assert (request.name, request.kind, request.state) == ("iot", "aws_mqtt", ROLLOUT_DONE)
    assert request.config["event_types"] == ["TELEMETRY_DATA", "ERROR"]
    assert request.config["key_file"] == str(files / "thing.key")
    assert request.config["publish_rate_limit"] == 50.0 and request.config["json_payload_enabled"] is True
    created = create_response(row_of(request))
    assert set(created) == {"id", "name", "type", "state", "eventTypes", "jsonPayloadEnabled", "jwt",
                            "createdTime", "updatedTime"}
    assert created["type"] == "AWS" and created["createdTime"] == "2022-03-07T08:51:29.015Z"
    assert created["eventTypes"] == [{"type": "TELEMETRY_DATA", "version": "1.0.0"},
                                     {"type": "ERROR", "version": "1.0.0"}]
    header, claims, signature = created["jwt"].split(".")
    assert json.loads(base64.urlsafe_b64decode(claims + "==")) == {
        "iss": "nce-gateway", "sub": "5f0c0b9e-4f57-4c52-9a55-3a1c3b1f3f10", "name": "iot"}
    got = integration_response(row_of(request))
    assert got["region"] == "eu-central-1"
    assert got["connection"]["host"].startswith("abc-ats") and got["connection"]["clientId"] == "gw-1"
    assert "keyFile" not in got["connection"] and "thing.key" not in json.dumps(got)


def test_iot_data_request_with_role(files):
    request = parse_create({"name": "https", "eventTypes": [{"type": "LOCATION"}], "connection": {
        "mode": "iot_data", "region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/nce",
        "externalId": "secret-ext", "sessionName": "gw"}, "retrySchedule": [1, 2]})
    assert request.kind == "aws_iot_data" and request.config["external_id"] == "secret-ext"
    assert request.config["retry_schedule"] == [1.0, 2.0]
    got = integration_response(row_of(request))
    assert got["awsAccountId"] == "123456789012" and got["region"] == "eu-west-1"
    assert got["connection"] == {"mode": "iot_data", "region": "eu-west-1",
                                 "roleArn": "arn:aws:iam::123456789012:role/nce", "sessionName": "gw",
                                 "externalIdSet": True}
    assert "secret-ext" not in json.dumps(got)


def test_plain_1nce_body_waits_for_a_connection_then_patch_completes_it(files):
    request = parse_create({"name": "iot", "eventTypes": [{"type": "LIFECYCLE"}]})
    assert request.state == ROLLOUT_STARTED and request.config["json_payload_enabled"] is False
    assert "connection" not in integration_response(row_of(request))
    patched = apply_patch("iot", request.config, request.state,
                          {"connection": mqtt_body(files)["connection"], "jsonPayloadEnabled": True})
    assert patched.state == ROLLOUT_DONE and patched.kind == "aws_mqtt"
    assert patched.config["event_types"] == ["LIFECYCLE"] and patched.config["json_payload_enabled"] is True
    # a partial connection patch merges; a new mode starts afresh
    again = apply_patch("iot", patched.config, "INTEGRATION_ACTIVE", {"connection": {"port": 443}})
    assert again.config["port"] == 443 and again.config["host"].startswith("abc") and again.state == "INTEGRATION_ACTIVE"
    switched = apply_patch("iot", patched.config, "INTEGRATION_ACTIVE",
                           {"connection": {"mode": "iot_data", "region": "eu-central-1"}})
    assert switched.kind == "aws_iot_data" and "host" not in switched.config


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"eventTypes": []}, "eventTypes"),
    ({"eventTypes": [{"type": "TEST_MESSAGE"}]}, "eventTypes[0].type"),
    ({"eventTypes": [{"type": "ERROR", "version": "2.0.0"}]}, "eventTypes[0].version"),
    ({"jsonPayloadEnabled": "yes"}, "jsonPayloadEnabled"),
    ({"retrySchedule": [-1]}, "retrySchedule"),
    ({"extra": 1}, "extra"),
    ({"connection": {"mode": "mqtt", "host": "h", "keyFile": "/k"}}, "connection.certFile"),
    ({"connection": {"mode": "mqtt", "host": "h", "certFile": "/nonexistent", "keyFile": "/nonexistent"}},
     "connection.certFile"),
    ({"connection": {"mode": "mqtt", "host": "h", "port": "8883"}}, "connection.port"),
    ({"connection": {"mode": "carrier-pigeon"}}, "connection.mode"),
    ({"connection": {"mode": "iot_data", "region": "eu-central-1", "host": "h"}}, "connection.host"),
    ({"connection": {"mode": "iot_data", "region": "eu-central-1", "roleArn": "nope"}}, "connection.roleArn"),
    ({"connection": {"mode": "iot_data", "region": "eu-central-1", "externalId": "x1"}}, "connection.externalId"),
    ({"connection": {"mode": "iot_data"}}, "connection.region"),
    ({"connection": {"mode": "iot_data", "region": "eu-central-1", "sessionDurationSeconds": 5}},
     "connection.sessionDurationSeconds"),
    ({"connection": {"tls": True}}, "connection.tls"),
])
def test_errors_name_the_field(files, change, field):
    body = {"name": "iot", "eventTypes": [{"type": "ERROR"}]}
    body.update(change)
    with pytest.raises(AwsApiError) as info:
        parse_create(body)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_patch_refuses_webhook_fields(files):
    request = parse_create(mqtt_body(files))
    with pytest.raises(AwsApiError, match="url: only webhook"):
        apply_patch("iot", request.config, "INTEGRATION_ACTIVE", {"url": "https://x"})


def test_is_aws():
    assert aws_api.is_aws({"kind": "aws_mqtt"}) and not aws_api.is_aws({"kind": "webhook"})


async def test_an_integration_waiting_for_its_connection_gets_no_worker_and_no_events(tmp_path, start_gateway):
    from tests.conftest import make_config

    gw = await start_gateway(make_config(tmp_path))
    request = parse_create({"name": "later", "eventTypes": [{"type": "ERROR"}]})
    gw.store.upsert_integration(uuid="u-1", name=request.name, kind=request.kind, origin="api",
                                config=request.config, state=request.state)
    await gw.integrations.reload()
    assert gw.integrations.workers == {} and gw.integrations.routes("ERROR") == ()
    (row,) = gw.store.list_integrations()
    assert row["state"] == ROLLOUT_STARTED


def test_config_file_tuning_keys_are_left_out_of_the_answer(files):
    """A [[aws_integrations]] entry may carry keys the API does not know (reconnect timings,
    threads, an STS endpoint): its answer leaves them out instead of failing."""
    request = parse_create(mqtt_body(files))
    config = {**request.config, "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 0.5}
    got = integration_response(row_of(request, config=config))
    assert "reconnect_min_seconds" not in json.dumps(got) and got["connection"]["clientId"] == "gw-1"
    https = parse_create({"name": "https", "eventTypes": [{"type": "LOCATION"}],
                          "connection": {"mode": "iot_data", "region": "eu-west-1"}})
    config = {**https.config, "threads": 2, "sts_endpoint_url": "http://127.0.0.1:5000"}
    assert integration_response(row_of(https, config=config))["connection"] == {
        "mode": "iot_data", "region": "eu-west-1", "externalIdSet": False}
