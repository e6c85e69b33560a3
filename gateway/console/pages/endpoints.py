"""Device endpoints: where devices send to, an on/off switch per protocol (Owner and Admin),
and a card with the bytes Energy Saver saved in the last 7 days (GET /v1/optimize/savings)."""

from __future__ import annotations

from aiohttp import web

from ..calls import PREFIX, back, call, call_ok
from ..render import render, session_of


async def list_endpoints(request: web.Request) -> web.Response:
    endpoints = await call_ok(request, "GET", "/v1/integrate/devices/endpoints")
    savings = await call_ok(request, "GET", "/v1/optimize/savings", params={"range": "7"})
    return render(request, "endpoints.html", page="endpoints", endpoints=endpoints.body["items"],
                  savings=savings.body)


async def switch(request: web.Request) -> web.StreamResponse:
    protocol = request.match_info["protocol"]
    form = await request.post()
    active = form.get("active") == "on"
    answer = await call(request, "PATCH", f"/v1/integrate/devices/endpoints/{protocol}", body={"active": active})
    if answer.ok:
        session_of(request).say("ok", f"the {protocol} endpoint is {'on' if active else 'off'}")
    else:
        session_of(request).say("error", answer.message)
    raise back(request, f"{PREFIX}/endpoints")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/endpoints", list_endpoints)
    router.add_post("/endpoints/{protocol}", switch)
