"""Device Locator (1nce-os.json, ``/v1/locate``): a device's stored positions.

``GET /v1/locate/devices/{deviceId}/positions``: the GPS positions the gateway kept (BCL location
fields, LwM2M object 6), `[longitude, latitude]` as in 1NCE, paged (``page`` ≤ 50, ``pageSize``
≤ 100), sorted by ``sampleTime`` (default newest first), filtered by ``source`` and the window.
``mode=SUMMARY`` leaves out a position equal to the one before it (a device that did not move).
Cell-tower positions, the latest positions of all devices, activity and geofences are not built
yet (their routes answer 501).
"""

from __future__ import annotations

from aiohttp import web

from inspector import sim_list
from inspector.positions import device_positions

from ..errors import bad_request, not_found
from ..routes import READ, ApiRoute, gateway_of, json_response, params_of
from ..timefmt import format_time, parse_time
from ._common import page_count


async def positions(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    iccid = params["deviceId"]
    if iccid not in gateway.registry and await gateway.read(sim_list.get_sim_row, gateway.store, iccid) is None:
        raise not_found(f"no device {iccid}")
    start = parse_time(params["startDateTime"], "startDateTime")[0] if params.get("startDateTime") else None
    end = parse_time(params["endDateTime"], "endDateTime")[0] if params.get("endDateTime") else None
    sort = params.get("sort") or ["-sampleTime"]
    if any(key.lstrip("+-") != "sampleTime" for key in sort):
        raise bad_request("sort: the positions can be sorted by sampleTime or -sampleTime", "sort")
    page, size = params["page"], params["pageSize"]
    total, rows = await gateway.read(lambda: device_positions(
        gateway.store, iccid, start_ms=start, end_ms=end, source=params.get("source"),
        newest_first=sort[0].startswith("-"), offset=(page - 1) * size, limit=size))
    items, previous = [], None
    for row in rows:
        here = (row.lon, row.lat, row.source)
        if params.get("mode") == "SUMMARY" and here == previous:
            continue
        previous = here
        items.append({"coordinate": [row.lon, row.lat], "sampleTime": format_time(row.received_ms),
                      "source": row.source, "metadata": {"protocol": row.protocol}})
    return json_response({"coordinates": items, "page": page, "pageAmount": page_count(total, size)})


def _patch(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: the GPS positions it stored (BCL location fields, LwM2M object 6); metadata holds the "
        "protocol they came with. mode=SUMMARY leaves out a position equal to the one before it.")
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}
    operation["responses"].pop("500", None)


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/v1/locate/devices/{deviceId}/positions", positions, READ, spec="1nce-os", patch=_patch)]
