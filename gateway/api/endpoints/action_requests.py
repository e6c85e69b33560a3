"""Device action requests of every protocol (1nce-os.json, ``/v1/integrate/devices/actions/requests``):
list (all, active, archived), read and cancel. LwM2M actions (``lwm2m_actions``, run by
:mod:`gateway.lwm2m.actions`) and the Device Controller's UDP and CoAP requests
(``device_actions``, run by :mod:`gateway.controller`) are served through one listing
(:mod:`gateway.action_requests`), so a client sees one list of requests whatever their protocol.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from aiohttp import web

from ... import action_requests
from ...action_requests import ACTIVE, FINAL
from ...lwm2m import storage as lwm2m_store
from ..errors import conflict, not_found
from ..routes import MANAGE, READ, ApiRoute, gateway_of, json_response, params_of, principal_of

log = logging.getLogger("nce.api.actions")

MAX_PAGE_SIZE = 1000


async def _list(request: web.Request, statuses: tuple[str, ...]) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    if params["status"] is not None:  # the operation's enum keeps it within ``statuses``
        statuses = (params["status"],)
    protocol = params["protocol"]
    protocols = (protocol.upper(),) if protocol else ()
    sort = params["sort"]

    def read(conn: Any) -> tuple[list[dict[str, Any]], int]:
        return action_requests.page(conn, iccid=params["deviceId"], statuses=statuses, protocols=protocols,
                                    limit=size, offset=(page - 1) * size, newest_first=sort.startswith("-"),
                                    order_by=sort.lstrip("-"))

    items, total = await gateway.read(gateway.store.read_with, read)
    return json_response({"items": items, "page": page, "pageAmount": math.ceil(total / size)})


async def list_requests(request: web.Request) -> web.Response:
    """``GET /v1/integrate/devices/actions/requests``: the last 7 days' requests."""
    return await _list(request, ())


async def list_active_requests(request: web.Request) -> web.Response:
    return await _list(request, ACTIVE)


async def list_archived_requests(request: web.Request) -> web.Response:
    return await _list(request, FINAL)


async def get_request(request: web.Request) -> web.Response:
    """``GET /v1/integrate/devices/actions/requests/{requestId}``."""
    gateway = gateway_of(request)
    request_id = params_of(request)["requestId"]
    item = await gateway.read(gateway.store.read_with, action_requests.item, request_id)
    if item is None:
        raise not_found(f"no action request {request_id}")
    return json_response(item)


async def _cancel_lwm2m(gateway: Any, *, action_id: str | None = None, iccid: str | None = None) -> list[str]:
    if gateway.lwm2m is not None:  # also stops an action being executed
        return await gateway.lwm2m.actions.cancel(action_id=action_id, iccid=iccid)
    return await gateway.committer.write(lambda: lwm2m_store.cancel_actions(gateway.store.connection(),
                                                                            action_id=action_id, iccid=iccid))


async def cancel_request(request: web.Request) -> web.Response:
    """``DELETE /v1/integrate/devices/actions/requests/{requestId}``; 409 once it is final."""
    gateway = gateway_of(request)
    request_id = params_of(request)["requestId"]
    if not (await gateway.controller.cancel(request_id=request_id)
            or await _cancel_lwm2m(gateway, action_id=request_id)):
        item = await gateway.read(gateway.store.read_with, action_requests.item, request_id)
        if item is None:
            raise not_found(f"no action request {request_id}")
        raise conflict(f"action request {request_id} is {item['status']}; only SCHEDULED and IN_PROGRESS "
                       "requests can be cancelled")
    log.info("device action cancelled", extra={"event": "api_action_cancel", "action_id": request_id,
                                               "by": principal_of(request).username})
    return json_response({"id": request_id, "status": "CANCELLED"})


async def cancel_device_requests(request: web.Request) -> web.Response:
    """``DELETE /v1/integrate/devices/{deviceId}/actions/requests``: cancels the device's open requests."""
    gateway = gateway_of(request)
    iccid = params_of(request)["deviceId"]
    if await gateway.read(gateway.store.get_sim, iccid) is None:
        raise not_found(f"no device {iccid}")
    ids = await _cancel_lwm2m(gateway, iccid=iccid) + await gateway.controller.cancel(iccid=iccid)
    log.info("device actions cancelled", extra={"event": "api_action_cancel", "iccid": iccid, "count": len(ids),
                                                "by": principal_of(request).username})
    return json_response([{"id": i, "status": "CANCELLED"} for i in ids])


# documented differences ----------------------------------------------------------------------------

def _patch_list(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "pageSize":
            param["schema"]["maximum"] = MAX_PAGE_SIZE
    operation["description"] += (f" `pageSize` at most {MAX_PAGE_SIZE}. LwM2M actions and the Device Controller's "
                                 "UDP and CoAP requests in one list; `protocol` (LWM2M, UDP, COAP) filters it.")


def _patch_cancel(operation: dict) -> None:
    operation["responses"].setdefault("409", {"$ref": "#/components/responses/ConflictError"})
    operation["description"] += " 409 when the request is no longer SCHEDULED or IN_PROGRESS."


def _patch_cancel_device(operation: dict) -> None:
    operation["description"] += (" Cancels the device's SCHEDULED and IN_PROGRESS requests of every protocol (an "
                                 "empty list when there are none); 404 when the device is not a SIM of this gateway.")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    base = "/v1/integrate/devices"
    # the literal /active and /archived before /{requestId}: aiohttp matches in this order
    return [
        ApiRoute("GET", f"{base}/actions/requests", list_requests, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", f"{base}/actions/requests/active", list_active_requests, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", f"{base}/actions/requests/archived", list_archived_requests, READ, spec=os_,
                 patch=_patch_list),
        ApiRoute("GET", f"{base}/actions/requests/{{requestId}}", get_request, READ, spec=os_),
        ApiRoute("DELETE", f"{base}/actions/requests/{{requestId}}", cancel_request, MANAGE, spec=os_,
                 patch=_patch_cancel),
        ApiRoute("DELETE", f"{base}/{{deviceId}}/actions/requests", cancel_device_requests, MANAGE, spec=os_,
                 patch=_patch_cancel_device),
    ]
