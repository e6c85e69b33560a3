"""The console's way to the management API: HTTP on the gateway's own API socket.

Every read and write of the console goes through ``/management-api`` with the signed-in user's
bearer token, so roles, validation, throttling and the 1NCE answer shapes are the API's own and
the console cannot drift from them. The call stays on the loopback (or the API's own bind
address), costs about a millisecond, and keeps the console free of store access.

Logins go through ``POST /oauth/token`` too. The API throttles failed logins per client address;
so that the console's logins are counted against the browser's address and not against the
loopback, the console sends the browser's address in ``X-Nce-Console-Client`` together with a
key that only this process knows (:func:`forwarded_client`); the API trusts that header only
with that key.
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import aiohttp

FORWARD_HEADER = "X-Nce-Console-Client"


@dataclass
class ApiAnswer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """The API's own words for a failed call (the 1NCE error format), else the status."""
        body = self.body
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("message"):
                return str(errors[0]["message"])
            if body.get("message"):
                return str(body["message"])
        return f"HTTP {self.status}"

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Every ``(field, message)`` of a failed call; the field is a JSON pointer or a name, or ''."""
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            found = [(str(e.get("field") or ""), str(e.get("message") or "")) for e in body["errors"]
                     if isinstance(e, dict)]
            if found:
                return found
        return [("", self.message)]


class ApiCallFailed(Exception):
    def __init__(self, answer: ApiAnswer) -> None:
        super().__init__(answer.message)
        self.answer = answer


def forwarded_client(header: str | None, key: str) -> str | None:
    """The browser's address from a console request's header, None unless the key matches."""
    if not header or not key:
        return None
    given, _, address = header.partition(" ")
    if not address or not hmac.compare_digest(given.encode(), key.encode()):
        return None
    return address.strip()


class ApiClient:
    def __init__(self, base_url: Callable[[], str], forward_key: str) -> None:
        self.base_url = base_url  # the API's port is known only once its socket is bound
        self.forward_key = forward_key
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def call(self, token: str | None, method: str, path: str, *, params: dict[str, Any] | None = None,
                   body: Any = None, client_ip: str | None = None, basic: tuple[str, str] | None = None,
                   raw: bool = False) -> ApiAnswer:
        """One API call; ``raw`` keeps the body as bytes (CSV export)."""
        assert self._http is not None, "ApiClient.start() first"
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if basic:
            credentials = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {credentials}"
        if client_ip:
            headers[FORWARD_HEADER] = f"{self.forward_key} {client_ip}"
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        query = {k: str(v) for k, v in (params or {}).items() if v is not None and v != ""}
        async with self._http.request(method, self.base_url() + path, params=query, data=data,
                                      headers=headers) as response:
            content = await response.read()
            answer_headers = {k: v for k, v in response.headers.items()}
            if raw:
                return ApiAnswer(response.status, content, answer_headers)
            try:
                parsed = json.loads(content) if content else None
            except ValueError:
                parsed = content.decode("utf-8", "replace")
            return ApiAnswer(response.status, parsed, answer_headers)
