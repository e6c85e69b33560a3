"""Device Locator: each device's latest position, and the geofences (a circle can be added and a
geofence deleted here; polygons through the API). Every value comes from the management API."""

from __future__ import annotations

from aiohttp import web

from ..calls import PREFIX, call, call_ok
from ..render import render, session_of


async def locator_page(request: web.Request) -> web.Response:
    latest = await call_ok(request, "GET", "/v1/locate/positions/latest", params={"pageSize": 100})
    fences = await call_ok(request, "GET", "/v1/locate/geofences", params={"pageSize": 100})
    details = []
    for fence in fences.body.get("items", []):
        one = await call(request, "GET", f"/v1/locate/geofences/{fence['id']}")
        details.append(one.body if one.ok else fence)
    return render(request, "locator.html", page="locator", positions=latest.body.get("coordinates", []),
                  geofences=details)


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # the API names the field


async def add_circle(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = {"name": str(form.get("name", "")), "type": "circle", "radius": _number(str(form.get("radius", ""))),
            "center": [_number(str(form.get("lon", ""))), _number(str(form.get("lat", "")))]}
    if form.get("deviceId"):
        body["deviceId"] = str(form["deviceId"])
    answer = await call(request, "POST", "/v1/locate/geofences", body=body)
    session_of(request).say("ok" if answer.ok else "error",
                            f"geofence {body['name']} added" if answer.ok else answer.message)
    raise web.HTTPSeeOther(f"{PREFIX}/locator")


async def delete_geofence(request: web.Request) -> web.StreamResponse:
    answer = await call(request, "DELETE", f"/v1/locate/geofences/{request.match_info['id']}")
    session_of(request).say("ok" if answer.ok else "error", "geofence deleted" if answer.ok else answer.message)
    raise web.HTTPSeeOther(f"{PREFIX}/locator")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/locator", locator_page)
    router.add_post("/locator/geofences", add_circle)
    router.add_post("/locator/geofences/{id}/delete", delete_geofence)
