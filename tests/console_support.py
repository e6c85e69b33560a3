"""Test support for the web console: a signed-in browser-like HTTP client (cookies, CSRF)."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import aiohttp

from api_support import EMAILS, PASSWORD
from inspector import history

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


def send_udp(api: Any, n: int, payload: bytes) -> None:
    """One UDP datagram from test SIM n's address (127.0.0.n)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((f"127.0.0.{n}", 0))
        s.sendto(payload, ("127.0.0.1", api.gateway.udp_port))


async def wait_stored(api: Any, count: int, timeout: float = 10.0) -> None:
    """Until ``count`` messages are committed (the history shows what is committed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await api.gateway.read(history.high_water_mark, api.gateway.store) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{count} messages not stored in time"
        await asyncio.sleep(0.05)
