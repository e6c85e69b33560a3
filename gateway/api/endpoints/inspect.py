"""Device Inspector (1nce-os.json): devices, latest state, message history, counts per interval.

Paging of history is by ``nextToken`` over a snapshot (see ``inspector.history``): the token
carries the query (window, protocol, device, time zone), the snapshot's high-water mark and the
key of the last message returned. It is opaque to clients (base64url JSON, not signed: it
grants nothing a caller could not ask for directly). Sent together with the token, the query
parameters may be repeated but must not contradict it.

Times: ``startDateTime`` inclusive, ``endDateTime`` exclusive, ISO 8601; without an offset they
are UTC. The times in the answer use the offset of ``startDateTime`` (else of ``endDateTime``,
else ``Z``). Without ``startDateTime`` the window starts 7 days before its end (the retention);
without ``endDateTime`` it reaches the newest message at the time of the first page.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

from aiohttp import web

from inspector import history, sim_list
from inspector.history import HistoryQuery, MessageRow

from ..errors import bad_request, not_found
from ..routes import READ, ApiRoute, gateway_of, json_response, params_of
from ..timefmt import format_time, parse_time
from ..validation import INT_MAX, INT_MIN
from ._common import page_offset, page_count, parse_filters, parse_sort

PROTOCOLS = ["UDP", "COAP", "LWM2M"]
DEFAULT_WINDOW_MS = 7 * 86_400_000
MAX_PAGE_SIZE = 1000
MAX_BUCKETS = 10_000
_INTERVAL = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# devices ------------------------------------------------------------------------------------

def device_json(row: sim_list.SimRow, with_name: bool = False) -> dict:
    s = row.sim
    out = {"id": s.iccid, "iccid": s.iccid, "imsi1": s.imsi, "ip": s.ip_address}
    if with_name and s.label:
        out["name"] = s.label
    return out


async def list_devices(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    filters = parse_filters(params.get("q"), {"iccid": "iccid", "id": "iccid", "ip": "ip_address", "imsi1": "imsi"})
    sort = parse_sort(params.get("sort"), {"iccid": "iccid", "id": "iccid", "ip": "ip_address", "imsi1": "imsi",
                                           "name": "label"})
    total, rows = await gateway.read(lambda: sim_list.list_sims(gateway.store, filters=filters, sort=sort,
                                                               offset=page_offset(page, size), limit=size))
    return json_response({"items": [device_json(r) for r in rows], "page": page,
                          "pageAmount": page_count(total, size)})


async def get_device(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    device = params_of(request)["deviceId"]
    row = await gateway.read(sim_list.get_sim_row, gateway.store, device)
    if row is None:
        raise not_found(f"no device {device}")
    return json_response(device_json(row, with_name=True))


def payload_text(row: MessageRow) -> str:
    """Translated payloads as their JSON text, raw ones as base64 (the 1NCE 'payload' string)."""
    if row.translated is not None:
        return row.translated
    return base64.b64encode(row.payload).decode("ascii")


async def telemetry(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    device = params["deviceId"]
    rows = await gateway.read(history.latest_messages, gateway.store, device, params.get("protocol"))
    if not rows and device not in gateway.registry:
        if await gateway.read(sim_list.get_sim_row, gateway.store, device) is None:
            raise not_found(f"no device {device}")
    state: dict[str, Any] = {}
    for row in rows:
        entry: dict[str, Any] = {"time": format_time(row.received_ms)}
        if row.translated is not None:
            entry["payload"] = json.loads(row.translated)
        else:
            entry["payload"] = base64.b64encode(row.payload).decode("ascii")
            entry["encoding"] = "base64"
        if row.topic is not None:
            entry["topic"] = row.topic
        state[row.protocol] = entry
    return json_response({"id": device, "state": state})


# history ------------------------------------------------------------------------------------

def _encode(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _is_int(value: Any, low: int = INT_MIN, high: int = INT_MAX) -> bool:
    """An int the store can use (a JSON true/false is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _decode(token: str) -> dict:
    """The state of a ``nextToken``; 400 naming ``nextToken`` for anything this gateway did not
    make (the token is not signed: every value is checked before it reaches a query)."""
    try:
        if len(token) > 4096:
            raise ValueError
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("v") != 1:
            raise ValueError
        for key in ("h", "s"):
            if not _is_int(state.get(key)):
                raise ValueError
        if state.get("e") is not None and not _is_int(state["e"]):
            raise ValueError
        if state.get("o") is not None and not _is_int(state["o"], -1439, 1439):  # a UTC offset in minutes
            raise ValueError
        if state.get("r") not in (None, 1):  # newest first (order=desc)
            raise ValueError
        for key in ("p", "d"):
            if state.get(key) is not None and not isinstance(state[key], str):
                raise ValueError
        after = state.get("a")
        if after is not None and not (isinstance(after, list) and len(after) == 2 and all(map(_is_int, after))):
            raise ValueError
        return state
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad_request("nextToken: not a token of this query; start again without nextToken",
                          "nextToken") from None


def _window(params: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(start ms, end ms, offset minutes) as given."""
    start = end = offset = None
    if params.get("endDateTime"):
        end, offset = parse_time(params["endDateTime"], "endDateTime")
    if params.get("startDateTime"):
        start, start_offset = parse_time(params["startDateTime"], "startDateTime")
        offset = start_offset
    if start is not None and end is not None and start > end:
        raise bad_request("startDateTime: must not be after endDateTime", "startDateTime")
    return start, end, offset


def _device_filter(params: dict[str, Any], path_device: str | None) -> str | None:
    device = path_device
    for name in ("deviceId", "iccid"):
        value = params.get(name) if path_device is None else None
        if value:
            if device is not None and value != device:
                raise bad_request(f"{name}: names another device than {device}", name)
            device = value
    return device


async def _history(request: web.Request, path_device: str | None) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    size = params["pageSize"]
    device = _device_filter(params, path_device)
    protocol = params.get("protocol")
    start, end, offset = _window(params)
    token = params.get("nextToken")
    if token:
        state = _decode(token)
        if path_device is not None and state.get("d") != path_device:
            raise bad_request("nextToken: belongs to another device's history", "nextToken")
        given = {"d": device, "p": protocol, "s": start, "e": end}
        names = {"d": "deviceId", "p": "protocol", "s": "startDateTime", "e": "endDateTime"}
        for key, value in given.items():
            if value is not None and value != state.get(key):
                raise bad_request(f"{names[key]}: differs from the query of nextToken", names[key])
        if params.get("order") is not None and (params["order"] == "desc") != (state.get("r") == 1):
            raise bad_request("order: differs from the query of nextToken", "order")
    else:
        if start is None:
            start = (end if end is not None else now_ms()) - DEFAULT_WINDOW_MS
        high_water = await gateway.read(history.high_water_mark, gateway.store)
        state = {"v": 1, "h": high_water, "s": start, "e": end, "p": protocol, "d": device, "o": offset, "a": None}
        if params.get("order") == "desc":
            state["r"] = 1
    after = tuple(state["a"]) if state.get("a") else None
    query = HistoryQuery(state.get("d"), state.get("p"), state["s"], state.get("e"), state["h"], after,  # type: ignore[arg-type]
                         newest_first=state.get("r") == 1)
    rows = await gateway.read(history.history_page, gateway.store, query, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    zone = state.get("o")
    items = []
    for row in rows:
        item = {"iccid": row.iccid, "deviceId": row.iccid, "protocol": row.protocol, "payload": payload_text(row),
                "time": format_time(row.received_ms, zone)}
        if path_device is not None and row.topic is not None:
            item["topic"] = row.topic  # the all-devices schema has no topic
        items.append(item)
    body: dict[str, Any] = {"items": items}
    if more:
        body["nextToken"] = _encode({**state, "a": [rows[-1].received_ms, rows[-1].seq]})
    if not token:
        body["firstToken"] = _encode({**state, "a": None})
    return json_response(body)


async def device_history(request: web.Request) -> web.Response:
    return await _history(request, params_of(request)["deviceId"])


async def all_history(request: web.Request) -> web.Response:
    return await _history(request, None)


# insights -----------------------------------------------------------------------------------

async def _insights(request: web.Request, path_device: str | None) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    device = _device_filter(params, path_device)
    start, end, offset = _window(params)
    interval = params.get("interval") or "1d"
    match = _INTERVAL.match(interval)
    if not match:
        raise bad_request("interval: a number and a unit m, h or d, such as 15m, 1h, 1d", "interval")
    bucket_ms = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if end is None:
        end = now_ms() + 1
    if start is None:
        start = end - DEFAULT_WINDOW_MS
    if (end - start) // bucket_ms > MAX_BUCKETS:
        raise bad_request(f"interval: {interval} makes more than {MAX_BUCKETS} intervals in this window", "interval")
    offset_ms = (offset or 0) * 60_000
    rows = await gateway.read(lambda: history.insights(gateway.store, iccid=device, protocol=params.get("protocol"),
                                                       start_ms=start, end_ms=end, bucket_ms=bucket_ms,
                                                       offset_ms=offset_ms))
    items = [{"time": format_time(t, offset), "protocol": p, "amount": n} for t, p, n in rows]
    return json_response({"interval": interval, "items": items})


async def device_insights(request: web.Request) -> web.Response:
    return await _insights(request, params_of(request)["deviceId"])


async def all_insights(request: web.Request) -> web.Response:
    return await _insights(request, None)


# documented differences ---------------------------------------------------------------------

def _protocol_enum(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "protocol":
            param.setdefault("schema", {})["enum"] = list(PROTOCOLS)


def _page_size_max(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "pageSize":
            param["schema"]["maximum"] = MAX_PAGE_SIZE
            param["description"] = param.get("description", "") + f" At most {MAX_PAGE_SIZE}."


def _time_notes(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") in ("startDateTime", "endDateTime"):
            param["schema"]["format"] = "date-time"
        if param.get("name") == "startDateTime":
            param["description"] = param.get("description", "") + (
                " ISO 8601, inclusive; without an offset UTC. Default: 7 days before the end. "
                "The times in the answer use this parameter's offset.")
        elif param.get("name") == "endDateTime":
            param["description"] = param.get("description", "") + " ISO 8601, exclusive. Default: now."


def _patch_history(operation: dict) -> None:
    _protocol_enum(operation)
    _page_size_max(operation)
    _time_notes(operation)
    operation["parameters"].append({
        "name": "order", "in": "query", "required": False, "schema": {"type": "string", "enum": ["asc", "desc"],
                                                                      "default": "asc"},
        "description": "Gateway extension: `desc` pages from the newest message backwards (the console's "
                       "order). Kept in nextToken."})


def _patch_insights(operation: dict) -> None:
    _protocol_enum(operation)
    _time_notes(operation)
    for param in operation.get("parameters", []):
        if param.get("name") == "interval":
            param["schema"]["pattern"] = _INTERVAL.pattern
            param["description"] = param.get("description", "") + (
                " A number and a unit m, h or d; default 1d. Intervals with no messages are left out.")


def _patch_devices(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "page":
            param["schema"].pop("maximum", None)


def _patch_telemetry(operation: dict) -> None:
    _protocol_enum(operation)
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}
    operation["description"] += (" The state holds, per protocol, the latest message: its time, payload (JSON "
                                  "when translated, else base64 with encoding 'base64') and topic.")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    return [
        ApiRoute("GET", "/v1/inspect/devices", list_devices, READ, spec=os_, patch=_patch_devices),
        ApiRoute("GET", "/v1/inspect/devices/history", all_history, READ, spec=os_, patch=_patch_history),
        ApiRoute("GET", "/v1/inspect/devices/history/insights", all_insights, READ, spec=os_, patch=_patch_insights),
        ApiRoute("GET", "/v1/inspect/devices/{deviceId}", get_device, READ, spec=os_),
        ApiRoute("GET", "/v1/inspect/devices/{deviceId}/telemetry", telemetry, READ, spec=os_,
                 patch=_patch_telemetry),
        ApiRoute("GET", "/v1/inspect/devices/{deviceId}/history", device_history, READ, spec=os_,
                 patch=_patch_history),
        ApiRoute("GET", "/v1/inspect/devices/{deviceId}/history/insights", device_insights, READ, spec=os_,
                 patch=_patch_insights),
    ]

