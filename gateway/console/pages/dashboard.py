"""The dashboard: traffic of the last hour, SIMs by state, integrations, the busiest devices."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from ..calls import call_ok
from ..render import render, render_fragment
from ._time import iso

SIM_STATES = ("online", "offline", "blocked", "disabled")
CHART_WIDTH, CHART_HEIGHT = 600, 160


def minute_series(items: list[dict[str, Any]], end: datetime, minutes: int = 60) -> list[tuple[str, int]]:
    """Messages per minute (all protocols) for the ``minutes`` minutes before ``end``, oldest first."""
    start = end.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    counts: Counter[str] = Counter()
    for item in items:
        moment = datetime.fromisoformat(item["time"].replace("Z", "+00:00")).astimezone(timezone.utc)
        counts[moment.strftime("%H:%M")] += int(item["amount"])
    labels = [(start + timedelta(minutes=i)).strftime("%H:%M") for i in range(minutes)]
    return [(label, counts.get(label, 0)) for label in labels]


def chart_bars(series: list[tuple[str, int]]) -> dict[str, Any]:
    """Bar geometry for the SVG chart (drawn by the template, no script needed)."""
    peak = max((n for _, n in series), default=0)
    width = CHART_WIDTH / max(1, len(series))
    bars = []
    for i, (label, n) in enumerate(series):
        height = 0 if peak == 0 else round(n / peak * (CHART_HEIGHT - 20), 1)
        bars.append({"x": round(i * width, 1), "y": round(CHART_HEIGHT - height, 1), "w": round(width * 0.8, 1),
                     "h": height, "label": label, "n": n})
    return {"bars": bars, "peak": peak, "total": sum(n for _, n in series), "width": CHART_WIDTH,
            "height": CHART_HEIGHT, "first": series[0][0] if series else "", "last": series[-1][0] if series else ""}


async def _traffic(request: web.Request) -> dict[str, Any]:
    end = datetime.now(timezone.utc)
    start = end.replace(second=0, microsecond=0) - timedelta(minutes=59)
    answer = await call_ok(request, "GET", "/v1/inspect/devices/history/insights",
                           params={"startDateTime": iso(start), "interval": "1m"})
    return chart_bars(minute_series(answer.body["items"], end))


async def _sim_states(request: web.Request) -> list[tuple[str, int, str]]:
    """(label, count, link) per state: online, offline, blocked, disabled."""
    counts = (await call_ok(request, "GET", "/v1/sims/states")).body
    links = {"disabled": "/console/sims?status=Disabled"}
    return [(state.capitalize(), counts[state], links.get(state, "/console/sims?status=Enabled"))
            for state in SIM_STATES]


async def _busiest(request: web.Request) -> list[tuple[str, int]]:
    answer = await call_ok(request, "GET", "/v1/inspect/devices/history",
                           params={"startDateTime": iso(datetime.now(timezone.utc) - timedelta(hours=1)),
                                   "pageSize": 1000})
    counts = Counter(item["iccid"] for item in answer.body["items"])
    return counts.most_common(5)


async def dashboard(request: web.Request) -> web.Response:
    integrations = await call_ok(request, "GET", "/v1/integrate/clouds")
    return render(request, "dashboard.html", page="dashboard", chart=await _traffic(request),
                  states=await _sim_states(request), integrations=integrations.body["items"],
                  busiest=await _busiest(request))


async def traffic_fragment(request: web.Request) -> web.Response:
    """The chart alone, fetched every few seconds by console.js so the page stays live."""
    html = render_fragment("_chart.html", chart=await _traffic(request))
    return web.Response(text=html, content_type="text/html")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", dashboard)
    router.add_get("/fragments/traffic", traffic_fragment)
