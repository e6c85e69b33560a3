"""The route table of the management API, and how a feature adds its routes to it.

Every route under ``/management-api`` is an :class:`ApiRoute`: method, path (relative to
``/management-api``, as in the 1NCE OpenAPI files), handler, and an *access class* that says
which roles may call it. The table is assembled at start-up from every module of the package
``gateway.api.endpoints`` that defines ``routes()``; a feature adds its routes by dropping a
module there::

    # gateway/api/endpoints/templates.py
    from gateway.api.routes import ApiRoute, MANAGE, READ, body_of, gateway_of, json_response, params_of

    async def list_templates(request):
        gateway = gateway_of(request)
        ...
        return json_response([...])

    def routes():
        return [
            ApiRoute("GET", "/v1/optimize/templates", list_templates, READ, spec="1nce-os"),
            ApiRoute("POST", "/v1/optimize/templates", create_template, MANAGE, spec="1nce-os"),
        ]

The route then replaces the 501 stub of that 1NCE operation, sits behind the same token check
and role check as every other route, gets its query/path parameters and JSON body validated
against the 1NCE operation (``params_of``/``body_of``), and appears in ``/management-api/openapi.json``.
A route that 1NCE does not document passes ``spec=None`` and its own ``operation`` (and the
``schemas`` it references). Two modules claiming the same method and path stop the start-up.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inspector.accounts import ROLES

from .. import audit
from . import openapi
from .auth import client_address
from .errors import ApiError, bad_request, error_body
from .validation import OperationValidator, parse_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OWNER, ADMIN, USER, API = ROLES

# access classes -> roles allowed (PUBLIC: no token at all)
PUBLIC = "public"
ANY = "any"            # any valid token: who am I, revoke my token, the OpenAPI document
READ = "read"          # read SIMs, devices, history, integrations
MANAGE = "manage"      # change SIMs, templates, PSKs; device actions; test and restart integrations
INTEGRATE = "integrate"  # create, change, delete integrations: they choose where device data goes
PURCHASE = "purchase"  # top-ups, automatic top-up, extensions, setting limits (Owner and Admin)
USERS = "users"        # user administration (finer rules per target role: gateway.accounts)
OPERATE = "operate"    # replay stored events into an integration (Owner and Admin)
ACCESS_ROLES: dict[str, frozenset[str]] = {
    ANY: frozenset(ROLES),
    READ: frozenset(ROLES),
    MANAGE: frozenset(ROLES),
    INTEGRATE: frozenset({OWNER, ADMIN}),
    PURCHASE: frozenset({OWNER, ADMIN}),
    USERS: frozenset({OWNER, ADMIN}),
    OPERATE: frozenset({OWNER, ADMIN}),
}

GATEWAY_KEY: web.AppKey[Any] = web.AppKey("nce.gateway")
AUTH_KEY: web.AppKey[Any] = web.AppKey("nce.auth")
DOCUMENT_KEY: web.AppKey[dict] = web.AppKey("nce.openapi")
PRINCIPAL = web.RequestKey("nce.principal", object)
PARAMS = web.RequestKey("nce.params", dict)
BODY = web.RequestKey("nce.body", object)


@dataclass(frozen=True)
class ApiRoute:
    """One route of the management API.

    ``spec``: which 1NCE file documents the route (``"1nce-os"``, ``"sim-management"``,
    ``"authorization"``) or None for a route of the gateway's own, which then needs
    ``operation`` (an OpenAPI operation object) and the ``schemas`` it references. ``patch``
    adjusts a copy of the 1NCE operation where the gateway documents a difference (a lifted
    limit, an added error answer); every patch is listed in docs/api.md. ``validate=False``
    leaves parameters and body to the handler.
    """

    method: str
    path: str
    handler: Handler
    access: str
    spec: str | None = None
    operation: Mapping[str, Any] | None = None
    schemas: Mapping[str, Any] = field(default_factory=dict)
    patch: Callable[[dict], None] | None = None
    validate: bool = True

    def __post_init__(self) -> None:
        if self.access != PUBLIC and self.access not in ACCESS_ROLES:
            raise ValueError(f"{self.method} {self.path}: unknown access class {self.access!r}")
        if self.spec is None and self.operation is None:
            raise ValueError(f"{self.method} {self.path}: a route of the gateway's own needs an operation")
        if self.spec is not None and self.spec not in openapi.SPECS:
            raise ValueError(f"{self.method} {self.path}: unknown spec {self.spec!r}")
        object.__setattr__(self, "method", self.method.upper())

    def base_operation(self) -> dict:
        if self.spec is not None:
            return openapi.patched(self.spec, self.method, self.path, self.patch)
        return copy.deepcopy(dict(self.operation or {}))

    @property
    def roles(self) -> tuple[str, ...]:
        allowed = ACCESS_ROLES.get(self.access, frozenset())
        return tuple(r for r in ROLES if r in allowed)


# what a handler reads ---------------------------------------------------------------------

def gateway_of(request: web.Request) -> Any:
    """The running :class:`gateway.app.Gateway`."""
    return request.config_dict[GATEWAY_KEY]


def principal_of(request: web.Request) -> Any:
    """The authenticated caller (:class:`gateway.api.auth.Principal`)."""
    return request[PRINCIPAL]


def params_of(request: web.Request) -> dict[str, Any]:
    """Query and path parameters converted and checked against the operation (defaults applied)."""
    return request[PARAMS]


def body_of(request: web.Request) -> Any:
    """The JSON body, checked against the operation's request schema."""
    return request.get(BODY)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False, separators=(",", ":")), status=status,
                        content_type="application/json", headers=headers)


async def read_json(request: web.Request, required: bool = True) -> Any:
    if not request.body_exists:
        if required:
            raise bad_request("body: a JSON body is required", "body")
        return None
    if request.content_type not in ("application/json", "") and not request.content_type.endswith("+json"):
        raise bad_request(f"body: Content-Type must be application/json, not {request.content_type}", "body")
    try:
        return parse_json(await request.text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"body: not valid JSON: {exc}", "body") from None


# assembling the table ---------------------------------------------------------------------

def endpoint_modules(package: str = "gateway.api.endpoints") -> list[Any]:
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{package}.{name}") for name in names]


def collect_routes(modules: Iterable[Any]) -> list[ApiRoute]:
    """Every module's ``routes()``; the same method and path twice is an error naming both."""
    owner: dict[tuple[str, str], str] = {}
    table: list[ApiRoute] = []
    for module in modules:
        make = getattr(module, "routes", None)
        if make is None:
            continue
        for route in make():
            key = (route.method, route.path)
            if key in owner:
                raise ValueError(f"{route.method} {route.path} is registered by both {owner[key]} and "
                                 f"{module.__name__}")
            owner[key] = module.__name__
            table.append(route)
    return table


_PURCHASE_PATHS = ("/topup", "/autoTopup", "/extension", "/limits", "/simTransfer")


def stub_access(method: str, path: str) -> str:
    """The access class a 501 stub checks before answering (the one the route would have)."""
    if path.startswith("/oauth/"):
        return PUBLIC
    if any(part in path for part in _PURCHASE_PATHS) and method != "GET":
        return PURCHASE
    return READ if method == "GET" else MANAGE


#: why a 1NCE operation is not implemented, by (METHOD, path): told in its 501 answer and the document
NOT_IMPLEMENTED_NOTES: dict[tuple[str, str], str] = {}


def explain_not_implemented(method: str, path: str, why: str) -> None:
    """Say in the 501 answer of a 1NCE operation (and in the document's
    ``x-nce-not-implemented-notes``) why the gateway does not implement it; a feature module
    calls this at import time for operations of its area that it leaves out."""
    NOT_IMPLEMENTED_NOTES[(method.upper(), path)] = why


def not_implemented(spec: str, method: str, path: str) -> Handler:
    file = openapi.SPECS[spec]
    note = NOT_IMPLEMENTED_NOTES.get((method, path))
    message = f"{method} /management-api{path} ({file}) is not implemented by nce-gateway"
    message += f": {note}" if note else ("; see GET /management-api/openapi.json for the implemented routes")

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(error_body(501, message), status=501)

    return handler


@dataclass
class RouteTable:
    routes: list[ApiRoute]
    stubs: list[tuple[str, str, str]]  # (spec, method, path) answered 501
    document: dict[str, Any]
    validators: dict[tuple[str, str], OperationValidator]


def build_table(routes: list[ApiRoute], version: str) -> RouteTable:
    implemented = {(r.method, r.path) for r in routes}
    stubs = [(spec, method, path) for spec, method, path, _ in openapi.reference_operations()
             if (method, path) not in implemented]
    builder = openapi.DocumentBuilder("nce-gateway management API", version)
    operations: dict[tuple[str, str], dict] = {}
    for route in routes:
        operation = route.base_operation()
        if route.spec is None:
            builder.add_components("schemas", dict(route.schemas), f"{route.method} {route.path}")
        operations[(route.method, route.path)] = operation
    # validators need the components, so add operations first, then finish them
    for route in routes:
        builder.add_operation(route.method, route.path, operations[(route.method, route.path)], route.spec)
    validators: dict[tuple[str, str], OperationValidator] = {}
    for route in routes:
        operation = operations[(route.method, route.path)]
        validator = OperationValidator(operation, builder.resolve)
        validates = route.validate and (bool(validator.parameters) or validator.body_schema is not None)
        openapi.finish_operation(operation, public=route.access == PUBLIC, access=route.access, roles=route.roles,
                                 validates_input=validates)
        if route.validate:
            validators[(route.method, route.path)] = validator
    builder.document["x-nce-not-implemented"] = [f"{m} {p}" for _, m, p in sorted(stubs, key=lambda s: (s[2], s[1]))]
    notes = {f"{m} {p}": NOT_IMPLEMENTED_NOTES[(m, p)] for _, m, p in stubs if (m, p) in NOT_IMPLEMENTED_NOTES}
    if notes:
        builder.document["x-nce-not-implemented-notes"] = dict(sorted(notes.items()))
    openapi.relax_iccid_patterns(builder.document)
    openapi.add_event_types(builder.document)
    openapi.fix_array_defaults(builder.document)
    builder.check_references()
    return RouteTable(routes, stubs, builder.document, validators)


def wrap(route: ApiRoute, validator: OperationValidator | None, authenticate: Callable[[web.Request], Any]) -> Handler:
    """The handler behind authentication, the role check and input validation."""
    handler = route.handler
    allowed = ACCESS_ROLES.get(route.access)
    body_schema = validator.body_schema if validator is not None else None
    body_required = validator.body_required if validator is not None else False

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if allowed is not None:
            principal = authenticate(request)
            if principal.role not in allowed:
                raise ApiError(403, f"role {principal.role} may not call {route.method} {route.path}")
            request[PRINCIPAL] = principal
        if validator is not None:
            request[PARAMS] = validator.parameters_of(request.query, request.match_info)
            if body_schema is not None:
                value = await read_json(request, body_required)
                if value is not None or body_required:
                    request[BODY] = validator.body_of(value)
        response = await handler(request)
        if allowed is not None and response.status < 400 and audit.is_change(route.method, route.path):
            await _log_change(request, route, response.status)
        return response

    return wrapped


async def _log_change(request: web.Request, route: ApiRoute, status: int) -> None:
    """The administration log row of a change, written before the answer leaves."""
    body = request.get(BODY)
    if body is None and request.body_exists:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
    await audit.record_api_change(request.config_dict[GATEWAY_KEY], request, route.path, request[PRINCIPAL],
                                  client_address(request), body, status)


def install(app: web.Application, table: RouteTable, authenticate: Callable[[web.Request], Any]) -> None:
    for route in table.routes:
        validator = table.validators.get((route.method, route.path))
        app.router.add_route(route.method, route.path, wrap(route, validator, authenticate))
    for spec, method, path in table.stubs:
        stub = ApiRoute(method, path, not_implemented(spec, method, path), stub_access(method, path), spec=spec)
        app.router.add_route(method, path, wrap(stub, None, authenticate))
