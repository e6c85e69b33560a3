"""Devices: the list, and one device's page: its SIM (status, connection, quotas, daily usage,
SMS), latest values, history with paging (live on the first page), events, positions, and its
LwM2M registration with read, write, execute and observe buttons that create device actions
through the API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..calls import PREFIX, back, call, call_ok
from ..render import console_of, render, render_fragment, session_of
from ._time import short
from .sims import quota_bar

PAGE_SIZE = 25
ACTIONS = ("read", "write", "execute", "observe-start", "observe-end")


def pretty_payload(text: str) -> tuple[str, bool]:
    """A history payload for display: translated JSON indented, base64 as it is; and whether it was JSON."""
    try:
        value = json.loads(text)
    except ValueError:
        return text, False
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True), True
    return text, False


def history_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        payload, translated = pretty_payload(item["payload"])
        rows.append({"time": short(item["time"]), "protocol": item["protocol"], "topic": item.get("topic", ""),
                     "payload": payload, "translated": translated})
    return rows


def position_plot(positions: list[dict[str, Any]], size: int = 300) -> dict[str, Any] | None:
    """Points (the Locator's ``coordinate`` = [longitude, latitude]) scaled into a square SVG:
    no map tiles, so the plot works without internet."""
    points = [(float(p["coordinate"][0]), float(p["coordinate"][1]), p) for p in positions
              if len(p.get("coordinate") or []) == 2]
    if not points:
        return None
    lons = [x for x, _, _ in points]
    lats = [y for _, y, _ in points]
    span = max(max(lons) - min(lons), max(lats) - min(lats), 1e-4)
    pad = 20
    scale = (size - 2 * pad) / span
    dots = [{"x": round(pad + (x - min(lons)) * scale, 1), "y": round(size - pad - (y - min(lats)) * scale, 1),
             "title": f"{y:.5f}, {x:.5f} {short(str(p.get('sampleTime') or ''))}"}
            for x, y, p in points]
    return {"size": size, "dots": dots, "lon": (min(lons), max(lons)), "lat": (min(lats), max(lats))}


async def list_devices(request: web.Request) -> web.Response:
    search = request.query.get("q", "").strip()
    page_text = request.query.get("page", "1")
    page = int(page_text) if page_text.isdigit() and int(page_text) > 0 else 1
    q = f"iccid:{search}" if search.isdigit() else (f"ip:{search}" if search else "")
    answer = await call_ok(request, "GET", "/v1/inspect/devices", params={"q": q, "page": page, "pageSize": 50})
    return render(request, "devices.html", page="devices", devices=answer.body["items"], search=search,
                  current=page, pages=answer.body.get("pageAmount", 1))


async def _history(request: web.Request, iccid: str, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    answer = await call_ok(request, "GET", f"/v1/inspect/devices/{iccid}/history",
                           params={"pageSize": PAGE_SIZE, "nextToken": token, "order": "desc"})
    return history_rows(answer.body["items"]), answer.body.get("nextToken")


async def _optional(request: web.Request, path: str, **params: Any) -> tuple[Any, str | None]:
    """An API answer that may not exist for this device or gateway: (body, why not)."""
    answer = await call(request, "GET", path, params=params or None)
    if answer.ok:
        return answer.body, None
    if answer.status == 501:
        return None, "not available on this gateway yet"
    return None, answer.message


async def _sim_panel(request: web.Request, iccid: str) -> dict[str, Any]:
    """The SIM behind the device, from the SIM API: card, connection, quotas (with expiry),
    usage per day (newest first) and the latest SMS; each part None where the API has none."""
    paths = (f"/v1/sims/{iccid}", f"/v1/sims/{iccid}/status", f"/v1/sims/{iccid}/quota/data",
             f"/v1/sims/{iccid}/quota/sms", f"/v1/sims/{iccid}/usage", f"/v1/sims/{iccid}/sms")
    params: tuple[dict[str, Any] | None, ...] = (None, None, None, None, None, {"pageSize": 10})
    answers = await asyncio.gather(*(call(request, "GET", path, params=p) for path, p in zip(paths, params)))
    card, status, data, sms_quota, usage, sms = (a.body if a.ok else None for a in answers)
    quotas = []
    for name, body, unit in (("Data", data, "MB"), ("SMS", sms_quota, "SMS")):
        bar = quota_bar(body)
        if bar is not None:
            quotas.append({**bar, "name": name, "unit": unit, "expiry": short(body.get("expiry_date") or "")})
    days = [{"day": d["date"][:10], "data_mb": d["data"]["volume"], "rx": d["data"]["volume_rx"],
             "tx": d["data"]["volume_tx"], "sms_mt": d["sms"]["volume_rx"], "sms_mo": d["sms"]["volume_tx"]}
            for d in reversed((usage or {}).get("stats", []))]
    messages = [{"id": m["id"], "type": m["sms_type"]["description"], "status": m["status"]["description"],
                 "time": short(m["submit_date"]), "payload": m["payload"]} for m in (sms or [])]
    pdp = (status or {}).get("pdp_context") or {}
    return {"status": (card or {}).get("status"), "imei_lock": (card or {}).get("imei_lock"),
            "msisdn": (card or {}).get("msisdn"), "connection": (status or {}).get("status"),
            "address": pdp.get("ue_ip_address"), "rat": (pdp.get("rat_type") or {}).get("description"),
            "quotas": quotas, "usage": days, "sms": messages, "known": card is not None}


async def device_page(request: web.Request) -> web.Response:
    iccid = request.match_info["iccid"]
    device = (await call_ok(request, "GET", f"/v1/inspect/devices/{iccid}")).body
    token = request.query.get("next") or None
    history, next_token = await _history(request, iccid, token)
    events = await _events(request, iccid)
    positions, positions_note = await _optional(request, f"/v1/locate/devices/{iccid}/positions", pageSize=100)
    registration, registration_note = await _optional(request, f"/v1/integrate/devices/{iccid}/registration")
    requests, _ = await _optional(request, "/v1/integrate/devices/actions/requests", deviceId=iccid, pageSize=10,
                                  sort="-created")
    items = positions.get("coordinates", []) if isinstance(positions, dict) else []
    sim = await _sim_panel(request, iccid)
    last = _last_uplink(request, iccid)
    return render(request, "device.html", page="devices", device=device, sim=sim, history=history,
                  next_token=next_token,
                  first_page=token is None,
                  events=events,
                  plot=position_plot(items), positions_note=positions_note,
                  registration=registration, registration_note=registration_note,
                  requests=(requests or {}).get("items", []), actions=ACTIONS,
                  recent_seconds=_gateway(request).config.controller.recent_uplink_seconds,
                  last_port=last[1] if last else None,
                  last_port_note=f"from {last[0]}:{last[1]} over {last[2]}" if last else "")


def _gateway(request: web.Request) -> Any:
    return console_of(request).gateway


def _last_uplink(request: web.Request, iccid: str) -> tuple[str, int, str] | None:
    """(ip, port, transport) of the device's last uplink since the gateway started: the port a
    device that listens where it sends from is reached at (the form's default). Not in the API."""
    return _gateway(request).controller.last_uplink(iccid)


async def _events(request: web.Request, iccid: str) -> list[dict[str, Any]]:
    """The device's latest 20 events other than telemetry, ready for display."""
    events, _ = await _optional(request, f"/v1/inspect/devices/{iccid}/events", pageSize=20)
    return [{**e, "time": short(e["time"]), "text": json.dumps(e["event"].get(e["type"].lower(), {}),
                                                              ensure_ascii=False)}
            for e in (events or {}).get("items", [])]


async def events_fragment(request: web.Request) -> web.Response:
    """The events list, fetched every few seconds by console.js (new events appear live)."""
    iccid = request.match_info["iccid"]
    html = render_fragment("_events.html", iccid=iccid, events=await _events(request, iccid))
    return web.Response(text=html, content_type="text/html")


async def history_fragment(request: web.Request) -> web.Response:
    """The first history page's rows, fetched every few seconds by console.js (live updates)."""
    iccid = request.match_info["iccid"]
    history, _ = await _history(request, iccid, None)
    return web.Response(text=render_fragment("_history_rows.html", history=history), content_type="text/html")


async def action(request: web.Request) -> web.StreamResponse:
    iccid = request.match_info["iccid"]
    form = await request.post()
    body: dict[str, Any] = {"action": str(form.get("action", "")), "resourceAddress": str(form.get("path", "")),
                            "requestMode": "SEND_NOW"}
    data = form.get("data")
    if isinstance(data, str) and data != "" and body["action"] == "write":
        body["data"] = data
    answer = await call(request, "POST", f"/v1/integrate/devices/{iccid}/actions/LWM2M", body=body)
    session = session_of(request)
    if answer.ok:
        session.say("ok", answer.body.get("message", "action scheduled"))
    else:
        session.say("error", f"{body['action']} {body['resourceAddress']}: {answer.message}")
    raise back(request, f"{PREFIX}/devices/{iccid}")


async def controller(request: web.Request) -> web.StreamResponse:
    """The Device Controller form: a UDP datagram or a CoAP request through the API."""
    iccid = request.match_info["iccid"]
    form = await request.post()
    protocol = "COAP" if form.get("protocol") == "COAP" else "UDP"
    port = str(form.get("port", ""))
    body: dict[str, Any] = {"port": int(port) if port.isdigit() else port,
                            "requestMode": "SEND_WHEN_ACTIVE" if form.get("whenActive") else "SEND_NOW"}
    payload = str(form.get("payload", ""))
    if payload or protocol == "UDP":
        body.update(payload=payload, payloadType=str(form.get("payloadType", "STRING")))
    if protocol == "COAP":
        body.update(requestType=str(form.get("requestType", "GET")), path=str(form.get("path", "")))
    answer = await call(request, "POST", f"/v1/integrate/devices/{iccid}/actions/{protocol}", body=body)
    session = session_of(request)
    if answer.ok:
        session.say("ok", answer.body.get("message", "request scheduled"))
    else:
        session.say("error", f"{protocol}: {answer.message}")
    raise back(request, f"{PREFIX}/devices/{iccid}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/devices", list_devices)
    router.add_get("/devices/{iccid}", device_page)
    router.add_get("/devices/{iccid}/fragments/history", history_fragment)
    router.add_get("/devices/{iccid}/fragments/events", events_fragment)
    router.add_post("/devices/{iccid}/actions", action)
    router.add_post("/devices/{iccid}/controller", controller)
