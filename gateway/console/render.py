"""Rendering console pages: Jinja2 with autoescaping, the signed-in user's context, permissions.

What a role may do is read from the management API's own OpenAPI document (``x-nce-roles`` of
each operation), so the console offers a button exactly when the API would accept its call.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from .sessions import Session

CONSOLE_KEY: web.AppKey[Any] = web.AppKey("nce.console")
SESSION = web.RequestKey("nce.console.session", Session)
#: where a form goes after it was handled (its ``next`` field, a console path)
FORM_NEXT = web.RequestKey("nce.console.next", str)

_env = jinja2.Environment(loader=jinja2.PackageLoader("gateway.console", "templates"),
                          autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

_STATIC = Path(__file__).parent / "static"


@functools.cache
def static(name: str) -> str:
    """The URL of a bundled asset, versioned by its content (cached forever by the browser)."""
    digest = hashlib.sha256((_STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/console/static/{name}?v={digest}"


_env.globals["static"] = static

NAV = [("dashboard", "Dashboard", "/console/"), ("sims", "SIMs", "/console/sims"),
       ("devices", "Devices", "/console/devices"), ("locator", "Locator", "/console/locator"),
       ("templates", "Energy Saver", "/console/templates"),
       ("integrations", "Integrations", "/console/integrations"), ("endpoints", "Endpoints", "/console/endpoints"),
       ("users", "Users", "/console/users")]


class Permissions:
    """``may(method, path)``: whether the signed-in role may call that API operation."""

    def __init__(self, document: dict[str, Any], role: str) -> None:
        self._paths = document.get("paths", {})
        self.role = role

    def may(self, method: str, path: str) -> bool:
        operation = self._paths.get(path, {}).get(method.lower())
        if not isinstance(operation, dict):
            return False
        roles = operation.get("x-nce-roles")
        return roles is None or self.role in roles


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def console_of(request: web.Request) -> Any:
    return request.config_dict[CONSOLE_KEY]


def render(request: web.Request, page_template: str, *, status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION)
    console = console_of(request)
    base: dict[str, Any] = {"nav": NAV, "session": session, "page": context.pop("page", ""),
                            "flash": session.take_flash() if session is not None else [],
                            "csrf": session.csrf if session is not None else context.pop("csrf", ""),
                            "perm": Permissions(console.document, session.role) if session is not None else None}
    html = _env.get_template(page_template).render(**base, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def render_fragment(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)
