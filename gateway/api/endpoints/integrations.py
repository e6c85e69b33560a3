"""Cloud integrations (1nce-os.json, ``/v1/integrate/clouds``): list, read, delete, test, restart;
create and change webhooks.

The API id of an integration is its ``uuid``. Integrations from the config file (origin
``config``) are listed and can be tested and restarted like the others, but changing or
deleting them answers 409: the file is their source of truth and would bring them back.

The shared routes are generic over the integration's *kind* (the store's ``kind`` column). A
kind is described by an :class:`IntegrationKind` (its API ``type``, its kind-specific fields,
its PATCH); another kind (AWS) registers itself with :func:`register_kind` from its own route
module and reuses :func:`restart_handler` and :func:`test_handler` for its
``/v1/integrate/clouds/aws/{integrationId}/restart|test`` routes::

    register_kind(IntegrationKind(kinds=("aws_mqtt", "aws_iot_data"), api_type="AWS",
                                  describe=aws_fields, patch=patch_aws))
    ApiRoute("POST", "/v1/integrate/clouds/aws/{integrationId}/restart", restart_handler("AWS"), MANAGE,
             spec="1nce-os")
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import re
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from integrators.base import INTEGRATION_FAILED, ROLLOUT_DONE
from integrators.manager import NOT_RUNNING

from ...config import EVENT_TYPES, WebhookConfig
from ...events import VERSION
from ..errors import ApiError, bad_request, conflict, not_found
from ..openapi import reference
from ..routes import INTEGRATE, MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of
from ..timefmt import format_time

log = logging.getLogger("nce.api.integrations")

SELECTABLE_EVENT_TYPES = [t for t in EVENT_TYPES if t != "TEST_MESSAGE"]  # TEST_MESSAGE always goes out
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class IntegrationKind:
    """How the API shows and changes integrations of some store kinds.

    ``describe(row)`` gives the kind's own fields of ``GET /v1/integrate/clouds/{id}`` (a webhook:
    url, headers). ``patch(request, row, body)`` checks a ``PATCH /v1/integrate/clouds/{id}`` body
    and returns the new config, or an :class:`IntegrationChange` when the store kind or the state
    changes too (None: the kind cannot be changed that way).

    Gateway extensions of the 1NCE bodies: ``patch_properties`` are JSON schemas of fields the
    kind's PATCH takes beyond 1NCE's (``patchschema_3``), ``answer_properties`` those its answers
    carry beyond 1NCE's; both are added to the shared PATCH/GET operations of the document. A
    PATCH field of another kind answers 400 naming it.
    """

    kinds: tuple[str, ...]
    api_type: str
    describe: Callable[[dict], dict]
    patch: Callable[[web.Request, dict, dict], Awaitable[dict | IntegrationChange]] | None = None
    patch_properties: Mapping[str, dict] = field(default_factory=dict)
    answer_properties: Mapping[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class IntegrationChange:
    """What a kind's PATCH changes: the config, and the store kind and state where they change
    (``upsert_integration`` keeps the state, so a new one is written separately)."""

    config: dict
    kind: str | None = None
    state: str | None = None


KINDS: dict[str, IntegrationKind] = {}


def register_kind(kind: IntegrationKind) -> None:
    """Make the shared routes show (and PATCH) integrations of ``kind.kinds``; a later call wins."""
    for name in kind.kinds:
        KINDS[name] = kind


def kind_of(row: dict) -> IntegrationKind:
    kind = KINDS.get(row["kind"])
    if kind is None:  # a kind nobody described yet: shown with its generic fields only
        return IntegrationKind((row["kind"],), "AWS" if row["kind"].startswith("aws") else row["kind"].upper(),
                               lambda _row: {})
    return kind


# reading -------------------------------------------------------------------------------------

def event_types_json(config: dict) -> list[dict]:
    types = config.get("event_types") or list(EVENT_TYPES)
    return [{"type": t, "version": VERSION} for t in types if t != "TEST_MESSAGE"]


def last_error_json(gateway: Any, row: dict) -> dict:
    """``{"lastError": {time, message}}`` (a gateway extension) when the running worker of the
    integration saw a failed delivery attempt, else nothing."""
    worker = gateway.integrations.workers.get(row["id"])
    error = getattr(worker, "last_error", None)
    return {"lastError": {"time": format_time(error[0]), "message": error[1]}} if error else {}


def integration_json(row: dict, *, details: bool = True) -> dict:
    """The 1NCE representation of an integration row (``details``: with the kind's own fields)."""
    config = row["config"]
    out = {"id": row["uuid"], "name": row["name"], "type": kind_of(row).api_type, "state": row["state"],
           "eventTypes": event_types_json(config), "jsonPayloadEnabled": bool(config.get("json_payload_enabled")),
           "createdTime": format_time(row["created_ms"]), "updatedTime": format_time(row["updated_ms"])}
    if details:
        out.update(kind_of(row).describe(row))
    return out


async def find_integration(request: web.Request, api_type: str | None = None) -> dict:
    """The row of ``{integrationId}`` (404 if none, or if it is not of ``api_type``)."""
    gateway = gateway_of(request)
    integration_id = params_of(request)["integrationId"]
    rows = await gateway.read(gateway.store.list_integrations)
    row = next((r for r in rows if r["uuid"] == integration_id), None)
    if row is None or (api_type is not None and kind_of(row).api_type != api_type):
        what = "integration" if api_type is None else f"{api_type.lower()} integration"
        raise not_found(f"no {what} with id {integration_id}")
    return row


def _config_owned(row: dict) -> ApiError:
    section = "[[webhooks]]" if row["kind"] == "webhook" else "[[aws_integrations]]"
    return conflict(f"integration {row['name']} comes from the config file ({section}); change or remove it "
                    "there (the API may test and restart it)")


def _not_running(row: dict) -> ApiError:
    return conflict(f"integration {row['name']} is {row['state']}: it is waiting for its set-up and has no sender "
                    f"(an AWS integration needs its `connection`: PATCH /v1/integrate/clouds/{row['uuid']})")


async def list_clouds(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    rows = await gateway.read(gateway.store.list_integrations)
    return json_response({"items": [{**integration_json(r, details=False), **last_error_json(gateway, r)}
                                    for r in rows], "page": 1, "pageAmount": 1})


async def get_cloud(request: web.Request) -> web.Response:
    row = await find_integration(request)
    return json_response({**integration_json(row), **last_error_json(gateway_of(request), row)})


async def delete_cloud(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    row = await find_integration(request)
    if row["origin"] == "config":
        raise _config_owned(row)
    await gateway.committer.write(gateway.store.delete_integration, row["id"])
    await gateway.integrations.reload()
    log.info("integration deleted", extra={"event": "integration_deleted", "integration": row["name"],
                                           "by": principal_of(request).username})
    return web.Response(status=204)


async def patch_cloud(request: web.Request) -> web.Response:
    row = await find_integration(request)
    kind = kind_of(row)
    if kind.patch is None:
        raise conflict(f"integrations of type {kind.api_type} cannot be changed with this route")
    for name in body_of(request) or {}:
        if name not in kind.patch_properties and name in _extension_fields(KINDS.values(), "patch_properties"):
            raise bad_request(f"{name}: integrations of type {kind.api_type} have no such field", name)
    return json_response(integration_json(await _update(request, row, kind.patch)))


async def _update(request: web.Request, row: dict,
                  patch: Callable[[web.Request, dict, dict], Awaitable[dict | IntegrationChange]]) -> dict:
    gateway = gateway_of(request)
    if row["origin"] == "config":
        raise _config_owned(row)
    change = await patch(request, row, body_of(request) or {})
    if not isinstance(change, IntegrationChange):
        change = IntegrationChange(change)

    def write() -> None:
        integration_id = gateway.store.upsert_integration(
            uuid=row["uuid"], name=row["name"], kind=change.kind or row["kind"], origin="api", config=change.config,
            state=row["state"])
        if change.state is not None and change.state != row["state"]:
            gateway.store.set_integration_state(integration_id, change.state)

    await gateway.committer.write(write)
    await gateway.integrations.reload()
    log.info("integration changed", extra={"event": "integration_changed", "integration": row["name"],
                                           "by": principal_of(request).username})
    return await find_integration(request)


async def event_types(request: web.Request) -> web.Response:
    return json_response({"eventTypes": [
        {"name": name, "description": EVENT_DESCRIPTIONS[name], "version": VERSION, "payload": EVENT_EXAMPLES[name]}
        for name in EVENT_TYPES]})


# test and restart (any kind) ----------------------------------------------------------------------

def test_outcome(store: Any, integration_id: int, event_id: str, created_ms: int) -> str:
    """``pending``, ``delivered`` or ``failed`` (an attempt failed) for a queued TEST_MESSAGE."""
    conn = store.connection()
    row = conn.execute("SELECT seq FROM events WHERE created_ms = ? AND id = ?", (created_ms, event_id)).fetchone()
    if row is None:
        return "pending"  # not committed yet
    left = conn.execute("SELECT attempts FROM outbox WHERE integration_id = ? AND event_seq = ?",
                        (integration_id, row[0])).fetchone()
    if left is None:
        return "delivered"
    return "failed" if left[0] > 0 else "pending"


def test_handler(api_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``POST .../{integrationId}/test``: queue a TEST_MESSAGE for this integration only and wait
    (``api.test_timeout_seconds``) for the target to take it or refuse it."""

    async def handler(request: web.Request) -> web.Response:
        gateway = gateway_of(request)
        row = await find_integration(request, api_type)
        if row["state"] in NOT_RUNNING:  # a test message would wait in the store with nobody to deliver it
            raise _not_running(row)
        handle = gateway.integrations.handle_of(row)  # delivered here or by another worker process
        if handle is None:
            raise conflict(f"integration {row['name']} is not running (kind {row['kind']} has no sender)")
        if handle.state == INTEGRATION_FAILED:
            raise conflict(f"integration {row['name']} is {INTEGRATION_FAILED}; restart it first")
        created_ms = time.time_ns() // 1_000_000
        event_id = gateway.integrations.send_test(handle, created_ms)
        deadline = time.monotonic() + gateway.config.api.test_timeout_seconds
        outcome = "pending"
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            outcome = await gateway.read(test_outcome, gateway.store, row["id"], event_id, created_ms)
            if outcome != "pending":
                break
        log.info("integration test", extra={"event": "integration_test", "integration": row["name"],
                                            "outcome": outcome})
        if outcome == "delivered":
            return json_response({"testStatus": "SUCCESS", "message": "Test was successful"})
        if outcome == "failed":
            message = ("The test message could not be delivered; it is retried on the integration's schedule "
                       "(see the gateway log for the reason)")
        else:
            message = (f"The test message was not confirmed within {gateway.config.api.test_timeout_seconds:g} s; "
                       "it stays queued")
        return json_response({"testStatus": "FAILURE", "message": message})

    return handler


def restart_handler(api_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``POST .../{integrationId}/restart``: INTEGRATION_FAILED → INTEGRATION_ACTIVE (delivery resumes
    where it stopped), then a TEST_MESSAGE is queued, as 1NCE OS does."""

    async def handler(request: web.Request) -> web.Response:
        gateway = gateway_of(request)
        row = await find_integration(request, api_type)
        was = row["state"]
        if was in NOT_RUNNING:
            raise _not_running(row)
        if was == INTEGRATION_FAILED:
            await gateway.integrations.restart(row["id"])
        handle = gateway.integrations.handle_of(row)
        if handle is None:
            status, message = "FAILURE", f"integration {row['name']} has no sender for kind {row['kind']}"
        else:
            gateway.integrations.send_test(handle, time.time_ns() // 1_000_000)
            status = "SUCCESS"
            message = ("Restart was successful; delivery resumes and a test message was queued"
                       if was == INTEGRATION_FAILED else
                       f"The integration was {was}, nothing to restart; a test message was queued")
        log.info("integration restart", extra={"event": "integration_restart", "integration": row["name"],
                                               "was": was, "by": principal_of(request).username})
        row = await find_integration(request, api_type)
        summary = {k: v for k, v in integration_json(row, details=False).items() if k != "jsonPayloadEnabled"}
        return json_response({"integration": summary, "restartStatus": status, "message": message})

    return handler


# webhooks --------------------------------------------------------------------------------------

def _check_url(request: web.Request, url: str) -> str:
    """An https:// URL whose host, when it is an address (or localhost), ``[targets]`` allows;
    names are checked again, resolved, whenever a connection is opened."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise bad_request("url: must be an https:// URL with a host", "url")
    policy = gateway_of(request).integrations.targets
    refused = policy.check_literal(parts.hostname) if policy is not None else None
    if refused:
        raise bad_request(f"url: {refused}", "url")
    return url


#: what answers show instead of a header value: values often are credentials (Authorization,
#: API keys), so they are write-only; sending the mask back in a PATCH keeps the stored value
MASK = "********"


def _check_headers(headers: dict, stored: dict[str, str] | None = None) -> dict[str, str]:
    kept = {k.lower(): v for k, v in (stored or {}).items()}
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise bad_request(f"headers: {name!r} is not a valid header name", f"headers.{name}")
        if any(c in value for c in "\r\n\0"):
            raise bad_request(f"headers.{name}: a header value cannot contain line breaks", f"headers.{name}")
        if value == MASK:
            if name.lower() not in kept:
                raise bad_request(f"headers.{name}: {MASK} keeps a stored value, and this header has none",
                                  f"headers.{name}")
            value = kept[name.lower()]
        out[name] = value
    return out


def _check_event_types(items: list[dict]) -> list[str]:
    types: list[str] = []
    for i, item in enumerate(items):
        version = item.get("version")
        if version is not None and version != VERSION:
            raise bad_request(f"eventTypes[{i}].version: only {VERSION} exists", f"eventTypes[{i}].version")
        if item["type"] not in types:
            types.append(item["type"])
    return types


def webhook_describe(row: dict) -> dict:
    """The webhook's fields; header values masked (write-only: they are often credentials)."""
    return {"url": row["config"].get("url", ""),
            "headers": {name: MASK for name in row["config"].get("headers") or {}}}


async def webhook_patch(request: web.Request, row: dict, body: dict) -> dict:
    config = dict(row["config"])
    if "url" in body:
        config["url"] = _check_url(request, body["url"])
    if "headers" in body:
        config["headers"] = _check_headers(body["headers"], config.get("headers"))
    if "eventTypes" in body:
        config["event_types"] = _check_event_types(body["eventTypes"])
    if "jsonPayloadEnabled" in body:
        config["json_payload_enabled"] = bool(body["jsonPayloadEnabled"])
    return config


register_kind(IntegrationKind(("webhook",), "WEBHOOK", webhook_describe, webhook_patch))


def create_integration(store: Any, *, uuid: str, name: str, kind: str, config: dict,
                       state: str = ROLLOUT_DONE) -> bool:
    """Insert an API integration unless the name is taken (run in the writer thread, so the
    check and the insert cannot interleave with another create). ``state``: ROLLOUT_DONE (the
    running gateway makes it INTEGRATION_ACTIVE), or ROLLOUT_STARTED for one that waits for its
    set-up (no worker, no events)."""
    if store.connection().execute("SELECT 1 FROM integrations WHERE name = ?", (name,)).fetchone():
        return False
    store.upsert_integration(uuid=uuid, name=name, kind=kind, origin="api", config=config, state=state)
    return True


async def create_webhook(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    body = body_of(request)
    hook = WebhookConfig(name=body["name"], url=_check_url(request, body["url"]), headers=_check_headers(body["headers"]),
                         event_types=_check_event_types(body["eventTypes"]), ca_file=gateway.config.api.webhook_ca_file,
                         json_payload_enabled=bool(body.get("jsonPayloadEnabled", False)))
    config = dataclasses.asdict(hook)
    config.pop("name")
    integration_uuid = str(uuidlib.uuid4())
    created = await gateway.committer.write(lambda: create_integration(
        gateway.store, uuid=integration_uuid, name=hook.name, kind="webhook", config=config))
    if not created:
        raise conflict(f"an integration named {hook.name!r} exists")
    await gateway.integrations.reload()
    rows = await gateway.read(gateway.store.list_integrations)
    row = next(r for r in rows if r["uuid"] == integration_uuid)
    log.info("webhook created", extra={"event": "integration_created", "integration": hook.name,
                                       "by": principal_of(request).username})
    return json_response(integration_json(row), status=201)


async def patch_webhook(request: web.Request) -> web.Response:
    row = await find_integration(request, "WEBHOOK")
    return json_response(integration_json(await _update(request, row, webhook_patch)))


# event types -----------------------------------------------------------------------------------

EVENT_DESCRIPTIONS = {
    "TELEMETRY_DATA": "A message from a device (UDP, CoAP, LwM2M); payload translated to JSON or base64.",
    "LIFECYCLE": "A device life-cycle change, such as its first registration.",
    "ERROR": "An error of a device, a translation, a location or an integration.",
    "LOCATION": "A new position of a device (GPS values or cell tower).",
    "GEOFENCE": "A device entered or left a geofence (ENTER/EXIT; accuracy in metres for cell positions).",
    "TEST_MESSAGE": "Sent by the test and restart routes of an integration; always delivered.",
    "MO_SMS": "An SMS sent by a device (mobile-originated), received from the SMSC (nce-gateway; docs/sms.md).",
}
_DEVICE = {"iccid": "8988280666000000000", "imsi": "901405100000000", "ip": "10.0.0.1"}
_HEAD = {"id": "3f8e6c1e-2b1a-4c5d-9e8f-0a1b2c3d4e5f", "received": "1646643089015", "version": VERSION}
EVENT_EXAMPLES = {
    "TELEMETRY_DATA": {**_HEAD, "type": "TELEMETRY_DATA", "device": _DEVICE, "source": "COAP",
                       "payload": {"type": "STRING", "value": "aGVsbG8=", "encoding": "base64", "topic": "sensors"}},
    "LIFECYCLE": {**_HEAD, "type": "LIFECYCLE", "device": _DEVICE,
                  "lifecycle": {"type": "DEVICE_FIRST_TIME_REGISTERED", "message": "first registration"}},
    "ERROR": {**_HEAD, "type": "ERROR", "device": _DEVICE,
              "error": {"id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "type": "DEVICE",
                        "message": "Translator[UserPayloadError]",
                        "description": "Asset path:Temperature, Error: can't extract [200:201] from 2 bytes",
                        "payloadExists": True}},
    "LOCATION": {**_HEAD, "type": "LOCATION", "device": _DEVICE,
                 "location": {"source": "GPS", "coordinates": ["13.4050", "52.5200"]}},
    "GEOFENCE": {**_HEAD, "type": "GEOFENCE", "device": _DEVICE,
                 "geofence": {"id": "fence-1", "name": "depot", "coordinates": ["13.4050", "52.5200"],
                              "source": "CellTower", "type": "ENTER", "accuracy": 300.0}},
    "TEST_MESSAGE": {**_HEAD, "type": "TEST_MESSAGE", "integration": {"id": "<integration_id>", "name": "my-webhook"}},
    "MO_SMS": {**_HEAD, "type": "MO_SMS", "device": _DEVICE,
               "sms": {"msisdn": "882285100000001", "destinationAddress": "1234", "dcs": 0,
                       "payload": "hello from the device", "parts": 1}},
}


def _patch_conflict(operation: dict) -> None:
    operation["responses"]["409"] = {"$ref": "#/components/responses/ConflictError"}
    operation["description"] += (" Integrations from the config file answer 409 (change them there).")


def _extension_fields(kinds: Any, which: str) -> dict[str, dict]:
    fields: dict[str, dict] = {}
    for kind in kinds:
        fields.update(getattr(kind, which))
    return fields


def _with_properties(schema_name: str, extra: Mapping[str, dict]) -> dict:
    """A copy of a 1NCE schema with the gateway's extension properties added."""
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"][schema_name])
    schema["properties"].update(copy.deepcopy(dict(extra)))
    return schema


def _json_schema(operation: dict, status: str | None = None) -> dict:
    holder = operation["requestBody"] if status is None else operation["responses"][status]
    return holder["content"]["application/json"]


def _patch_generic(operation: dict) -> None:
    """PATCH /v1/integrate/clouds/{id}: the 1NCE bodies plus every registered kind's extensions."""
    _patch_conflict(operation)
    kinds = list({id(k): k for k in KINDS.values()}.values())
    requests, answers = _extension_fields(kinds, "patch_properties"), _extension_fields(kinds, "answer_properties")
    if requests:
        _json_schema(operation)["schema"] = _with_properties("patchschema_3", requests)
    if answers:
        _json_schema(operation, "200")["schema"] = _with_properties("patchResponseschema_1", answers)
    owners = ", ".join(f"{', '.join(k.patch_properties)} ({k.api_type})" for k in kinds if k.patch_properties)
    if owners:
        operation["description"] += (f" Gateway extensions, each only for its type: {owners}; see "
                                     "docs/api.md.")


LAST_ERROR = {"lastError": {"type": "object", "required": ["time", "message"], "description":
                            "nce-gateway: the latest failed delivery attempt of the running worker",
                            "properties": {"time": {"type": "string", "format": "date-time"},
                                           "message": {"type": "string"}}}}


def _patch_get(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + _MASK_NOTE
    answers = {**_extension_fields({id(k): k for k in KINDS.values()}.values(), "answer_properties"), **LAST_ERROR}
    _json_schema(operation, "200")["schema"] = _with_properties("getResponseschema_11", answers)


def _patch_list(operation: dict) -> None:
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"]["getAllResponseschema_5"])
    schema["properties"]["items"]["items"] = _with_properties("getAllResponseschema_5_items_inner", LAST_ERROR)
    _json_schema(operation, "200")["schema"] = schema


_MASK_NOTE = (f" Header values are write-only: answers show every value as `{MASK}`; `{MASK}` sent back in a "
              "PATCH keeps the stored value.")


def _patch_create(operation: dict) -> None:
    operation["description"] += (" The URL must be https://; it is verified against the system CAs, or "
                                 "against [api] webhook_ca_file when set." + _MASK_NOTE)


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    base = "/v1/integrate/clouds"
    return [
        ApiRoute("GET", base, list_clouds, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", f"{base}/eventTypes", event_types, READ, spec=os_),
        ApiRoute("GET", f"{base}/{{integrationId}}", get_cloud, READ, spec=os_, patch=_patch_get),
        ApiRoute("DELETE", f"{base}/{{integrationId}}", delete_cloud, INTEGRATE, spec=os_, patch=_patch_conflict),
        ApiRoute("PATCH", f"{base}/{{integrationId}}", patch_cloud, INTEGRATE, spec=os_, patch=_patch_generic),
        ApiRoute("POST", f"{base}/webhooks", create_webhook, INTEGRATE, spec=os_, patch=_patch_create),
        ApiRoute("PATCH", f"{base}/webhooks/{{integrationId}}", patch_webhook, INTEGRATE, spec=os_,
                 patch=_patch_conflict),
        ApiRoute("POST", f"{base}/webhooks/{{integrationId}}/test", test_handler("WEBHOOK"), MANAGE, spec=os_),
        ApiRoute("POST", f"{base}/webhooks/{{integrationId}}/restart", restart_handler("WEBHOOK"), MANAGE, spec=os_),
    ]


__all__ = ["IntegrationKind", "IntegrationChange", "register_kind", "kind_of", "integration_json", "find_integration",
           "restart_handler", "test_handler", "create_integration"]
