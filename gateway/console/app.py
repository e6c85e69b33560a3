"""The console application under ``/console`` on the API port: sessions, CSRF, headers, routes.

- **Sign-in**: a form posts user name and password; the console asks ``/oauth/token`` for the
  user's API token (the API's login throttling applies, per browser address) and keeps it in a
  server-side session named by an HttpOnly, SameSite=Strict cookie (Secure over TLS or with
  ``console.secure_cookie``).
- **CSRF**: every form carries the session's token in ``_csrf`` and every POST is refused (403)
  without it; the sign-in form uses a double-submit cookie. SameSite=Strict is a second fence.
- **Headers**: a Content-Security-Policy allowing only the console's own scripts and styles (no
  inline script, no CDN), no framing, no caching of pages.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from .api_client import ApiCallFailed, ApiClient
from .calls import PREFIX
from .pages import dashboard, devices, endpoints, integrations, locator, sims, templates, users
from .render import CONSOLE_KEY, FORM_NEXT, SESSION, console_of, render, session_of
from .sessions import COOKIE, LOGIN_CSRF_COOKIE, SessionStore

log = logging.getLogger("nce.console")
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


class Console:
    """What the console's handlers share: sessions, the API client, the API's document."""

    def __init__(self, gateway: Any, document: dict[str, Any]) -> None:
        self.gateway = gateway
        self.document = document
        self.config = gateway.config.console
        self.sessions = SessionStore(self.config.session_idle_minutes * 60)
        self.forward_key = secrets.token_urlsafe(32)
        self.api = ApiClient(self._base_url, self.forward_key)

    def _base_url(self) -> str:
        bind = self.gateway.config.api.bind
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.gateway.api_port}/management-api"


def _secure(request: web.Request) -> bool:
    return request.secure or console_of(request).config.secure_cookie


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(name, value, path=PREFIX, httponly=True, samesite="Strict", secure=_secure(request),
                        max_age=max_age)


# middlewares --------------------------------------------------------------------------------

_OPEN = {f"{PREFIX}/login"}


@web.middleware
async def headers_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith(f"{PREFIX}/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def session_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path in _OPEN or request.path.startswith(f"{PREFIX}/static/"):
        return await handler(request)
    console = console_of(request)
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "GET" and request.headers.get("X-Requested-With") != "fetch":
            raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path_qs)}")
        raise web.HTTPUnauthorized(text="sign in first", content_type="text/plain")
    request[SESSION] = session
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        given = form.get("_csrf") or request.headers.get("X-CSRF-Token")
        if not session.check_csrf(given if isinstance(given, str) else None):
            raise web.HTTPForbidden(text="the form is stale or forged (CSRF check failed); reload the page",
                                    content_type="text/plain")
        nxt = form.get("next")
        if isinstance(nxt, str):
            request[FORM_NEXT] = nxt
    try:
        return await handler(request)
    except ApiCallFailed as failed:
        if request.method == "GET":
            return render(request, "error.html", status=failed.answer.status, message=failed.answer.message)
        session.say("error", failed.answer.message)
        referer = urlsplit(request.headers.get("Referer", ""))
        target = referer.path + (f"?{referer.query}" if referer.query else "")
        if not target.startswith(PREFIX):
            target = f"{PREFIX}/"
        raise web.HTTPSeeOther(request.get(FORM_NEXT) or target) from None
    except web.HTTPException:
        raise
    except Exception:  # a page's own bug: logged with its traceback, a plain page for the user
        log.exception("console page failed", extra={"event": "console_error", "path": request.path,
                                                    "user": session.username})
        return render(request, "error.html", status=500,
                      message="The page failed; the gateway log has the details (event console_error).")


# sign-in and sign-out -----------------------------------------------------------------------

async def login_page(request: web.Request) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", csrf=token, next=request.query.get("next", ""), error=None)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    form = await request.post()
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get("_csrf")
    nxt = str(form.get("next") or "")
    if not cookie or not isinstance(given, str) or not secrets.compare_digest(cookie, given):
        return _login_failed(request, "The sign-in form expired; try again.", nxt, 403)
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    if not username or not password:
        return _login_failed(request, "Enter your user name and password.", nxt, 400)
    answer = await console.api.call(None, "POST", "/oauth/token", body={"grant_type": "client_credentials"},
                                     basic=(username, password), client_ip=request.remote or "unknown")
    if not answer.ok:
        return _login_failed(request, answer.message, nxt, answer.status)
    token = answer.body["access_token"]
    me = await console.api.call(token, "GET", "/v1/users/me")
    role = me.body.get("role", "User") if me.ok and isinstance(me.body, dict) else "User"
    session = console.sessions.create(token, answer.body.get("userId", username), role,
                                      float(answer.body.get("expires_in", 3600)))
    target = nxt if nxt.startswith(PREFIX + "/") else f"{PREFIX}/"
    response = web.HTTPSeeOther(target)
    _set_cookie(request, response, COOKIE, session.id)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    raise response


def _login_failed(request: web.Request, message: str, nxt: str, status: int) -> web.Response:
    token = secrets.token_urlsafe(24)
    status = status if status in (400, 401, 403, 429) else 400
    response = render(request, "login.html", status=status, csrf=token, next=nxt, error=message)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    session = session_of(request)
    console.sessions.drop(session.id)
    await console.api.call(session.token, "POST", "/oauth/revoke")
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


async def root_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


def build_console(gateway: Any, document: dict[str, Any]) -> web.Application:
    console = Console(gateway, document)
    app = web.Application(middlewares=[headers_middleware, session_middleware], client_max_size=1024 * 1024)
    app[CONSOLE_KEY] = console
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_static("/static/", STATIC)
    for module in (dashboard, sims, devices, locator, templates, integrations, users, endpoints):
        module.add_routes(app.router)

    async def start(_: web.Application) -> None:
        await console.api.start()

    async def stop(_: web.Application) -> None:
        await console.api.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
