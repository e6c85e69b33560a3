"""How a page talks to the management API as the signed-in user, and where a form goes next."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from .api_client import ApiAnswer, ApiCallFailed
from .render import FORM_NEXT, console_of, session_of

PREFIX = "/console"


async def call(request: web.Request, method: str, path: str, *, params: dict[str, Any] | None = None,
               body: Any = None, raw: bool = False) -> ApiAnswer:
    """One management API call as the signed-in user; a 401 (token expired or revoked) ends the
    session and sends the browser to the sign-in page."""
    session = session_of(request)
    console = console_of(request)
    answer = await console.api.call(session.token, method, path, params=params, body=body, raw=raw)
    if answer.status == 401:
        console.sessions.drop(session.id)
        raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path_qs)}")
    return answer


async def call_ok(request: web.Request, method: str, path: str, **kwargs: Any) -> ApiAnswer:
    """:func:`call` that raises :class:`ApiCallFailed` unless the answer is 2xx."""
    answer = await call(request, method, path, **kwargs)
    if not answer.ok:
        raise ApiCallFailed(answer)
    return answer


def back(request: web.Request, fallback: str) -> web.HTTPSeeOther:
    """A redirect to the form's ``next`` (a console path only), else ``fallback``."""
    target = request.get(FORM_NEXT) or fallback
    if not target.startswith(PREFIX + "/") and target != PREFIX:
        target = fallback
    return web.HTTPSeeOther(target)


