"""AWS IoT Core integrations (1nce-os.json, ``/v1/integrate/clouds/aws``): create, test, restart;
and the AWS kind of the shared integration routes (list, get, PATCH, delete).

The bodies are ``integrators/aws_api.py``'s: 1NCE's ``name``, ``eventTypes``,
``jsonPayloadEnabled``, plus the gateway extension ``connection`` (where and how to publish:
MQTT with a client certificate, or HTTPS with boto3) and ``retrySchedule``. Without
``connection`` an integration waits in ROLLOUT_STARTED (no worker, no events; test and restart
answer 409) until a PATCH adds one. Answers never carry ``keyFile`` or ``externalId``, and
neither is logged. ``GET .../aws/parameters``: aws_parameters.py.
"""

from __future__ import annotations

import copy
import logging
import uuid as uuidlib
from typing import Any

from aiohttp import web

from integrators.aws_api import AwsApiError, apply_patch, create_response, integration_response, parse_create

from ..errors import bad_request, conflict
from ..openapi import reference
from ..routes import INTEGRATE, MANAGE, ApiRoute, body_of, gateway_of, json_response, principal_of
from .integrations import (IntegrationChange, IntegrationKind, create_integration, register_kind, restart_handler,
                           test_handler)

log = logging.getLogger("nce.api.aws")

_SHARED = ("id", "name", "type", "state", "eventTypes", "jsonPayloadEnabled", "createdTime", "updatedTime")

# the gateway extension, as JSON schemas (request: null removes a key in a PATCH) ---------------------
_S, _I = {"type": "string", "nullable": True}, {"type": "integer", "nullable": True}
CONNECTION_REQUEST: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "Gateway extension: where and how to publish (docs/aws.md). mode mqtt: host, port (8883), "
                   "caFile, certFile, keyFile (paths on the gateway host), clientId, keepalive, publishRateLimit. "
                   "mode iot_data: region, endpointUrl, roleArn, externalId, sessionName, sessionDurationSeconds. "
                   "In a PATCH, keys are merged into the stored ones and null removes one.",
    "properties": {
        "mode": {"type": "string", "enum": ["mqtt", "iot_data"], "nullable": True},
        "host": _S, "port": {"type": "integer", "minimum": 1, "maximum": 65535, "nullable": True},
        "caFile": _S, "certFile": _S, "keyFile": _S, "clientId": _S, "keepalive": _I,
        "publishRateLimit": {"type": "number", "minimum": 0, "nullable": True},
        "region": _S, "endpointUrl": _S, "roleArn": _S, "externalId": _S, "sessionName": _S,
        "sessionDurationSeconds": _I,
    },
}
RETRY_SCHEDULE: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0},
                  "description": "Gateway extension: seconds between delivery attempts (default 150, 180, 420, 1020)."}
CONNECTION_ANSWER: dict[str, Any] = {
    "type": "object",
    "description": "Gateway extension: the connection without secrets (no keyFile, no externalId; externalIdSet "
                   "says whether one is stored).",
    "properties": {**{k: {"type": "string"} for k in ("mode", "host", "caFile", "certFile", "clientId", "region",
                                                       "endpointUrl", "roleArn", "sessionName")},
                   "port": {"type": "integer"}, "keepalive": {"type": "integer"},
                   "publishRateLimit": {"type": "number"}, "sessionDurationSeconds": {"type": "integer"},
                   "externalIdSet": {"type": "boolean"}},
}
EXTENSION_REQUEST: dict[str, dict] = {"connection": CONNECTION_REQUEST, "retrySchedule": RETRY_SCHEDULE}
EXTENSION_ANSWER: dict[str, dict] = {"connection": CONNECTION_ANSWER, "retrySchedule": RETRY_SCHEDULE}


def _bad(exc: AwsApiError) -> Exception:
    return bad_request(str(exc), exc.field)


# the AWS kind of the shared routes -------------------------------------------------------------------

def describe(row: dict) -> dict:
    """The AWS fields of ``GET /v1/integrate/clouds/{id}``: jwt, region, awsAccountId, and the
    gateway's ``connection`` (no secrets) and ``retrySchedule``."""
    return {k: v for k, v in integration_response(row).items() if k not in _SHARED}


async def patch(request: web.Request, row: dict, body: dict) -> IntegrationChange:
    try:
        change = apply_patch(row["name"], row["config"], row["state"], body)
    except AwsApiError as exc:
        raise _bad(exc) from None
    return IntegrationChange(change.config, kind=change.kind, state=change.state)


register_kind(IntegrationKind(kinds=("aws_mqtt", "aws_iot_data"), api_type="AWS", describe=describe, patch=patch,
                              patch_properties=EXTENSION_REQUEST, answer_properties=EXTENSION_ANSWER))


# routes ------------------------------------------------------------------------------------------------

async def create_aws(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    try:
        wanted = parse_create(body_of(request))
    except AwsApiError as exc:
        raise _bad(exc) from None
    integration_uuid = str(uuidlib.uuid4())
    created = await gateway.committer.write(lambda: create_integration(
        gateway.store, uuid=integration_uuid, name=wanted.name, kind=wanted.kind, config=wanted.config,
        state=wanted.state))
    if not created:
        raise conflict(f"an integration named {wanted.name!r} exists")
    await gateway.integrations.reload()
    rows = await gateway.read(gateway.store.list_integrations)
    row = next(r for r in rows if r["uuid"] == integration_uuid)
    log.info("AWS integration created", extra={"event": "integration_created", "integration": wanted.name,
                                               "kind": wanted.kind, "state": row["state"],
                                               "by": principal_of(request).username})
    return json_response(create_response(row), status=201)


def _patch_create(operation: dict) -> None:
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"]["postschema_6"])
    schema["properties"].update(copy.deepcopy(EXTENSION_REQUEST))
    operation["requestBody"]["content"]["application/json"]["schema"] = schema
    operation["description"] += (
        " nce-gateway has no CloudFormation stack to roll out: the gateway extension `connection` says where and "
        "how to publish (MQTT with a client certificate, or HTTPS with boto3), `retrySchedule` the delivery "
        "schedule. With `connection` the integration is ROLLOUT_DONE and becomes INTEGRATION_ACTIVE at once; "
        "without, it stays ROLLOUT_STARTED (no events) until PATCH /v1/integrate/clouds/{id} adds one. Files "
        "named must exist on the gateway host. `jwt` is an unsigned token naming the integration. An existing "
        "name answers 409.")


def _patch_test(operation: dict) -> None:
    operation["description"] += (" 409 while the integration is INTEGRATION_FAILED (restart first) or waits for "
                                 "its connection (ROLLOUT_STARTED).")


def _patch_restart(operation: dict) -> None:
    operation["description"] += (" 409 while the integration waits for its connection (ROLLOUT_STARTED); on one "
                                 "that is not failed: SUCCESS, nothing to restart, a test message queued.")



def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    base = "/v1/integrate/clouds/aws"
    return [
        ApiRoute("POST", base, create_aws, INTEGRATE, spec=os_, patch=_patch_create),
        ApiRoute("POST", f"{base}/{{integrationId}}/test", test_handler("AWS"), MANAGE, spec=os_, patch=_patch_test),
        ApiRoute("POST", f"{base}/{{integrationId}}/restart", restart_handler("AWS"), MANAGE, spec=os_,
                 patch=_patch_restart),
    ]
