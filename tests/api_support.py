"""Test support for the management API: users of each role, and a client that checks every
answer against the gateway's own OpenAPI document (status documented, body valid, content type)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import referencing
import referencing.jsonschema

from gateway import accounts
from gateway.api.app import build_table
from inspector import accounts as store_accounts

PASSWORD = "correct horse battery staple"
ROLES = ("Owner", "Admin", "User", "API")
EMAILS = {role: f"{role.lower()}@example.com" for role in ROLES}

@functools.cache
def password_hash() -> str:
    return accounts.hash_password(PASSWORD)


@functools.cache
def document() -> dict:
    return build_table().document


@functools.cache
def _registry() -> referencing.Registry:
    resource = referencing.Resource.from_contents(document(), default_specification=referencing.jsonschema.DRAFT4)
    return referencing.Registry().with_resource("urn:nce-gateway", resource)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str, str, bool]]:
    """(regex, template, method, implemented) for the document's routes and the 501 ones,
    most specific first (a literal segment beats a parameter, as in the gateway's router)."""
    entries = [(path, method.upper(), True) for path, item in document()["paths"].items() for method in item]
    for item in document().get("x-nce-not-implemented", []):
        method, path = item.split(" ", 1)
        entries.append((path, method, False))
    out = []
    for path, method, implemented in entries:
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"
        out.append((re.compile(regex), path, method, implemented))
    out.sort(key=lambda x: tuple(1 if seg.startswith("{") else 0 for seg in x[1].split("/")))
    return out


def template_of(method: str, path: str) -> str | None:
    """The documented template answering ``method path`` (None: a 501 route or no route)."""
    for regex, template, m, implemented in _templates():
        if m == method.upper() and regex.match(path):
            return template if implemented else None
    return None


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = _registry().resolver().lookup("urn:nce-gateway" + node["$ref"]).contents
    return node


class ContractError(AssertionError):
    pass


def check_response(method: str, path: str, status: int, headers: Any, body: bytes) -> None:
    """Fail unless this answer is what the gateway's document says ``method path`` answers."""
    rel = path.removeprefix("/management-api")
    template = template_of(method, rel)
    if template is None:
        # not implemented (501) or unknown (404): the error format
        expected = {501: "notImplementedResponse", 404: "notFoundResponse", 405: None,
                    401: "unauthorizedRequestResponse", 403: "forbiddenResponse"}
        if status not in expected:
            raise ContractError(f"{method} {path}: undocumented route answered {status}")
        if expected[status] is not None:
            _validate(json.loads(body), f"#/components/schemas/{expected[status]}", f"{method} {path}")
        return
    operation = document()["paths"][template][method.lower()]
    responses = operation["responses"]
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        raise ContractError(f"{method} {template}: status {status} is not documented "
                            f"(documented: {', '.join(responses)}); body {body[:300]!r}")
    response = _resolve(response)
    content = response.get("content") or {}
    ctype = headers.get("Content-Type", "").split(";")[0].strip()
    if not content:
        return
    media = {k.split(";")[0]: k for k in content}
    if ctype not in media:
        raise ContractError(f"{method} {template} {status}: Content-Type {ctype!r}, documented {list(content)}")
    schema = content[media[ctype]].get("schema")
    if schema is None or ctype != "application/json":
        return
    location = "#/" + _pointer("paths", template, method.lower(), "responses", str(status))
    if "$ref" in responses.get(str(status), {}):
        location = responses[str(status)]["$ref"]
    _validate(json.loads(body), location + "/" + _pointer("content", media[ctype], "schema"),
              f"{method} {template} {status}")
    for name in response.get("headers", {}):
        if name.lower() != "retry-after" and name not in headers:
            raise ContractError(f"{method} {template} {status}: documented header {name} missing")


def _validate(value: Any, ref: str, what: str) -> None:
    schema = {"$ref": "urn:nce-gateway" + ref}
    validator = jsonschema.Draft4Validator(schema, registry=_registry(),
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise ContractError(f"{what}: {e.message} at {'/'.join(map(str, e.path))}: {json.dumps(value)[:500]}")


def basic(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(email, password)}


@dataclass
class Answer:
    status: int
    headers: Any
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def text(self) -> str:
        return self.raw.decode()


@dataclass
class ApiClient:
    """Requests to a running gateway's API; every answer is checked against the contract."""

    base: str
    token: str | None = None
    check: bool = True
    session: aiohttp.ClientSession | None = None
    answers: list[tuple[str, str, int]] = field(default_factory=list)

    async def request(self, method: str, path: str, *, token: Any = ..., **kwargs: Any) -> Answer:
        headers = dict(kwargs.pop("headers", {}) or {})
        token = self.token if token is ... else token
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        session = self.session or aiohttp.ClientSession()
        try:
            async with session.request(method, self.base + path, headers=headers, **kwargs) as response:
                raw = await response.read()
                answer = Answer(response.status, response.headers, raw)
        finally:
            if self.session is None:
                await session.close()
        url_path = path.split("?")[0]
        self.answers.append((method, url_path, answer.status))
        if self.check:
            check_response(method, "/management-api" + url_path if not url_path.startswith("/management-api")
                           else url_path, answer.status, answer.headers, raw)
        return answer

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Answer:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Answer:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Answer:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.request("DELETE", path, **kw)

    async def login(self, email: str, password: str = PASSWORD) -> Answer:
        return await self.request("POST", "/oauth/token", token=None, json={"grant_type": "client_credentials"},
                                  headers=basic(email, password))


@dataclass
class Api:
    gateway: Any
    base: str
    users: dict[str, Any]

    def client(self, role: str | None = None, token: str | None = None) -> ApiClient:
        if token is None and role is not None:
            token = self.token(role)
        return ApiClient(self.base, token)

    def token(self, role: str) -> str:
        """A token as /oauth/token issues it, without paying for an argon2 check per test."""
        return self.gateway.api_auth.issue(self.users[role])[0]


async def add_user(gateway: Any, email: str, role: str) -> Any:
    user = await gateway.committer.write(store_accounts.create_account, gateway.store, email, password_hash(), role)
    await gateway.api_auth.reload()
    return user


async def start_api(start_gateway: Callable[..., Any], config: Any, sims: list | None = None,
                    roles: tuple[str, ...] = ROLES) -> Api:
    gateway = await start_gateway(config, sims)
    users = {role: await add_user(gateway, EMAILS[role], role) for role in roles}
    return Api(gateway, f"http://127.0.0.1:{gateway.api_port}/management-api", users)


def write_password_file(directory: Path) -> str:
    path = directory / "password.txt"
    path.write_text(PASSWORD + "\n")
    return str(path)
