"""Integration secrets are write-only (issue 19, item 7): no role reads a webhook header value or
an AWS external id back, and only Owner and Admin create or change integrations."""

from __future__ import annotations

import json
import logging

import pytest

from tests.api_support import ROLES, start_api
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post

DEVICE = sim(12)
CLOUDS = "/v1/integrate/clouds"
FILE_SECRET = "Bearer file-secret-4711"
API_SECRET = "api-key-secret-0815"
EXTERNAL_ID = "external-id-secret-42"
MASK = "********"


@pytest.fixture
async def api(start_gateway, tmp_path, receiver, ca_file):
    config = make_config(tmp_path, api={"webhook_ca_file": ca_file},
                         webhooks=[webhook(receiver, ca_file, name="from-file", event_types=["TELEMETRY_DATA"],
                                           headers={"Authorization": FILE_SECRET})])
    return await start_api(start_gateway, config, [DEVICE])


async def _create(api, receiver) -> tuple[str, str]:
    owner = api.client("Owner")
    hook = await owner.post(f"{CLOUDS}/webhooks", json={
        "name": "api-hook", "url": receiver.url + "/api", "headers": {"X-Api-Key": API_SECRET, "X-Source": "gw"},
        "eventTypes": [{"type": "TELEMETRY_DATA"}]})
    assert hook.status == 201, hook.body
    assert hook.body["headers"] == {"X-Api-Key": MASK, "X-Source": MASK}
    aws = await owner.post(f"{CLOUDS}/aws", json={"name": "iot", "eventTypes": [{"type": "GEOFENCE"}], "connection": {
        "mode": "iot_data", "region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/nce",
        "externalId": EXTERNAL_ID}})
    assert aws.status == 201, aws.body
    return hook.body["id"], aws.body["id"]


async def test_no_role_reads_a_secret(api, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    ids = await _create(api, receiver)
    file_id = next(r["uuid"] for r in api.gateway.store.list_integrations() if r["name"] == "from-file")
    for role in ROLES:
        client = api.client(role)
        answers = [await client.get(CLOUDS)] + [await client.get(f"{CLOUDS}/{i}") for i in (*ids, file_id)]
        for answer in answers:
            assert answer.status == 200, (role, answer.body)
            for secret in (FILE_SECRET, "file-secret-4711", API_SECRET, EXTERNAL_ID):
                assert secret.encode() not in answer.raw, (role, secret)
        file_hook = answers[3].body
        assert file_hook["headers"] == {"Authorization": MASK}, role
        assert answers[1].body["headers"] == {"X-Api-Key": MASK, "X-Source": MASK}
        assert answers[2].body["connection"]["externalIdSet"] is True
    logged = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    for secret in (FILE_SECRET, API_SECRET, EXTERNAL_ID):
        assert secret not in logged


async def test_the_mask_sent_back_keeps_the_stored_value(api, receiver):
    hook_id, _ = await _create(api, receiver)
    admin = api.client("Admin")
    got = await admin.get(f"{CLOUDS}/{hook_id}")
    # what a client read, changed in one header and sent back: the masked one keeps its value
    headers = {**got.body["headers"], "X-Source": "changed"}
    patched = await admin.patch(f"{CLOUDS}/webhooks/{hook_id}", json={"headers": headers})
    assert patched.status == 200, patched.body
    stored = next(r for r in api.gateway.store.list_integrations() if r["uuid"] == hook_id)["config"]["headers"]
    assert stored == {"X-Api-Key": API_SECRET, "X-Source": "changed"}
    # and the delivery carries the real values
    assert (await coap_post(api.gateway.coap_port, DEVICE.ip_address, b"x")).code == "2.04"
    await receiver.wait_for(2)
    (sent,) = [h for path, h in receiver.requests if path == "/hook/api"]
    assert sent["X-Api-Key"] == API_SECRET and sent["X-Source"] == "changed"
    assert [h["Authorization"] for path, h in receiver.requests if path == "/hook"] == [FILE_SECRET]
    # the mask for a header that has no stored value is refused, naming it
    refused = await admin.patch(f"{CLOUDS}/webhooks/{hook_id}", json={"headers": {"X-New": MASK}})
    assert refused.status == 400 and refused.body["errors"][0]["field"] == "headers.X-New"


async def test_only_owner_and_admin_change_integrations(api, receiver):
    hook_id, aws_id = await _create(api, receiver)
    body = {"name": "by-user", "url": receiver.url, "headers": {}, "eventTypes": [{"type": "TELEMETRY_DATA"}]}
    before = api.gateway.store.list_integrations()
    for role in ("User", "API"):
        client = api.client(role)
        for answer in (await client.post(f"{CLOUDS}/webhooks", json=body),
                       await client.post(f"{CLOUDS}/aws", json={"name": "x", "eventTypes": [{"type": "GEOFENCE"}]}),
                       await client.patch(f"{CLOUDS}/webhooks/{hook_id}", json={"url": receiver.url + "/x"}),
                       await client.patch(f"{CLOUDS}/{aws_id}", json={"jsonPayloadEnabled": True}),
                       await client.delete(f"{CLOUDS}/{hook_id}")):
            assert answer.status == 403, (role, answer.body)
        # they may still read, test and restart
        assert (await client.get(f"{CLOUDS}/{hook_id}")).status == 200
        assert (await client.post(f"{CLOUDS}/webhooks/{hook_id}/restart")).status == 200
    assert api.gateway.store.list_integrations() == before
