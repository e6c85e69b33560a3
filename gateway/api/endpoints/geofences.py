"""Geofences (1nce-os.json, ``/v1/locate/geofences``): circles and polygons on WGS84.

The shape is checked by gateway/locator/geometry.py (a bad one is a 400 naming the value); as in
1NCE OS only name, eventTypes and eventSources change after creation. Every change reloads the
running Locator, so the next position is judged against it (docs/locator.md).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from inspector import geofences as sql
from inspector import sim_list
from inspector.geofences import GeofenceRow

from ...locator.geometry import GeometryError, shape_of
from ..errors import bad_request, not_found
from ..routes import MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of
from ..timefmt import format_time
from ._common import page_count

EVENT_TYPES = ["ENTER", "EXIT"]
EVENT_SOURCES = ["GPS", "CellTower"]


def geofence_json(row: GeofenceRow, *, listing: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id, "name": row.name, "type": row.kind, "deviceId": row.device_id or "",
                           "created": format_time(row.created_ms), "updated": format_time(row.updated_ms)}
    if not listing:
        out.update(eventTypes=row.event_types, eventSources=row.event_sources, **row.geometry)
    return out


def _body(request: web.Request) -> dict[str, Any]:
    body = body_of(request)
    if not isinstance(body, dict):
        raise bad_request("body: a JSON object is required", "body")
    return body


async def list_geofences(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    total, rows = await gateway.read(gateway.store.read_with, sql.page, (page - 1) * size, size)
    return json_response({"items": [geofence_json(r, listing=True) for r in rows], "page": page,
                          "pageAmount": max(1, page_count(total, size))})


async def create_geofence(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    body = _body(request)
    try:
        shape = shape_of(body.get("type"), body)
    except GeometryError as exc:
        raise bad_request(str(exc), "coordinates" if body.get("type") == "polygon" else "type") from None
    device = body.get("deviceId")
    if device is not None and device != "":
        if not isinstance(device, str):
            raise bad_request("deviceId must be a device id (ICCID) or left out", "deviceId")
        if device not in gateway.registry and await gateway.read(sim_list.get_sim_row, gateway.store, device) is None:
            raise bad_request(f"deviceId: no device {device}", "deviceId")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name must be a non-empty text of at most 50 characters", "name")
    now = int(time.time() * 1000)
    row = GeofenceRow(str(uuid.uuid4()), name, shape.kind, device or None, shape.geometry(),
                      list(body.get("eventTypes") or EVENT_TYPES), list(body.get("eventSources") or EVENT_SOURCES),
                      now, now)
    await gateway.committer.write(gateway.store.write_with, sql.insert, row)
    await gateway.locator.reload()
    out = geofence_json(row)
    del out["created"], out["updated"]
    return json_response(out, status=201)


async def _find(request: web.Request) -> GeofenceRow:
    gateway = gateway_of(request)
    geofence_id = params_of(request)["geofenceId"]
    row = await gateway.read(gateway.store.read_with, sql.get, geofence_id)
    if row is None:
        raise not_found(f"no geofence {geofence_id}")
    return row


async def get_geofence(request: web.Request) -> web.Response:
    return json_response(geofence_json(await _find(request)))


async def patch_geofence(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    row = await _find(request)
    body = _body(request)
    if "name" in body:
        if not isinstance(body["name"], str) or not body["name"].strip():
            raise bad_request("name must be a non-empty text of at most 50 characters", "name")
        row.name = body["name"]
    row.event_types = list(body.get("eventTypes", row.event_types))
    row.event_sources = list(body.get("eventSources", row.event_sources))
    row.updated_ms = int(time.time() * 1000)
    await gateway.committer.write(gateway.store.write_with, sql.update, row)
    await gateway.locator.reload()
    return json_response(geofence_json(row))


async def delete_geofence(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    row = await _find(request)
    await gateway.committer.write(gateway.store.write_with, sql.delete, row.id)
    await gateway.locator.reload()
    return web.Response(status=204)


def _patch_create(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: type is 'circle' (center [lon, lat] and radius 50..30000 m) or 'polygon' (coordinates: "
        "closed rings of [lon, lat], the outer boundary first, then holes; valid, not crossing the antimeridian, "
        "within 100 km of its centre); a bad shape is a 400 naming the value. deviceId, when given, must be a "
        "known device.")


def _patch_item(operation: dict) -> None:
    operation["responses"].pop("500", None)


def routes() -> list[ApiRoute]:
    path = "/v1/locate/geofences"
    item = path + "/{geofenceId}"
    return [ApiRoute("GET", path, list_geofences, READ, spec="1nce-os"),
            ApiRoute("POST", path, create_geofence, MANAGE, spec="1nce-os", patch=_patch_create),
            ApiRoute("GET", item, get_geofence, READ, spec="1nce-os", patch=_patch_item),
            ApiRoute("PATCH", item, patch_geofence, MANAGE, spec="1nce-os", patch=_patch_item),
            ApiRoute("DELETE", item, delete_geofence, MANAGE, spec="1nce-os", patch=_patch_item)]
