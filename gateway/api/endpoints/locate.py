"""Device Locator (1nce-os.json, ``/v1/locate``): stored positions (docs/locator.md).

``GET /v1/locate/devices/{deviceId}/positions``: the positions the gateway kept (GPS from BCL
location fields and LwM2M object 6; CellTower from the cell table), `[longitude, latitude]` as in
1NCE, paged (``page`` ≤ 50, ``pageSize`` ≤ 100), sorted by ``sampleTime`` (default newest first),
filtered by ``source`` and the window. ``mode=SUMMARY`` leaves out a position equal to the one
before it (a device that did not move). ``/v1/locate/positions/latest``: each device's latest
position. ``/v1/locate/devices/{deviceId}/activity``: the device's cell location resolutions.
Geofences: gateway/api/endpoints/geofences.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from inspector import cells, sim_list
from inspector.positions import LatestFilter, PositionRow, cell_positions, device_positions, latest_positions

from ..errors import bad_request, not_found
from ..routes import READ, ApiRoute, gateway_of, json_response, params_of
from ..timefmt import format_time, parse_time
from ._common import page_count


DAY_MS = 86_400_000
ACTIVITY_MAX_MS = 7 * DAY_MS


def metadata_of(row: PositionRow) -> dict[str, Any]:
    """The position's metadata: its protocol, and for a CellTower position the cell and accuracy (m)."""
    out: dict[str, Any] = json.loads(row.metadata) if row.metadata else {}
    out["protocol"] = row.protocol
    if row.accuracy is not None:
        out["accuracy"] = row.accuracy
    return out


async def known_device(request: web.Request, iccid: str) -> None:
    gateway = gateway_of(request)
    if iccid not in gateway.registry and await gateway.read(sim_list.get_sim_row, gateway.store, iccid) is None:
        raise not_found(f"no device {iccid}")


def window(params: dict[str, Any]) -> tuple[int | None, int | None]:
    start = parse_time(params["startDateTime"], "startDateTime")[0] if params.get("startDateTime") else None
    end = parse_time(params["endDateTime"], "endDateTime")[0] if params.get("endDateTime") else None
    return start, end


def newest_first(params: dict[str, Any]) -> bool:
    sort = params.get("sort") or ["-sampleTime"]
    if any(key.lstrip("+-") != "sampleTime" for key in sort):
        raise bad_request("sort: the positions can be sorted by sampleTime or -sampleTime", "sort")
    return sort[0].startswith("-")


async def positions(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    iccid = params["deviceId"]
    await known_device(request, iccid)
    start, end = window(params)
    newest = newest_first(params)
    page, size = params["page"], params["pageSize"]
    total, rows = await gateway.read(lambda: device_positions(
        gateway.store, iccid, start_ms=start, end_ms=end, source=params.get("source"),
        newest_first=newest, offset=(page - 1) * size, limit=size))
    items, previous = [], None
    for row in rows:
        here = (row.lon, row.lat, row.source)
        if params.get("mode") == "SUMMARY" and here == previous:
            continue
        previous = here
        items.append({"coordinate": [row.lon, row.lat], "sampleTime": format_time(row.received_ms),
                      "source": row.source, "metadata": metadata_of(row)})
    return json_response({"coordinates": items, "page": page, "pageAmount": page_count(total, size)})


async def latest(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    start, end = window(params)
    box = tuple(params.get(k) for k in ("longitudeFrom", "longitudeTo", "latitudeFrom", "latitudeTo"))
    if any(v is not None for v in box) and any(v is None for v in box):
        raise bad_request("longitudeFrom, longitudeTo, latitudeFrom and latitudeTo go together", "longitudeFrom")
    flt = LatestFilter(params.get("deviceId"), params.get("source"), start, end,
                       tuple(float(v) for v in box) if box[0] is not None else None)  # type: ignore[arg-type]
    newest = newest_first(params)
    page, size = params["page"], params["pageSize"]
    total, rows = await gateway.read(lambda: latest_positions(gateway.store, flt, newest_first=newest,
                                                              offset=(page - 1) * size, limit=size))
    items = [{"deviceId": row.iccid, "coordinate": [row.lon, row.lat], "sampleTime": format_time(row.received_ms),
              "source": row.source, "metadata": metadata_of(row)} for row in rows]
    return json_response({"coordinates": items, "page": page, "pageAmount": page_count(total, size)})


async def activity(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    iccid = params["deviceId"]
    await known_device(request, iccid)
    start, end = window(params)
    if start is None and end is None:
        end = int(time.time() * 1000)
    if start is None:
        start = end - DAY_MS  # type: ignore[operator]
    if end is None:
        end = start + DAY_MS
    if end <= start:
        raise bad_request("endDateTime must be after startDateTime", "endDateTime")
    if end - start > ACTIVITY_MAX_MS:
        raise bad_request("the window may span at most 7 days", "startDateTime")
    rows = await gateway.read(cell_positions, gateway.store, iccid, start, end)
    missed = await gateway.read(gateway.store.read_with, cells.misses, iccid, start, end)
    found = [(row.received_ms, resolution(iccid, row.received_ms, "SUCCEEDED", row.protocol, row.metadata,
                                          row)) for row in rows]
    failed = [(at, resolution(iccid, at, "FAILED", protocol, metadata)) for at, protocol, metadata in missed]
    return json_response({"items": [item for _, item in sorted(found + failed, key=lambda pair: pair[0])]})


def resolution(iccid: str, at: int, status: str, protocol: str, metadata: str | None,
               row: PositionRow | None = None) -> dict[str, Any]:
    """One cell location resolution as 1NCE's activity item (a FAILED one has no towerLocation)."""
    meta = json.loads(metadata) if metadata else {}
    item: dict[str, Any] = {
        "iccid": iccid, "sampleTime": format_time(at), "locationResolutionStatus": status, "resolutionMode": "BASIC",
        "radioAccessType": meta.get("radioAccessType", "4G"),
        "towerMetadata": {k: str(meta.get(k, "")) for k in ("MCC", "MNC", "LAC", "CellID")},
        "resolutionMetadata": {"protocol": protocol, "radio": meta.get("radio")}}
    if row is not None:
        item["towerLocation"] = {"latitude": row.lat, "longitude": row.lon}
        item["resolutionMetadata"]["accuracy"] = row.accuracy
    return item


def _patch(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: the positions it stored (GPS: BCL location fields, LwM2M object 6; CellTower: the cell "
        "table); metadata holds the protocol they came with, and for CellTower the cell and its range as "
        "accuracy (m). mode=SUMMARY leaves out a position equal to the one before it.")
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}
    operation["responses"].pop("500", None)


def _patch_latest(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: each device's latest stored position among those matching the filters; the four box "
        "bounds go together.")
    operation["responses"].pop("500", None)


def _patch_activity(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: the device's cell location resolutions: SUCCEEDED for a cell found in the cell table "
        "(its position is a CellTower position), FAILED for one it does not know (no towerLocation).")
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}
    operation["responses"].pop("500", None)


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/v1/locate/devices/{deviceId}/positions", positions, READ, spec="1nce-os", patch=_patch),
            ApiRoute("GET", "/v1/locate/positions/latest", latest, READ, spec="1nce-os", patch=_patch_latest),
            ApiRoute("GET", "/v1/locate/devices/{deviceId}/activity", activity, READ, spec="1nce-os",
                     patch=_patch_activity)]
