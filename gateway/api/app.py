"""The aiohttp application on the API port.

``/health`` and ``/metrics`` are operational endpoints for load balancers and Prometheus and
carry no device data. The management API is a sub-application under ``/management-api``:
every route of the route table (``gateway.api.routes``) behind the token check, 501 for the
1NCE routes nobody implemented, JSON errors in the 1NCE OS format for everything else.
"""

from __future__ import annotations

import time
from importlib import metadata
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from inspector.accounts import accounts_version

from . import routes as route_table
from ..console.app import build_console, root_redirect as console_redirect
from ..console.calls import PREFIX as CONSOLE_PREFIX
from ..console.render import CONSOLE_KEY
from ..template_worker import TemplateTester
from ..worker_metrics import combined
from .auth import CONSOLE_FORWARD_KEY, Authenticator, LoginLimiter
from .endpoints.templates import TESTER_KEY
from .errors import error_middleware
from .openapi import PREFIX
from .routes import AUTH_KEY, DOCUMENT_KEY, GATEWAY_KEY

GATEWAY = GATEWAY_KEY
MAX_BODY = 1024 * 1024  # the largest request body of the API (413 beyond)


async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.json_response({
        "status": "ok",
        "uptimeSeconds": round(time.time() - gateway.started_at, 3),
        "sims": len(gateway.registry),
        "pendingCommits": gateway.committer.pending_count,
        "integrations": {w.handle.name: w.handle.state for w in gateway.integrations.workers.values()},
        **({"sms": gateway.sms.status()} if getattr(gateway, "sms", None) is not None else {}),
    })


async def metrics(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = gateway.metrics.render()
    if gateway.slot.several:  # every worker's series, not only this one's (gateway/worker_metrics.py)
        body = await combined(body, gateway.slot, gateway.config.store.identity())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _version() -> str:
    try:
        return metadata.version("nce-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0"


def build_table(modules: list[Any] | None = None) -> route_table.RouteTable:
    """The route table from every endpoint module (or the given ones)."""
    mods = route_table.endpoint_modules() if modules is None else modules
    return route_table.build_table(route_table.collect_routes(mods), _version())


def build_management_api(gateway: Any, table: route_table.RouteTable | None = None) -> web.Application:
    cfg = gateway.config.api
    api = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    table = table or build_table()
    auth = Authenticator(gateway, ttl_seconds=cfg.token_ttl_seconds,
                         limiter=LoginLimiter(cfg.login_max_failures_per_user, cfg.login_max_failures_per_ip,
                                              cfg.login_window_seconds),
                         max_pending_checks=cfg.login_max_pending_checks)
    api[AUTH_KEY] = auth
    tester = api[TESTER_KEY] = TemplateTester()
    api[DOCUMENT_KEY] = table.document
    route_table.install(api, table, auth.authenticate)

    async def start(_: web.Application) -> None:
        await auth.start()
        gateway.follower.follow("API accounts", lambda: _accounts_version(gateway), auth.current_version,
                                auth.reload)

    async def stop(_: web.Application) -> None:
        await auth.stop()
        tester.close()

    api.on_startup.append(start)
    api.on_cleanup.append(stop)
    return api


def _accounts_version(gateway: Any) -> int:
    return accounts_version(gateway.store)


def build_api(gateway: Any) -> web.Application:
    # aiohttp applies the root application's limit to requests of sub-applications too
    app = web.Application(client_max_size=MAX_BODY)
    app[GATEWAY] = gateway
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    management = build_management_api(gateway)
    if gateway.config.console.enabled:
        console = build_console(gateway, management[DOCUMENT_KEY])
        management[CONSOLE_FORWARD_KEY] = console[CONSOLE_KEY].forward_key
        app.add_subapp(CONSOLE_PREFIX, console)
        app.router.add_get("/", console_redirect)
    app.add_subapp(PREFIX, management)
    gateway.api_auth = management[AUTH_KEY]
    gateway.template_tester = management[TESTER_KEY]
    return app
