"""Cloud integrations through the API: webhooks created, changed, tested, restarted and deleted,
side by side with the config file's."""

from __future__ import annotations

import asyncio

import pytest

from integrators.base import INTEGRATION_ACTIVE, INTEGRATION_FAILED
from tests.api_support import start_api
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post

DEVICE = sim(10)


@pytest.fixture
async def api(start_gateway, tmp_path, receiver, ca_file):
    config = make_config(tmp_path, api={"webhook_ca_file": ca_file, "test_timeout_seconds": 5},
                         webhooks=[webhook(receiver, ca_file, name="from-file", retry_schedule=[0.05],
                                           event_types=["TELEMETRY_DATA", "ERROR"])])
    return await start_api(start_gateway, config, [DEVICE], roles=("Admin",))


def new_hook(receiver, **overrides):
    body = {"name": "api-hook", "url": receiver.url + "/api?d=:iccid:", "headers": {"X-Key": "k1"},
            "eventTypes": [{"type": "TELEMETRY_DATA", "version": "1.0.0"}, {"type": "LIFECYCLE"}],
            "jsonPayloadEnabled": True}
    body.update(overrides)
    return body


async def wait_until(predicate, timeout: float = 5.0) -> None:
    async def _wait() -> None:
        while not predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(_wait(), timeout)


async def test_webhook_life_cycle(api, receiver):
    client = api.client("Admin")
    created = await client.post("/v1/integrate/clouds/webhooks", json=new_hook(receiver))
    assert created.status == 201, created.body
    hook = created.body
    assert hook["type"] == "WEBHOOK" and hook["name"] == "api-hook" and hook["state"] == INTEGRATION_ACTIVE
    assert hook["eventTypes"] == [{"type": "TELEMETRY_DATA", "version": "1.0.0"},
                                  {"type": "LIFECYCLE", "version": "1.0.0"}]
    assert hook["headers"] == {"X-Key": "********"} and hook["jsonPayloadEnabled"] is True  # write-only
    hook_id = hook["id"]
    # listed alike with the config file's integration
    listed = await client.get("/v1/integrate/clouds")
    assert {(i["name"], i["type"], i["state"]) for i in listed.body["items"]} == {
        ("from-file", "WEBHOOK", INTEGRATION_ACTIVE), ("api-hook", "WEBHOOK", INTEGRATION_ACTIVE)}
    got = await client.get(f"/v1/integrate/clouds/{hook_id}")
    assert got.body["url"] == receiver.url + "/api?d=:iccid:" and got.body["id"] == hook_id
    # it delivers: a device message reaches both integrations; placeholders and JSON payloads apply
    assert (await coap_post(api.gateway.coap_port, DEVICE.ip_address, b'{"t": 1}')).code == "2.04"
    await receiver.wait_for(2)
    paths = sorted(path for path, _ in receiver.requests)
    assert paths == ["/hook", f"/hook/api?d={DEVICE.iccid}"]
    api_event = next(e for (path, _), e in zip(receiver.requests, receiver.events, strict=True)
                     if path.startswith("/hook/api"))
    assert api_event["payload"] == {"type": "JSON", "value": {"t": 1}}
    # test: a TEST_MESSAGE for this integration only, answered after the target took it
    tested = await client.post(f"/v1/integrate/clouds/webhooks/{hook_id}/test")
    assert tested.status == 200 and tested.body == {"testStatus": "SUCCESS", "message": "Test was successful"}
    (test_event,) = receiver.of_type("TEST_MESSAGE")
    assert test_event["integration"] == {"id": hook_id, "name": "api-hook"} and "device" not in test_event
    # change: headers and event types; the running worker follows
    patched = await client.patch(f"/v1/integrate/clouds/webhooks/{hook_id}",
                                 json={"headers": {"X-Key": "k2"}, "eventTypes": [{"type": "TELEMETRY_DATA"}],
                                       "jsonPayloadEnabled": False})
    assert patched.status == 200
    assert patched.body["headers"] == {"X-Key": "********"} and patched.body["jsonPayloadEnabled"] is False
    assert patched.body["eventTypes"] == [{"type": "TELEMETRY_DATA", "version": "1.0.0"}]
    assert patched.body["createdTime"] == hook["createdTime"]
    receiver.events.clear()
    receiver.requests.clear()
    assert (await coap_post(api.gateway.coap_port, DEVICE.ip_address, b"second")).code == "2.04"
    await receiver.wait_for(2)
    api_headers = next(h for path, h in receiver.requests if path.startswith("/hook/api"))
    assert api_headers["X-Key"] == "k2"
    # the generic PATCH route works for webhooks as well
    generic = await client.patch(f"/v1/integrate/clouds/{hook_id}", json={"url": receiver.url + "/moved"})
    assert generic.status == 200 and generic.body["url"] == receiver.url + "/moved"
    # delete: gone, its worker too
    assert (await client.delete(f"/v1/integrate/clouds/{hook_id}")).status == 204
    assert (await client.get(f"/v1/integrate/clouds/{hook_id}")).status == 404
    assert [w.handle.name for w in api.gateway.integrations.workers.values()] == ["from-file"]
    assert (await client.delete(f"/v1/integrate/clouds/{hook_id}")).status == 404


async def test_config_integrations_are_read_only(api, receiver):
    client = api.client("Admin")
    listed = await client.get("/v1/integrate/clouds")
    (from_file,) = listed.body["items"]
    file_id = from_file["id"]
    assert from_file["eventTypes"] == [{"type": "TELEMETRY_DATA", "version": "1.0.0"},
                                       {"type": "ERROR", "version": "1.0.0"}]
    for answer in (await client.patch(f"/v1/integrate/clouds/webhooks/{file_id}", json={"headers": {}}),
                   await client.patch(f"/v1/integrate/clouds/{file_id}", json={"jsonPayloadEnabled": True}),
                   await client.delete(f"/v1/integrate/clouds/{file_id}")):
        assert answer.status == 409 and "config file" in answer.body["errors"][0]["message"]
    assert len(api.gateway.store.list_integrations()) == 1
    # a name of the config file cannot be taken by the API
    taken = await client.post("/v1/integrate/clouds/webhooks", json=new_hook(receiver, name="from-file"))
    assert taken.status == 409
    assert api.gateway.store.list_integrations()[0]["origin"] == "config"
    # test works for it
    tested = await client.post(f"/v1/integrate/clouds/webhooks/{file_id}/test")
    assert tested.body["testStatus"] == "SUCCESS"


async def test_failure_test_and_restart(api, receiver):
    client = api.client("Admin")
    file_id = (await client.get("/v1/integrate/clouds")).body["items"][0]["id"]
    receiver.status = 500
    # a test against a failing target says so
    tested = await client.post(f"/v1/integrate/clouds/webhooks/{file_id}/test")
    assert tested.status == 200 and tested.body["testStatus"] == "FAILURE"
    gateway = api.gateway
    await wait_until(lambda: any(w.handle.state == INTEGRATION_FAILED for w in gateway.integrations.workers.values()))
    failed = await client.get(f"/v1/integrate/clouds/{file_id}")
    assert failed.body["state"] == INTEGRATION_FAILED
    assert (await coap_post(gateway.coap_port, DEVICE.ip_address, b"queued while failed")).code == "2.04"
    refused = await client.post(f"/v1/integrate/clouds/webhooks/{file_id}/test")
    assert refused.status == 409 and "restart" in refused.body["errors"][0]["message"]
    receiver.status = 200
    restarted = await client.post(f"/v1/integrate/clouds/webhooks/{file_id}/restart")
    assert restarted.status == 200 and restarted.body["restartStatus"] == "SUCCESS"
    assert restarted.body["integration"]["state"] == INTEGRATION_ACTIVE
    assert restarted.body["integration"]["id"] == file_id
    # delivery resumes where it stopped: the queued message (and the test messages) arrive
    await wait_until(lambda: any(e.get("payload", {}).get("value") == "cXVldWVkIHdoaWxlIGZhaWxlZA=="
                                 for e in receiver.events))
    again = await client.post(f"/v1/integrate/clouds/webhooks/{file_id}/restart")
    assert again.body["restartStatus"] == "SUCCESS" and "nothing to restart" in again.body["message"]


async def test_validation_and_unknown_ids(api, receiver):
    client = api.client("Admin")
    cases = [
        (new_hook(receiver, url="http://example.com/hook"), "url"),
        (new_hook(receiver, url="not a url"), "url"),
        ({k: v for k, v in new_hook(receiver).items() if k != "name"}, "name"),
        (new_hook(receiver, name=""), "name"),
        (new_hook(receiver, name="x" * 129), "name"),
        (new_hook(receiver, eventTypes=[]), "eventTypes"),
        (new_hook(receiver, eventTypes=[{"type": "SMS"}]), "eventTypes[0].type"),
        (new_hook(receiver, eventTypes=[{"type": "ERROR", "version": "2.0.0"}]), "eventTypes[0].version"),
        (new_hook(receiver, headers={"X-Key": 5}), "headers.X-Key"),
        (new_hook(receiver, headers={"Bad Header": "x"}), "headers.Bad Header"),
        (new_hook(receiver, headers={"X-Key": "a\r\nInjected: yes"}), "headers.X-Key"),
        (new_hook(receiver, colour="red"), "colour"),
    ]
    for body, field in cases:
        answer = await client.post("/v1/integrate/clouds/webhooks", json=body)
        assert answer.status == 400 and answer.body["errors"][0]["field"] == field, (body, answer.body)
    assert len(api.gateway.store.list_integrations()) == 1
    for method, path in (("GET", "/v1/integrate/clouds/nope"), ("DELETE", "/v1/integrate/clouds/nope"),
                         ("PATCH", "/v1/integrate/clouds/webhooks/nope"),
                         ("POST", "/v1/integrate/clouds/webhooks/nope/test"),
                         ("POST", "/v1/integrate/clouds/webhooks/nope/restart")):
        answer = await client.request(method, path, json={} if method == "PATCH" else None)
        assert answer.status == 404, (method, path)
    types = await client.get("/v1/integrate/clouds/eventTypes")
    assert [t["name"] for t in types.body["eventTypes"]] == ["TELEMETRY_DATA", "LIFECYCLE", "ERROR", "LOCATION",
                                                            "GEOFENCE", "TEST_MESSAGE", "MO_SMS"]
    assert all(t["version"] == "1.0.0" and t["payload"]["type"] == t["name"] for t in types.body["eventTypes"])


async def test_other_kinds_under_the_generic_routes(start_gateway, tmp_path):
    """An integration of another kind (AWS, described by its own module) is listed, read, changed
    and deleted by the shared routes; the webhook routes do not take it."""
    config = make_config(tmp_path)
    row = {"uuid": "aws-1", "name": "to-aws", "kind": "aws_mqtt", "origin": "api",
                          "config": {"event_types": ["TELEMETRY_DATA"]}, "state": "ROLLOUT_STARTED"}
    api = await start_api(start_gateway, config, roles=("Admin",))
    await api.gateway.committer.write(lambda: api.gateway.store.upsert_integration(**row))
    await api.gateway.integrations.reload()
    client = api.client("Admin")
    (item,) = (await client.get("/v1/integrate/clouds")).body["items"]
    assert (item["id"], item["type"], item["state"]) == ("aws-1", "AWS", "ROLLOUT_STARTED")
    assert (await client.get("/v1/integrate/clouds/aws-1")).body["name"] == "to-aws"
    assert (await client.post("/v1/integrate/clouds/webhooks/aws-1/test")).status == 404
    assert (await client.patch("/v1/integrate/clouds/webhooks/aws-1", json={})).status == 404
    patched = await client.patch("/v1/integrate/clouds/aws-1", json={"jsonPayloadEnabled": True})
    assert patched.status == 200 and patched.body["jsonPayloadEnabled"] is True
    assert patched.body["state"] == "ROLLOUT_STARTED"  # still waiting for its connection
    assert (await client.delete("/v1/integrate/clouds/aws-1")).status == 204
    assert api.gateway.store.list_integrations() == []
