"""The aiohttp application on the API port.

``/health`` and ``/metrics`` are operational endpoints for load balancers and Prometheus and
carry no device data; the management API under ``/management-api`` requires a bearer token.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

GATEWAY = web.AppKey("gateway", object)


async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.json_response({
        "status": "ok",
        "uptimeSeconds": round(time.time() - gateway.started_at, 3),
        "sims": len(gateway.registry.by_iccid),
        "pendingCommits": gateway.committer.pending_count,
        "integrations": {w.handle.name: w.handle.state for w in gateway.integrations.workers.values()},
    })


async def metrics(request: web.Request) -> web.Response:
    body = request.app[GATEWAY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_api(gateway: Any) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[GATEWAY] = gateway
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app
