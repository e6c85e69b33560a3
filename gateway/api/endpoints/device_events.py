"""Events other than telemetry, newest first (the gateway's own routes):

- ``GET /v1/inspect/devices/{deviceId}/events``: those raised for one device, paged by ``before``
  (the ``seq`` of the last item). Telemetry is the device's history (``.../history``).
- ``GET /v1/inspect/events``: those that concern no device, such as an integration's failure
  (``CloudIntegrator[IntegrationDisabled]``) and test messages: what an operator looks at first
  when a receiver stops getting data.
"""

from __future__ import annotations

from aiohttp import web

from inspector import sim_list
from inspector.device_events import EventRow, device_events, gateway_events

from ..errors import not_found
from ..routes import READ, ApiRoute, gateway_of, json_response, params_of
from ..timefmt import format_time

EVENT_TYPES = ["LIFECYCLE", "ERROR", "LOCATION", "GEOFENCE"]


async def list_events(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    iccid = params["deviceId"]
    if iccid not in gateway.registry and await gateway.read(sim_list.get_sim_row, gateway.store,
                                                                      iccid) is None:
        raise not_found(f"no device {iccid}")
    size = params["pageSize"]
    rows = await gateway.read(device_events, gateway.store, iccid, size + 1, params.get("before"),
                              params.get("type"))
    items = [_item(r) for r in rows[:size]]
    body: dict = {"items": items}
    if len(rows) > size:
        body["before"] = rows[size - 1].seq
    return json_response(body)


async def list_gateway_events(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    rows = await gateway.read(gateway_events, gateway.store, params["pageSize"], params.get("type"))
    return json_response({"items": [_item(r) for r in rows]})


def _item(row: EventRow) -> dict:
    return {"seq": row.seq, "id": row.id, "type": row.type, "time": format_time(row.created_ms), "event": row.body}


OPERATION = {
    "tags": ["Device Inspector"], "summary": "Events of a device (other than telemetry)",
    "description": "LIFECYCLE, ERROR, LOCATION and GEOFENCE events the gateway raised for the device, newest "
                   "first, as they were delivered to integrations. `before` pages backwards: pass the "
                   "`before` of the previous answer.",
    "parameters": [
        {"name": "deviceId", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "pageSize", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "before", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
        {"name": "type", "in": "query", "required": False, "schema": {"type": "string", "enum": EVENT_TYPES}}],
    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/DeviceEvents"}}}}, "404": {"description": "no such device"}},
}
SCHEMAS = {"DeviceEvents": {"type": "object", "required": ["items"], "properties": {
    "items": {"type": "array", "items": {"type": "object", "required": ["seq", "id", "type", "time", "event"],
                                          "properties": {"seq": {"type": "integer"}, "id": {"type": "string"},
                                                         "type": {"type": "string"}, "time": {"type": "string"},
                                                         "event": {"type": "object"}}}},
    "before": {"type": "integer"}}}}


GATEWAY_OPERATION = {
    "tags": ["Device Inspector"], "summary": "Events that concern no device",
    "description": "ERROR events of integrations (for example `CloudIntegrator[IntegrationDisabled]`) and "
                   "TEST_MESSAGE events, newest first.",
    "parameters": [
        {"name": "pageSize", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "type", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["ERROR", "TEST_MESSAGE"]}}],
    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/DeviceEvents"}}}}},
}


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/v1/inspect/devices/{deviceId}/events", list_events, READ, operation=OPERATION,
                     schemas=SCHEMAS),
            ApiRoute("GET", "/v1/inspect/events", list_gateway_events, READ, operation=GATEWAY_OPERATION)]
