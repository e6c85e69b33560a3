"""``GET /v1/devices/stats`` (1nce-os.json): how many devices (SIMs) the gateway knows and how
many are activated (status Enabled)."""

from __future__ import annotations

from aiohttp import web

from ..routes import READ, ApiRoute, gateway_of, json_response


def _counts(conn) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    total, enabled = conn.execute(
        "SELECT COUNT(*), SUM(CASE WHEN status = 'Enabled' THEN 1 ELSE 0 END) FROM sims").fetchone()
    return total, enabled or 0


async def stats(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    total, enabled = await gateway.read(gateway.store.read_with, _counts)
    return json_response({"totalDevices": total, "activatedDevices": enabled})


def _patch(operation: dict) -> None:
    operation["description"] = operation.get("description", "") + (
        " nce-gateway: totalDevices counts the SIMs in the registry, activatedDevices those with status Enabled.")
    operation["responses"].pop("500", None)


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/v1/devices/stats", stats, READ, spec="1nce-os", patch=_patch)]
