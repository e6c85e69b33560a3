"""Test support for the web console: a signed-in browser-like HTTP client (cookies, CSRF)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from api_support import EMAILS, PASSWORD

_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class ConsoleClient:
    """Cookies kept like a browser; ``post_form`` takes the CSRF token from the page it came from."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=kwargs.pop("allow_redirects", True),
                                 **kwargs) as response:
            text = await response.text()
            if response.status == 200 and 'name="_csrf"' in text:
                self.csrf = csrf_of(text)
            return response.status, text, response

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True,
                   allow_redirects: bool = True) -> tuple[int, str, aiohttp.ClientResponse]:
        form = dict(data)
        if csrf:
            form.setdefault("_csrf", self.csrf)
        async with self.http.post(self.base + path, data=form, allow_redirects=allow_redirects) as response:
            text = await response.text()
            if response.status == 200 and 'name="_csrf"' in text:
                self.csrf = csrf_of(text)
            return response.status, text, response

    async def login(self, role: str = "Owner", password: str = PASSWORD) -> tuple[int, str, aiohttp.ClientResponse]:
        await self.get("/console/login")
        return await self.post("/console/login", {"username": EMAILS[role], "password": password})
