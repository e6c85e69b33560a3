"""SIMs: search and filters, status and label changes, CSV export."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..calls import PREFIX, back, call, call_ok
from ..render import render, session_of

FILTER_FIELDS = ("iccid", "ip_address", "imsi", "label", "status")
PAGE_SIZE = 50


def filter_query(values: dict[str, str]) -> str:
    """The API's ``q`` (exact matches, all must hold) from the search form."""
    return ",".join(f"{name}:{values[name].strip()}" for name in FILTER_FIELDS
                    if values.get(name, "").strip() and "," not in values[name])


async def list_sims(request: web.Request) -> web.Response:
    values = {name: request.query.get(name, "") for name in FILTER_FIELDS}
    page_text = request.query.get("page", "1")
    page = int(page_text) if page_text.isdigit() and int(page_text) > 0 else 1
    q = filter_query(values)
    answer = await call_ok(request, "GET", "/v1/sims", params={"q": q, "page": page, "pageSize": PAGE_SIZE,
                                                               "sort": "iccid"})
    total = int(answer.headers.get("X-Total-Count", "0"))
    pages = int(answer.headers.get("X-Total-Pages", "1"))
    query = "&".join(f"{k}={v}" for k, v in values.items() if v)
    limit = asyncio.Semaphore(8)
    details = await asyncio.gather(*(_connectivity(request, sim["iccid"], limit) for sim in answer.body))
    sims = [{**sim, **detail} for sim, detail in zip(answer.body, details)]
    return render(request, "sims.html", page="sims", sims=sims, values=values, total=total, current=page,
                  pages=pages, query=query, export_q=q)


def quota_bar(body: Any) -> dict[str, Any] | None:
    """What is left of a quota (the API's ``volume`` of ``total_volume``) as a bar."""
    if not isinstance(body, dict) or not body.get("total_volume"):
        return None
    left, total = float(body["volume"]), float(body["total_volume"])
    return {"left": left, "total": total, "percent": max(0, min(100, round(100 * left / total)))}


async def _connectivity(request: web.Request, iccid: str, limit: asyncio.Semaphore) -> dict[str, Any]:
    """Connection state and quotas of one SIM (each left out where the gateway has no answer)."""
    async with limit:
        status = await call(request, "GET", f"/v1/sims/{iccid}/status")
        data = await call(request, "GET", f"/v1/sims/{iccid}/quota/data")
        sms = await call(request, "GET", f"/v1/sims/{iccid}/quota/sms")
    return {"connection": status.body.get("status") if status.ok else None,
            "data_quota": quota_bar(data.body) if data.ok else None,
            "sms_quota": quota_bar(sms.body) if sms.ok else None}


async def topup(request: web.Request) -> web.StreamResponse:
    """Top up data and SMS (1NCE's single-SIM top-up); Owner and Admin, as the API says."""
    iccid = request.match_info["iccid"]
    answer = await call(request, "POST", f"/v1/sims/{iccid}/topup")
    session_of(request).say("ok" if answer.ok else "error",
                            f"SIM {iccid}: topped up" if answer.ok else f"SIM {iccid}: {answer.message}")
    raise back(request, f"{PREFIX}/sims")


async def export(request: web.Request) -> web.Response:
    answer = await call_ok(request, "GET", "/v1/sims/export", params={"q": request.query.get("q", "")}, raw=True)
    return web.Response(body=answer.body, content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="sims.csv"'})


async def change(request: web.Request) -> web.StreamResponse:
    """Status or label of one SIM (PUT /v1/sims/{iccid}); the API refuses what the role may not do."""
    iccid = request.match_info["iccid"]
    form = await request.post()
    body: dict[str, Any] = {"iccid": iccid}
    for name in ("status", "label"):
        value = form.get(name)
        if isinstance(value, str) and (value or name == "label"):
            body[name] = value
    if form.get("imei_lock") in ("true", "false"):
        body["imei_lock"] = form["imei_lock"] == "true"  # type: ignore[assignment]
    answer = await call(request, "PUT", f"/v1/sims/{iccid}", body=body)
    session = session_of(request)
    if answer.ok:
        changed = ", ".join(f"{k} {v!r}" for k, v in body.items() if k != "iccid")
        session.say("ok", f"SIM {iccid}: {changed} saved")
    else:
        session.say("error", f"SIM {iccid}: {answer.message}")
    raise back(request, f"{PREFIX}/sims")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/sims", list_sims)
    router.add_get("/sims/export", export)
    router.add_post("/sims/{iccid}/topup", topup)
    router.add_post("/sims/{iccid}", change)
