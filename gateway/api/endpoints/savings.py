"""Energy Saver savings (1nce-os.json, ``GET /v1/optimize/savings``).

From what the gateway measured (:mod:`inspector.savings`): every UDP/CoAP message an Energy
Saver template translated counts its received bytes and the bytes of the JSON it became. For
``range`` days up to today (UTC): ``messagesTranslated``, ``bytesSaved`` (JSON bytes minus
received bytes, never below 0) and ``averageBytesReducedPerMessage``; ``delta`` is the change
against the ``range`` days before.
"""

from __future__ import annotations

import time

from aiohttp import web

from inspector import savings as savings_sql

from ..routes import READ, ApiRoute, gateway_of, json_response, params_of

DAY = 86400


def _day(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def figures(messages: int, bytes_in: int, bytes_out: int) -> tuple[int, int, float]:
    """(messages, bytes saved, average bytes saved per message)."""
    saved = max(0, bytes_out - bytes_in)
    return messages, saved, round(saved / messages, 1) if messages else 0.0


async def get_savings(request: web.Request) -> web.Response:
    params = params_of(request)
    gateway = gateway_of(request)
    days = int(params.get("range") or "1")
    now = time.time()
    filters = (params.get("protocol"), params.get("iccid"))
    current = await gateway.read(savings_sql.savings, gateway.store, _day(now - (days - 1) * DAY), _day(now),
                                 *filters)
    before = await gateway.read(savings_sql.savings, gateway.store, _day(now - (2 * days - 1) * DAY),
                                _day(now - days * DAY), *filters)
    (m, saved, avg), (m0, saved0, avg0) = figures(*current), figures(*before)
    return json_response({"messagesTranslated": {"value": m, "delta": m - m0},
                          "bytesSaved": {"value": saved, "delta": saved - saved0},
                          "averageBytesReducedPerMessage": {"value": avg, "delta": round(avg - avg0, 1)}})


def _patch(operation: dict) -> None:
    operation["description"] += (" nce-gateway: measured by the gateway for each UDP/CoAP message an Energy Saver "
                                 "template translated: bytes saved = bytes of the JSON it became minus the bytes "
                                 "received, over `range` days up to today (UTC days); `delta` is the change "
                                 "against the `range` days before. An unknown `iccid` counts nothing.")


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/v1/optimize/savings", get_savings, READ, spec="1nce-os", patch=_patch)]
