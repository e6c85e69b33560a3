"""LwM2M device actions (1nce-os.json, ``/v1/integrate/devices/.../actions/LWM2M``): create action
requests of :class:`gateway.lwm2m.actions.DeviceActions`.

An action is stored before anything is sent and answered 202 with its id; its status and result
(the device's response code and the decoded value) are read back with ``GET
.../actions/requests/{requestId}`` (endpoints/action_requests.py, one listing for every protocol).
``POST /v1/devices/{deviceId}/actions`` is 1NCE's older path of the same operation.
The request bodies are checked against the 1NCE schemas,
then by ``actions.validate`` (address, writability, the value's type), whose complaint names the
field. A device that is not a SIM answers 404, one that is not registered (``SEND_NOW``) 409.
With LwM2M disabled (``[lwm2m] enabled = false``, or neither CoAP nor CoAPs enabled) every route
here answers 409.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from aiohttp import web

from ...lwm2m.actions import ACTIONS, ActionError, validate
from ..openapi import reference
from ..errors import ApiError, conflict
from ..routes import MANAGE, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of

log = logging.getLogger("nce.api.lwm2m")


def _actions(request: web.Request) -> Any:
    lwm2m = getattr(gateway_of(request), "lwm2m", None)
    if lwm2m is None:
        raise conflict("LwM2M is disabled on this gateway ([lwm2m] enabled = false, or neither CoAP nor CoAPs is on)")
    return lwm2m.actions


def _api_error(exc: ActionError) -> ApiError:
    return ApiError(exc.status, str(exc), field=exc.field if exc.status == 400 else None)


def _fields(body: dict) -> tuple[Any, Any, Any, Any, Any]:
    return (body["action"], body["resourceAddress"], body.get("data"), body.get("requestMode"),
            body.get("sendAttempts"))


def _scheduled(record: dict, iccid: str) -> str:
    return f"Action {record['action']} for resource {record['resource']} successfully scheduled for device {iccid}."


async def post_action(request: web.Request) -> web.Response:
    """``POST /v1/integrate/devices/{deviceId}/actions/LWM2M`` → 202 ``{id, message}``."""
    actions = _actions(request)
    iccid = params_of(request)["deviceId"]
    try:
        record = await actions.submit(iccid, *_fields(body_of(request)))
    except ActionError as exc:
        raise _api_error(exc) from None
    log.info("device action submitted", extra={"event": "api_lwm2m_action", "action_id": record["id"],
                                               "iccid": iccid, "action": record["action"],
                                               "resource": record["resource"], "by": principal_of(request).username})
    return json_response({"id": record["id"], "message": _scheduled(record, iccid)}, status=202)


async def post_bulk_action(request: web.Request) -> web.Response:
    """``POST /v1/integrate/devices/actions/LWM2M``: one action per device of ``deviceIds`` (1-100);
    devices that are no SIM or not registered (``SEND_NOW``) are listed in ``rejectedDevices``."""
    actions = _actions(request)
    body = body_of(request)
    try:  # a bad request is bad for every device: 400, nothing stored
        validate(*_fields(body), objects=actions.lwm2m.objects)
    except ActionError as exc:
        raise _api_error(exc) from None
    accepted, rejected = [], []
    for iccid in dict.fromkeys(body["deviceIds"]):
        try:
            record = await actions.submit(iccid, *_fields(body))
        except ActionError:
            rejected.append(iccid)
            continue
        accepted.append({"requestId": record["id"], "deviceId": iccid})
    log.info("device actions submitted", extra={"event": "api_lwm2m_bulk_action", "accepted": len(accepted),
                                                "rejected": len(rejected), "action": body["action"],
                                                "by": principal_of(request).username})
    return json_response({"acceptedRequests": accepted, "rejectedDevices": rejected,
                          "message": f"Action {body['action']} for resource {body['resourceAddress']} "
                                     f"scheduled for {len(accepted)} device(s)."}, status=202)


# documented differences ----------------------------------------------------------------------------

def _disabled_conflict(operation: dict) -> None:
    operation["responses"].setdefault("409", {"$ref": "#/components/responses/ConflictError"})
    operation["description"] += " 409 when LwM2M is disabled on this gateway."


def _with_all_actions(operation: dict) -> None:
    """Inline the body schema with the gateway's extra actions in the ``action`` enum."""
    content = operation["requestBody"]["content"]["application/json"]
    name = content["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"][name])
    schema["properties"]["action"]["enum"] = list(ACTIONS)
    schema["properties"]["action"]["description"] += (
        " The gateway adds discover, write-attributes (data `pmin=10&pmax=60&gt=..&lt=..&st=..`), create "
        "(/O/I, data a JSON object of resource id to value), delete (/O/I), read-composite (resourceAddress `/`, "
        "data the paths) and write-composite (resourceAddress `/`, data a JSON object of path to value); see "
        "docs/lwm2m.md.")
    content["schema"] = schema


def _patch_post(operation: dict) -> None:
    _disabled_conflict(operation)
    _with_all_actions(operation)
    operation["description"] += (" 404 when the device is not a SIM of this gateway; 409 (SEND_NOW) when it is not "
                                 "registered with the LwM2M server. `resourceAddress` is /O, /O/I, /O/I/R or "
                                 "/O/I/R/RI; write needs /O/I/R[/RI] of a writable resource and a value of its "
                                 "type, execute /O/I/R.")


def _patch_bulk(operation: dict) -> None:
    _disabled_conflict(operation)
    _with_all_actions(operation)
    operation["description"] += (" A request that is invalid for every device (address, data) answers 400 and "
                                 "creates nothing; devices that are not SIMs, or not registered (SEND_NOW), are "
                                 "listed in `rejectedDevices`.")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    base = "/v1/integrate/devices"
    # listing, reading and cancelling requests of every protocol: endpoints/action_requests.py
    return [
        ApiRoute("POST", f"{base}/{{deviceId}}/actions/LWM2M", post_action, MANAGE, spec=os_, patch=_patch_post),
        ApiRoute("POST", "/v1/devices/{deviceId}/actions", post_action, MANAGE, spec=os_, patch=_patch_post),
        ApiRoute("POST", f"{base}/actions/LWM2M", post_bulk_action, MANAGE, spec=os_, patch=_patch_bulk),
    ]
