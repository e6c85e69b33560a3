"""Administration logs (1nce-os.json, ``/v1/administrationLogs``): the changes made through the
API and the CLI (``gateway.audit``), newest first.

- ``q``: comma- or semicolon-separated ``key:value`` pairs (the 1NCE example mixes both):
  ``type`` (GENERAL, DEVICE, INTEGRATION, ...; case-insensitive), ``iccid``, ``category``
  (info, error), ``user`` (who made the change), ``startDateTime``/``endDateTime`` (ISO 8601).
- ``/stats``: changes per day in ``timezone`` (IANA name, default Europe/Amsterdam as in 1NCE)
  and the number of distinct devices changed.
- ``/{adminLogId}/payload``: ``text/x-uri``, as in 1NCE, whose URI is a ``data:`` URI holding the
  request body with its secrets removed, so a client reads it without a second request.
Owner and Admin may read them (access class ``users``): they say who did what.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from inspector import admin_logs
from inspector.admin_logs import AdminLog, AdminLogQuery

from ..errors import bad_request, not_found
from ..routes import USERS, ApiRoute, gateway_of, json_response, params_of
from ..timefmt import format_time, parse_time
from ._common import page_count

TYPES = ("INTEGRATION", "DEVICE", "GENERAL", "LOCATION", "LIFECYCLE")
CUSTOMER_ID = "nce-gateway"


def parse_q(q: str | None) -> AdminLogQuery:
    values: dict = {}
    for part in re.split(r"[,;]", q or ""):
        if not part.strip():
            continue
        name, sep, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise bad_request(f"q: {part!r} is not in the form key:value", "q")
        if name == "type":
            if value.upper() not in TYPES:
                raise bad_request(f"q: type must be one of {', '.join(TYPES)}", "q")
            values["type"] = value.upper()
        elif name in ("iccid", "category"):
            values[name] = value
        elif name == "user":
            values["actor"] = value.lower()
        elif name in ("startDateTime", "endDateTime"):
            ms, _ = parse_time(value, "q")
            values["start_ms" if name == "startDateTime" else "end_ms"] = ms
        else:
            raise bad_request(f"q: cannot filter by {name!r}; keys: type, iccid, category, user, startDateTime, "
                              "endDateTime", "q")
    return AdminLogQuery(**values)


def log_json(row: AdminLog) -> dict:
    item = {"id": row.id, "customerId": CUSTOMER_ID, "timestamp": format_time(row.created_ms), "type": row.type,
            "category": row.category, "message": row.message, "description": row.description,
            "payloadReference": row.id, "traceId": row.id}
    for key, value in (("iccid", row.iccid), ("integrationId", row.integration_id), ("ip", row.ip)):
        if value is not None:
            item[key] = value
    return item


async def list_logs(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    query = parse_q(params.get("q"))
    total, rows = await gateway.read(admin_logs.page, gateway.store, query, (page - 1) * size, size)
    return json_response({"page": page, "pageAmount": page_count(total, size), "items": [log_json(r) for r in rows]})


async def stats(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    try:
        zone = ZoneInfo(params.get("timezone") or "Europe/Amsterdam")
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request("timezone: not an IANA time zone name such as Europe/Amsterdam", "timezone") from None
    rows = await gateway.read(admin_logs.times, gateway.store, params.get("category"))
    days = Counter(datetime.fromtimestamp(ms / 1000, zone).date().isoformat() for ms, _ in rows)
    devices = {iccid for _, iccid in rows if iccid}
    return json_response({"totalUniqueDevices": len(devices),
                          "administrationLogs": [{"day": day, "amount": n} for day, n in sorted(days.items())]})


async def payload(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    log_id = params_of(request)["adminLogId"]
    exists, body = await gateway.read(admin_logs.payload, gateway.store, log_id)
    if not exists:
        raise not_found(f"no administration log {log_id}")
    data = base64.b64encode(json.dumps(body).encode()).decode("ascii")
    return web.Response(text=f"data:application/json;base64,{data}", content_type="text/x-uri")


def _patch_list(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "q":
            param["description"] = ("key:value pairs separated by ',' or ';': type, iccid, category, user, "
                                    "startDateTime, endDateTime")
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: the changes made through the management API and the CLI, newest first.")
    operation["responses"].pop("500", None)


def _patch_payload(operation: dict) -> None:
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: the URI is a data: URI with the request body, secrets replaced by \"***\".")
    operation["responses"].pop("500", None)


def _patch_stats(operation: dict) -> None:
    operation["responses"]["400"] = {"$ref": "#/components/responses/BadRequestError"}
    operation["responses"].pop("500", None)


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    return [
        ApiRoute("GET", "/v1/administrationLogs", list_logs, USERS, spec=os_, patch=_patch_list),
        ApiRoute("GET", "/v1/administrationLogs/stats", stats, USERS, spec=os_, patch=_patch_stats),
        ApiRoute("GET", "/v1/administrationLogs/{adminLogId}/payload", payload, USERS, spec=os_,
                 patch=_patch_payload),
    ]
