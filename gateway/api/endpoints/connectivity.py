"""SIM connectivity (sim-management.json): status, connectivity info, network events, usage,
quotas, top-up, automatic top-up, monthly limits, lifetime extension, connection reset.

Everything here reads what the mobile core reported over RADIUS accounting
(``gateway/connectivity``, docs/connectivity.md); writes go through the
:class:`~gateway.connectivity.service.ConnectivityService` so a top-up that lifts a block is
visible to the uplink path before the answer.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta, timezone

from aiohttp import web

from inspector import bindings as sql
from inspector import sms as sms_repo

from ...connectivity import limits
from ...connectivity.quota import TopupRefused
from ..errors import ApiError, bad_request, not_found
from ..routes import MANAGE, PURCHASE, READ, ApiRoute, body_of, gateway_of, json_response, params_of
from ._common import paging_headers

MB = 1_000_000
SIM_PATH = "/management-api/v1/sims/{iccid}"
ALERTS = {"SIM_BLOCKED", "QUOTA_EXHAUSTED", "QUOTA_EXPIRED", "LIMIT_REACHED", "IMEI_LOCK_VIOLATED", "IMEI_CHANGED"}


def iso(ms: int | None, zone: str = "Z") -> str | None:
    """UTC with milliseconds: ``2018-05-07T14:08:05.000Z`` (RFC 3339, for ``date-time`` fields),
    or with ``zone="+0000"`` the style of 1NCE's examples where no format is declared."""
    if ms is None:
        return None
    t = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}{zone}"


#: RAT-Type (TS 29.274) → the generation 1NCE's PdpContext.rat_type names (LTE-M is 4G)
GENERATIONS = {1: "3G", 2: "2G", 5: "3G", 6: "4G", 8: "NB-IoT", 9: "4G", 10: "5G"}


def rat_object(code: int | None) -> dict | None:
    if code is None:
        return None
    out = {"rat_type_id": str(code)}
    if code in GENERATIONS:
        out["description"] = GENERATIONS[code]
    return out


def duration(ms: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24)."""
    seconds = max(0, ms) // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _sim(request: web.Request, iccid: str | None = None):
    gateway = gateway_of(request)
    iccid = iccid or params_of(request)["iccid"]
    sim = gateway.registry.sim_for_iccid(iccid)
    if sim is None:
        raise not_found(f"no SIM with ICCID {iccid}")
    return gateway, sim


def _row(gateway, iccid: str):
    return gateway.connectivity.sessions.get(iccid)


def _compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


async def status(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    row = _row(gateway, sim.iccid)
    online = row is not None and row.ip_address is not None
    loc = json.loads(row.location) if row is not None and row.location else {}
    body: dict = {"status": "ONLINE" if online else "OFFLINE", "services": ["GPRS"] if online else []}
    if row is not None and row.session_started_ms is not None:  # reported by the core (not just a block/top-up)
        body["location"] = _compact({"iccid": sim.iccid, "imsi": sim.imsi, "last_updated": iso(row.updated_ms),
                                     "last_updated_gprs": iso(row.updated_ms),
                                     "sgsn_ip_address": row.nas_ip,
                                     "operator_id": f"{loc['mcc']}{loc['mnc']}" if loc else None})
    if online:
        assert row is not None
        body["pdp_context"] = _compact({
            "pdp_context_id": row.session_id, "imsi": sim.imsi, "created": iso(row.session_started_ms),
            "ue_ip_address": row.ip_address, "imeisv": row.imeisv, "rat_type": rat_object(row.rat_type),
            "mcc": loc.get("mcc"), "mnc": loc.get("mnc"),
            "lac": str(loc["lac"]) if "lac" in loc else (str(loc["tac"]) if "tac" in loc else None),
            "ci": str(loc["ci"]) if "ci" in loc else (str(loc["eci"]) if "eci" in loc else None),
            "ggsn_control_plane_ip_address": row.nas_ip,
            "duration": duration(gateway.connectivity.clock() - (row.session_started_ms or 0)),
        })
    return json_response(body)


async def sim_states(request: web.Request) -> web.Response:
    """``GET /v1/sims/states`` (the gateway's own): how many SIMs are online, offline, blocked,
    disabled, as the running gateway's directory has them (the console's dashboard)."""
    return json_response(gateway_of(request).registry.state_counts())


STATES_OPERATION = {
    "tags": ["General SIMs"], "summary": "SIMs by state",
    "description": "Each SIM counted once: disabled; else blocked (quota, limit, IMEI lock); else online (a RADIUS "
                   "session) or offline. SIMs with only a static address and no RADIUS session count as offline.",
    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
        "type": "object", "required": ["online", "offline", "blocked", "disabled"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in ("online", "offline", "blocked", "disabled")}}}}}},
}


async def connectivity_info(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    received = gateway.connectivity.clock()
    params = params_of(request)
    body: dict = {"request_timestamp": iso(received, "+0000")}
    if params.get("subscriber", True):
        row = _row(gateway, sim.iccid)
        loc = json.loads(row.location) if row is not None and row.location else None
        if loc is None:
            body["subscriber_info"] = {"success": False, "state": "no_location_reported"}
        else:
            assert row is not None
            cell = {"mcc": loc["mcc"], "mnc": loc["mnc"], "lac": loc.get("lac", loc.get("tac")),
                    "cid": loc.get("ci", loc.get("eci", loc.get("sac")))}
            body["subscriber_info"] = {
                "success": True, "state": "attached" if row.ip_address else "detached",
                "location": {"current_location_retrieved": row.ip_address is not None,
                             "age_of_location": max(0, (received - row.updated_ms) // 60_000),
                             "cell_global_id": _compact(cell)}}
    if params.get("ussd"):
        body["ussd_info"] = {"success": False, "error": "USSD is not supported by nce-gateway"}
    body["reply_timestamp"] = iso(gateway.connectivity.clock(), "+0000")
    return json_response(body)


def sim_event(envelope: dict) -> dict:
    """A stored NETWORK_EVENT as 1NCE's SIM_Event."""
    net = envelope["networkEvent"]
    loc = net.get("location") or {}
    kind = net["type"]
    return _compact({
        "timestamp": iso(int(envelope["received"]), "+0000"), "event_type": f"{kind}: {net.get('description', '')}",
        "iccid": envelope["device"]["iccid"], "imsi": envelope["device"]["imsi"], "imei": net.get("imei"),
        "mcc": loc.get("mcc"), "mnc": loc.get("mnc"), "alert": kind in ALERTS,
        "event_severity": "WARN" if kind in ALERTS else "INFO"})


async def sim_events(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    total, bodies = await gateway.read(gateway.store.read_with, sql.device_events, sim.iccid, ["NETWORK_EVENT"],
                                       (page - 1) * size, size)
    events = [sim_event(json.loads(b)) for b in bodies]
    if params.get("sort") in ("timestamp", "+timestamp"):
        events.reverse()
    return json_response({"events": events, "totalEvents": total, "totalPages": max(1, math.ceil(total / size))},
                         headers=paging_headers(total, page, size))


def _day(text: str | None, field: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{field}: expected YYYY-MM-DD, got {text!r}", field) from None


def _mb(n: int) -> str:
    return f"{n / MB:.6f}"


async def usage(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    params = params_of(request)
    today = datetime.now(timezone.utc).date()
    end = _day(params.get("end_dt"), "end_dt", today)
    start = _day(params.get("start_dt"), "start_dt", end - timedelta(days=30))
    if start > end:
        raise bad_request("start_dt: after end_dt", "start_dt")
    if (end - start).days > 366:
        raise bad_request("start_dt: at most 366 days per query", "start_dt")
    first, last = start.isoformat(), end.isoformat()
    rows = await gateway.read(gateway.store.read_with, sql.daily_usage, sim.iccid, first, last)
    sms = await gateway.read(gateway.store.read_with, sms_repo.sms_daily, sim.iccid, first, last)
    data = {day: (rx, tx) for day, rx, tx in rows}
    stats = []
    for day in sorted(set(data) | set(sms)):
        rx, tx = data.get(day, (0, 0))
        mt, mo = sms.get(day, (0, 0))  # MT reach the device (its RX), MO leave it (its TX)
        stats.append({"date": f"{day}T00:00:00.000Z",
                      "data": {"volume": _mb(rx + tx), "volume_rx": _mb(rx), "volume_tx": _mb(tx),
                               "traffic_type": {"id": 5, "description": "Data", "unit": "MB"}},
                      "sms": {"volume": str(mt + mo), "volume_rx": str(mt), "volume_tx": str(mo),
                              "traffic_type": {"id": 6, "description": "SMS", "unit": "SMS"}}})
    return json_response({"stats": stats})


def quota_body(row: dict, service: str, threshold: int) -> dict:
    scale = MB if service == "data" else 1
    out = {"volume": max(0, row["total"] - row["used"]) / scale, "total_volume": row["total"] / scale,
           "last_volume_added": row["last_volume_added"] / scale, "threshold_percentage": threshold}
    if row.get("expiry_ms"):
        out["expiry_date"] = iso(row["expiry_ms"])
    if row.get("last_change_ms"):
        out["last_status_change_date"] = iso(row["last_change_ms"])
    return out


def quota_route(service: str):
    async def handler(request: web.Request) -> web.Response:
        gateway, sim = _sim(request)
        row = await gateway.connectivity.quota(sim.iccid, service)
        return json_response(quota_body(row, service, gateway.config.connectivity.auto_topup_threshold_percent))
    return handler


async def _topup_all(request: web.Request, iccids: list[str]) -> None:
    gateway = gateway_of(request)
    missing = [i for i in iccids if gateway.registry.sim_for_iccid(i) is None]
    if missing:
        raise not_found(f"no SIM with ICCID {', '.join(missing)}; nothing was topped up")
    c = gateway.connectivity
    try:
        await c.topup(iccids, c.data_quota, c.sms_quota)
    except TopupRefused as exc:
        raise ApiError(422, f"{exc}. Nothing was topped up.") from None


async def topup_one(request: web.Request) -> web.Response:
    iccid = params_of(request)["iccid"]
    await _topup_all(request, [iccid])
    return web.Response(status=201, headers={"Location": f"{SIM_PATH.format(iccid=iccid)}/quota/data"})


async def topup_many(request: web.Request) -> web.Response:
    iccids = list(dict.fromkeys(body_of(request)))
    if not iccids:
        raise bad_request("body: an empty list tops up nothing", "body")
    await _topup_all(request, iccids)
    return web.Response(status=201, headers={"Location": "/management-api/v1/sims"})


async def auto_topup(request: web.Request) -> web.Response:
    body = body_of(request)
    iccids = list(dict.fromkeys(body.get("iccids") or []))
    if not iccids or "enabled" not in body:
        raise bad_request("body: needs 'enabled' and a non-empty 'iccids'", "iccids")
    gateway = gateway_of(request)
    missing = [i for i in iccids if gateway.registry.sim_for_iccid(i) is None]
    if missing:
        raise not_found(f"no SIM with ICCID {', '.join(missing)}; nothing was changed")
    c = gateway.connectivity
    await gateway.committer.write(gateway.store.write_with, sql.set_auto_topup, iccids, bool(body["enabled"]),
                                  c.clock())
    (c.auto_topup.update if body["enabled"] else c.auto_topup.difference_update)(iccids)
    return web.Response(status=201)


async def get_limits(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    chosen = await gateway.read(gateway.store.read_with, sql.limits)
    return json_response({s: limits.option(s, i) for s, i in chosen.items() if i in limits.OPTIONS[s]})


async def set_limits(request: web.Request) -> web.Response:
    body = body_of(request)
    chosen: dict[str, int] = {}
    for field, service in limits.BODY_FIELDS.items():
        if field in body:
            if body[field] not in limits.OPTIONS[service]:
                raise bad_request(f"{field}: unknown limit id {body[field]}; see GET /v1/sims/"
                                  f"{next(k for k, v in limits.PATH_NAMES.items() if v == service)}/limits", field)
            chosen[service] = body[field]
    if not chosen:
        raise bad_request("body: name at least one of dataLimitId, smsMoLimitId, smsMtLimitId", "body")
    gateway = gateway_of(request)
    await gateway.committer.write(gateway.store.write_with, sql.set_limits, chosen, gateway.connectivity.clock())
    if "data" in chosen:
        gateway.connectivity.data_limit = limits.data_limit_bytes(chosen["data"])
    return web.Response(status=201)


async def limit_options(request: web.Request) -> web.Response:
    service = limits.PATH_NAMES[params_of(request)["service"]]
    return json_response([limits.option(service, i) for i in sorted(limits.OPTIONS[service])])


async def extension(request: web.Request) -> web.Response:
    body = body_of(request)
    iccids = list(dict.fromkeys(body.get("iccids") or []))
    if not iccids:
        raise bad_request("iccids: at least one ICCID", "iccids")
    gateway = gateway_of(request)
    missing = [i for i in iccids if gateway.registry.sim_for_iccid(i) is None]
    if missing:
        raise not_found(f"no SIM with ICCID {', '.join(missing)}; nothing was extended")
    await gateway.connectivity.extend(iccids)
    return web.Response(status=201)


async def reset(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    gateway.connectivity.start_reset(sim.iccid, "API_RESET")
    return web.Response(status=201)


def _drop_422(operation: dict) -> None:
    operation["responses"].pop("422", None)


def _options_patch(operation: dict) -> None:
    _drop_422(operation)
    operation["description"] = ("The limit options of one service (the gateway's own ids; "
                                "docs/connectivity.md): pick one with POST /v1/sims/limits.")
    operation["responses"]["200"] = {"description": "OK", "content": {"application/json": {"schema": {
        "type": "array", "items": {"$ref": "#/components/schemas/CurrentLimitData"}}}}}


def _limits_patch(operation: dict) -> None:
    _drop_422(operation)
    ok = operation["responses"].get("200")
    if ok is not None:
        ok["content"] = {"application/json": ok["content"]["*/*"]}


def routes() -> list[ApiRoute]:
    sm = "sim-management"
    return [
        ApiRoute("GET", "/v1/sims/states", sim_states, READ, operation=STATES_OPERATION),
        ApiRoute("GET", "/v1/sims/{iccid}/status", status, READ, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/{iccid}/connectivity_info", connectivity_info, READ, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/{iccid}/events", sim_events, READ, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/{iccid}/usage", usage, READ, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/{iccid}/quota/data", quota_route("data"), READ, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/{iccid}/quota/sms", quota_route("sms"), READ, spec=sm, patch=_drop_422),
        ApiRoute("POST", "/v1/sims/{iccid}/topup", topup_one, PURCHASE, spec=sm),
        ApiRoute("POST", "/v1/sims/topup", topup_many, PURCHASE, spec=sm),
        ApiRoute("POST", "/v1/sims/autoTopup", auto_topup, PURCHASE, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/limits", get_limits, READ, spec=sm, patch=_limits_patch),
        ApiRoute("POST", "/v1/sims/limits", set_limits, PURCHASE, spec=sm, patch=_drop_422),
        ApiRoute("GET", "/v1/sims/{service}/limits", limit_options, READ, spec=sm, patch=_options_patch),
        ApiRoute("POST", "/v1/sims/extension", extension, PURCHASE, spec=sm),
        ApiRoute("POST", "/v1/sims/{iccid}/reset", reset, MANAGE, spec=sm, patch=_drop_422),
    ]
