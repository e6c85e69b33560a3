"""LwM2M device actions (1nce-os.json, ``/v1/integrate/devices/.../actions``): create, read, list
and cancel action requests of :class:`gateway.lwm2m.actions.DeviceActions`.

An action is stored before anything is sent and answered 202 with its id; its status and result
(the device's response code and the decoded value) are read back with ``GET
.../actions/requests/{requestId}``. The request bodies are checked against the 1NCE schemas,
then by ``actions.validate`` (address, writability, the value's type), whose complaint names the
field. A device that is not a SIM answers 404, one that is not registered (``SEND_NOW``) 409.
With LwM2M disabled (``[lwm2m] enabled = false``, or neither CoAP nor CoAPs enabled) every route
here answers 409.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

from aiohttp import web

from ...lwm2m.actions import ACTIONS, FINAL, ActionError, to_api, validate
from ..openapi import reference
from ..errors import ApiError, conflict, not_found
from ..routes import MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of

log = logging.getLogger("nce.api.lwm2m")

ACTIVE = ("SCHEDULED", "IN_PROGRESS")
MAX_PAGE_SIZE = 1000


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


async def get_request(request: web.Request) -> web.Response:
    """``GET /v1/integrate/devices/actions/requests/{requestId}``."""
    request_id = params_of(request)["requestId"]
    record = await _actions(request).get(request_id)
    if record is None:
        raise not_found(f"no action request {request_id}")
    return json_response(to_api(record))


async def _list(request: web.Request, statuses: tuple[str, ...]) -> web.Response:
    actions = _actions(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    if params["protocol"] not in (None, "LWM2M"):  # the gateway's device actions are LwM2M only
        return json_response({"items": [], "page": page, "pageAmount": 0})
    if params["status"] is not None:  # the operation's enum keeps it within ``statuses``
        statuses = (params["status"],)
    sort = params["sort"]
    items, total = await actions.list(iccid=params["deviceId"], statuses=statuses, limit=size,
                                      offset=(page - 1) * size, newest_first=sort.startswith("-"),
                                      order_by=sort.lstrip("-"))
    return json_response({"items": [to_api(i) for i in items], "page": page, "pageAmount": math.ceil(total / size)})


async def list_requests(request: web.Request) -> web.Response:
    """``GET /v1/integrate/devices/actions/requests``: the last 7 days' requests."""
    return await _list(request, ())


async def list_active_requests(request: web.Request) -> web.Response:
    return await _list(request, ACTIVE)


async def list_archived_requests(request: web.Request) -> web.Response:
    return await _list(request, FINAL)


async def cancel_request(request: web.Request) -> web.Response:
    """``DELETE /v1/integrate/devices/actions/requests/{requestId}``; 409 once it is final."""
    actions = _actions(request)
    request_id = params_of(request)["requestId"]
    if not await actions.cancel(action_id=request_id):
        record = await actions.get(request_id)
        if record is None:
            raise not_found(f"no action request {request_id}")
        raise conflict(f"action request {request_id} is {record['status']}; only SCHEDULED and IN_PROGRESS "
                       "requests can be cancelled")
    log.info("device action cancelled", extra={"event": "api_lwm2m_cancel", "action_id": request_id,
                                               "by": principal_of(request).username})
    return json_response({"id": request_id, "status": "CANCELLED"})


async def cancel_device_requests(request: web.Request) -> web.Response:
    """``DELETE /v1/integrate/devices/{deviceId}/actions/requests``: cancels the device's open requests."""
    actions = _actions(request)
    gateway = gateway_of(request)
    iccid = params_of(request)["deviceId"]
    if await gateway.read(gateway.store.get_sim, iccid) is None:
        raise not_found(f"no device {iccid}")
    ids = await actions.cancel(iccid=iccid)
    log.info("device actions cancelled", extra={"event": "api_lwm2m_cancel", "iccid": iccid, "count": len(ids),
                                                "by": principal_of(request).username})
    return json_response([{"id": i, "status": "CANCELLED"} for i in ids])


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


def _patch_list(operation: dict) -> None:
    _disabled_conflict(operation)
    for param in operation.get("parameters", []):
        if param.get("name") == "pageSize":
            param["schema"]["maximum"] = MAX_PAGE_SIZE
    operation["description"] += (f" `pageSize` at most {MAX_PAGE_SIZE}. Requests are LwM2M only: another "
                                 "`protocol` gives an empty list.")


def _patch_cancel(operation: dict) -> None:
    _disabled_conflict(operation)
    operation["description"] += " 409 when the request is no longer SCHEDULED or IN_PROGRESS."


def _patch_cancel_device(operation: dict) -> None:
    _disabled_conflict(operation)
    operation["description"] += (" Cancels the device's SCHEDULED and IN_PROGRESS requests (an empty list when "
                                 "there are none); 404 when the device is not a SIM of this gateway.")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    base = "/v1/integrate/devices"
    # the literal /active and /archived before /{requestId}: aiohttp matches in this order
    return [
        ApiRoute("POST", f"{base}/{{deviceId}}/actions/LWM2M", post_action, MANAGE, spec=os_, patch=_patch_post),
        ApiRoute("POST", f"{base}/actions/LWM2M", post_bulk_action, MANAGE, spec=os_, patch=_patch_bulk),
        ApiRoute("GET", f"{base}/actions/requests", list_requests, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", f"{base}/actions/requests/active", list_active_requests, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", f"{base}/actions/requests/archived", list_archived_requests, READ, spec=os_,
                 patch=_patch_list),
        ApiRoute("GET", f"{base}/actions/requests/{{requestId}}", get_request, READ, spec=os_,
                 patch=_disabled_conflict),
        ApiRoute("DELETE", f"{base}/actions/requests/{{requestId}}", cancel_request, MANAGE, spec=os_,
                 patch=_patch_cancel),
        ApiRoute("DELETE", f"{base}/{{deviceId}}/actions/requests", cancel_device_requests, MANAGE, spec=os_,
                 patch=_patch_cancel_device),
    ]
