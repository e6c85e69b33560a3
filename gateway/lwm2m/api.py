"""aiohttp handlers of the LwM2M device actions (1NCE OS ``/v1/integrate/devices/...``).

They take the gateway from ``request.app[GATEWAY]`` and do no authentication themselves: the
management API mounts them behind its bearer-token check. :data:`ROUTES` lists them with their
paths relative to ``/management-api``::

    for method, path, handler in ROUTES:
        app.router.add_route(method, "/management-api" + path, handler)
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from ..api.app import GATEWAY
from .actions import FINAL, ActionError, to_api

STATUS_TEXT = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 503: "Service Unavailable"}
STATUSES = ("SCHEDULED", "IN_PROGRESS", "FAILED", "SUCCEEDED", "CANCELLED")


def error(status: int, *messages: str) -> web.Response:
    return web.json_response({"statusCode": status, "statusText": STATUS_TEXT.get(status, "Error"),
                              "errors": [{"message": m} for m in messages]}, status=status)


def _actions(request: web.Request) -> Any:
    lwm2m = getattr(request.app[GATEWAY], "lwm2m", None)
    if lwm2m is None:
        raise web.HTTPServiceUnavailable(text=json.dumps({"statusCode": 503, "statusText": "Service Unavailable",
                                                          "errors": [{"message": "LwM2M is not enabled"}]}),
                                         content_type="application/json")
    return lwm2m.actions


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return error(400, "body must be JSON")
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object")
    return body


_FIELDS = {"action", "resourceAddress", "data", "requestMode", "sendAttempts"}


async def _submit(actions: Any, iccid: str, body: dict[str, Any]) -> dict[str, Any]:
    return await actions.submit(iccid, body.get("action", "read"), body.get("resourceAddress"), body.get("data"),
                                body.get("requestMode"), body.get("sendAttempts"))


async def post_action(request: web.Request) -> web.Response:
    """``POST /v1/integrate/devices/{deviceId}/actions/LWM2M`` → 202 ``{id, message}``."""
    actions = _actions(request)
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        return error(400, f"unknown field(s): {', '.join(unknown)}")
    iccid = request.match_info["deviceId"]
    try:
        record = await _submit(actions, iccid, body)
    except ActionError as exc:
        return error(exc.status, str(exc))
    return web.json_response({"id": record["id"], "message": f"Action {record['action']} for resource "
                              f"{record['resource']} successfully scheduled for device {iccid}."}, status=202)


async def post_bulk_action(request: web.Request) -> web.Response:
    """``POST /v1/integrate/devices/actions/LWM2M`` with ``deviceIds`` (at most 100)."""
    actions = _actions(request)
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = sorted(set(body) - _FIELDS - {"deviceIds"})
    if unknown:
        return error(400, f"unknown field(s): {', '.join(unknown)}")
    ids = body.get("deviceIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100 or not all(isinstance(i, str) for i in ids):
        return error(400, "deviceIds must be a list of 1 to 100 device ids")
    accepted, rejected = [], []
    for iccid in ids:
        try:
            record = await _submit(actions, iccid, body)
        except ActionError as exc:
            if exc.status == 400:
                return error(400, str(exc))
            rejected.append(iccid)
            continue
        accepted.append({"requestId": record["id"], "deviceId": iccid})
    return web.json_response({"acceptedRequests": accepted, "rejectedDevices": rejected,
                              "message": f"Action {body.get('action', 'read')} for resource "
                                         f"{body.get('resourceAddress')} scheduled for {len(accepted)} device(s)."},
                             status=202)


async def get_request(request: web.Request) -> web.Response:
    """``GET /v1/integrate/devices/actions/requests/{requestId}``."""
    record = await _actions(request).get(request.match_info["requestId"])
    if record is None:
        return error(404, "no such action request")
    return web.json_response(to_api(record))


async def _list(request: web.Request, statuses: tuple[str, ...]) -> web.Response:
    actions = _actions(request)
    q = request.query
    try:
        page = int(q.get("page", "1"))
        size = int(q.get("pageSize", "10"))
    except ValueError:
        return error(400, "page and pageSize must be integers")
    if page < 1 or size < 1 or size > 1000:
        return error(400, "page must be at least 1 and pageSize 1..1000")
    if q.get("protocol") not in (None, "LWM2M"):
        return web.json_response({"items": [], "page": page, "pageAmount": 0})
    status = q.get("status")
    if status is not None:
        if status not in STATUSES:
            return error(400, f"status must be one of {', '.join(STATUSES)}")
        if statuses and status not in statuses:
            return web.json_response({"items": [], "page": page, "pageAmount": 0})
        statuses = (status,)
    sort = q.get("sort", "-created")
    if sort not in ("created", "-created", "updated", "-updated"):
        return error(400, "sort must be created, -created, updated or -updated")
    items, total = await actions.list(iccid=q.get("deviceId"), statuses=statuses, limit=size,
                                      offset=(page - 1) * size, newest_first=sort.startswith("-"))
    return web.json_response({"items": [to_api(i) for i in items], "page": page,
                              "pageAmount": math.ceil(total / size)})


async def list_requests(request: web.Request) -> web.Response:
    """``GET /v1/integrate/devices/actions/requests`` (last 7 days)."""
    return await _list(request, ())


async def list_active_requests(request: web.Request) -> web.Response:
    return await _list(request, ("SCHEDULED", "IN_PROGRESS"))


async def list_archived_requests(request: web.Request) -> web.Response:
    return await _list(request, FINAL)


async def cancel_request(request: web.Request) -> web.Response:
    """``DELETE /v1/integrate/devices/actions/requests/{requestId}``."""
    actions = _actions(request)
    action_id = request.match_info["requestId"]
    ids = await actions.cancel(action_id=action_id)
    if not ids:
        record = await actions.get(action_id)
        if record is None:
            return error(404, "no such action request")
        return error(409, f"action request is {record['status']}")
    return web.json_response({"id": action_id, "status": "CANCELLED"})


async def cancel_device_requests(request: web.Request) -> web.Response:
    """``DELETE /v1/integrate/devices/{deviceId}/actions/requests``."""
    ids = await _actions(request).cancel(iccid=request.match_info["deviceId"])
    return web.json_response([{"id": i, "status": "CANCELLED"} for i in ids])


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/integrate/devices/{deviceId}/actions/LWM2M", post_action),
    ("POST", "/v1/integrate/devices/actions/LWM2M", post_bulk_action),
    ("GET", "/v1/integrate/devices/actions/requests", list_requests),
    ("GET", "/v1/integrate/devices/actions/requests/active", list_active_requests),
    ("GET", "/v1/integrate/devices/actions/requests/archived", list_archived_requests),
    ("GET", "/v1/integrate/devices/actions/requests/{requestId}", get_request),
    ("DELETE", "/v1/integrate/devices/actions/requests/{requestId}", cancel_request),
    ("DELETE", "/v1/integrate/devices/{deviceId}/actions/requests", cancel_device_requests),
]
