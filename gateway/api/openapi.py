"""The 1NCE OpenAPI files, and the gateway's own document built from them.

``reference()`` loads the three 1NCE files shipped in ``gateway/api/reference``. The gateway's
``/management-api/openapi.json`` is built by :func:`build_document` from the route table: for a
route that 1NCE documents, the 1NCE operation (with the route's documented patch applied); for
a route of the gateway's own (users, token revocation, SIM export), the operation the route
carries. Components are copied from the file they come from. The same document drives request
validation, so what is published and what is enforced cannot drift apart.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any

SPECS = {"authorization": "authorization.json", "sim-management": "sim-management.json", "1nce-os": "1nce-os.json"}
METHODS = ("get", "put", "post", "delete", "patch")
PREFIX = "/management-api"

# Error schemas every document carries (1NCE OS format) and the gateway's additions.
ERROR_RESPONSES = {
    "400": "BadRequestError",
    "401": "UnauthorizedError",
    "403": "ForbiddenError",
    "404": "NotFoundError",
    "409": "ConflictError",
    "422": "UnprocessableEntityError",
    "429": "TooManyRequestsError",
    "500": "InternalServerError",
    "501": "NotImplementedError",
}

_ERROR_ITEMS = {"type": "array", "description": "What went wrong; `field` names the parameter or body field.",
                "items": {"type": "object", "properties": {"message": {"type": "string"},
                                                           "field": {"type": "string"}}}}
GATEWAY_SCHEMAS: dict[str, dict] = {
    "tooManyRequestsResponse": {
        "title": "Too Many Requests", "type": "object",
        "description": "Too many failed logins for this user or from this address; retry after `Retry-After` seconds.",
        "properties": {"statusCode": {"type": "integer", "example": 429}, "statusText": {"type": "string"},
                       "errorCode": {"type": "string", "enum": ["TooManyRequests"]},
                       "message": {"type": "string"}, "errors": _ERROR_ITEMS},
    },
    "notImplementedResponse": {
        "title": "Not Implemented", "type": "object",
        "description": "A route of the 1NCE API that this gateway does not implement.",
        "properties": {"statusCode": {"type": "integer", "example": 501},
                       "statusText": {"type": "string", "enum": ["Not Implemented"]}, "errors": _ERROR_ITEMS},
    },
}
GATEWAY_RESPONSES: dict[str, dict] = {
    "TooManyRequestsError": {
        "description": "Too Many Requests",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/tooManyRequestsResponse"}}},
    },
    "NotImplementedError": {
        "description": "Not Implemented",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/notImplementedResponse"}}},
    },
}


@functools.cache
def reference() -> dict[str, dict]:
    """The three 1NCE files by name (``authorization``, ``sim-management``, ``1nce-os``)."""
    folder = resources.files("gateway.api") / "reference"
    return {name: json.loads((folder / file).read_text(encoding="utf-8")) for name, file in SPECS.items()}


def reference_operations() -> Iterator[tuple[str, str, str, dict]]:
    """(spec, METHOD, path, operation) of every operation in the 1NCE files."""
    for spec, document in reference().items():
        for path, item in document["paths"].items():
            for method in METHODS:
                if method in item:
                    yield spec, method.upper(), path, item[method]


def reference_operation(spec: str, method: str, path: str) -> dict:
    try:
        return reference()[spec]["paths"][path][method.lower()]
    except KeyError:
        raise KeyError(f"{method} {path} is not in {SPECS.get(spec, spec)}") from None


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


class DocumentBuilder:
    """Collects operations and the components they need into one OpenAPI 3.0 document."""

    def __init__(self, title: str, version: str) -> None:
        self.document: dict[str, Any] = {
            "openapi": "3.0.1",
            "info": {"title": title, "version": version,
                     "description": "The management API of nce-gateway: the routes of the 1NCE API that this "
                                    "gateway implements (same paths, bodies and errors), plus its own "
                                    "(users, token revocation, SIM export). Routes of the 1NCE API that are "
                                    "not implemented answer 501; they are listed in x-nce-not-implemented."},
            "servers": [{"url": PREFIX}],
            "paths": {},
            "components": {
                "schemas": {}, "responses": {}, "parameters": {},
                "securitySchemes": {
                    "BearerAuthentication": {"type": "http", "scheme": "bearer",
                                             "description": "Access token from POST /oauth/token."},
                    "BasicAuthentication": {"type": "http", "scheme": "basic",
                                            "description": "User name (e-mail) and password, for /oauth/token only."},
                },
            },
        }
        self._origin: dict[tuple[str, str], str] = {}
        for name, schema in GATEWAY_SCHEMAS.items():
            self._add("schemas", name, schema, "gateway")
        for name, response in GATEWAY_RESPONSES.items():
            self._add("responses", name, response, "gateway")
        for name in ERROR_RESPONSES.values():
            if name not in GATEWAY_RESPONSES:
                self._copy_component("1nce-os", f"#/components/responses/{name}")

    def _add(self, kind: str, name: str, value: dict, origin: str) -> bool:
        existing = self.document["components"][kind].get(name)
        if existing is not None:
            if existing != value:
                raise ValueError(f"component {kind}/{name} from {origin} differs from the one of "
                                 f"{self._origin[(kind, name)]}")
            return False
        self.document["components"][kind][name] = copy.deepcopy(value)
        self._origin[(kind, name)] = origin
        return True

    def _copy_component(self, spec: str, ref: str) -> None:
        if not ref.startswith("#/components/"):
            raise ValueError(f"unsupported $ref {ref}")
        _, _, kind, name = ref.split("/", 3)
        if (kind, name) in self._origin:
            return
        value = reference()[spec]["components"][kind][name]
        self.document["components"].setdefault(kind, {})
        if self._add(kind, name, value, spec):
            for inner in _refs(value):
                self._copy_component(spec, inner)

    def add_components(self, kind: str, components: dict[str, dict], origin: str) -> None:
        for name, value in components.items():
            self._add(kind, name, value, origin)

    def add_operation(self, method: str, path: str, operation: dict, spec: str | None) -> None:
        item = self.document["paths"].setdefault(path, {})
        if method.lower() in item:
            raise ValueError(f"{method} {path} is documented twice")
        item[method.lower()] = operation
        if spec is not None:
            for ref in _refs(operation):
                self._copy_component(spec, ref)

    def resolve(self, ref: str) -> dict:
        node: Any = self.document
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def check_references(self) -> None:
        for ref in _refs(self.document):
            try:
                self.resolve(ref)
            except KeyError:
                raise ValueError(f"unresolved $ref {ref} in the gateway's OpenAPI document") from None


def finish_operation(operation: dict, *, public: bool, access: str, roles: Iterable[str],
                     validates_input: bool) -> dict:
    """Make a route's operation say what the gateway really does around every handler:
    authentication (401/403 with the 1NCE OS error body), validation (400)."""
    responses = operation.setdefault("responses", {})

    def ensure(code: str) -> None:
        current = responses.get(code)
        if current is None or (isinstance(current, dict) and "$ref" not in current and not current.get("content")):
            responses[code] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[code]}"}

    if not public:
        operation["security"] = [{"BearerAuthentication": []}]
        ensure("401")
        ensure("403")
    if validates_input:
        ensure("400")
    for code in ("404", "409", "422"):
        if code in responses:
            ensure(code)
    operation["x-nce-access"] = access
    operation["x-nce-roles"] = list(roles)
    return operation


def patched(spec: str, method: str, path: str, patch: Any) -> dict:
    operation = copy.deepcopy(reference_operation(spec, method, path))
    if patch is not None:
        patch(operation)
    return operation


def fix_array_defaults(node: Any) -> int:
    """1nce-os.json gives the template's ``protocolFilter`` (an array) the default and example
    "COAP", a string, which makes the document invalid OpenAPI: they become ["COAP"]. Changed
    in place; returns how many schemas were changed."""
    changed = 0
    if isinstance(node, dict):
        if node.get("type") == "array" and isinstance(node.get("default"), str):
            node["default"] = [node["default"]]
            if isinstance(node.get("example"), str):
                node["example"] = [node["example"]]
            changed += 1
        for value in node.values():
            changed += fix_array_defaults(value)
    elif isinstance(node, list):
        for value in node:
            changed += fix_array_defaults(value)
    return changed


ICCID_19 = "^[0-9]{19}$"
ICCID_19_20 = "^[0-9]{19,20}$"


#: event types of the gateway's own, added to every 1NCE enum of event types (docs/sms.md)
EXTRA_EVENT_TYPES = ("MO_SMS",)


def add_event_types(node: Any) -> int:
    """The 1NCE schemas enumerate the event types an integration can select; the gateway has
    more (``MO_SMS``). Changed in place; returns how many enums were extended."""
    changed = 0
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "TELEMETRY_DATA" in enum:
            enum.extend(t for t in EXTRA_EVENT_TYPES if t not in enum)
            changed += 1
        for value in node.values():
            changed += add_event_types(value)
    elif isinstance(node, list):
        for value in node:
            changed += add_event_types(value)
    return changed


def relax_iccid_patterns(node: Any) -> int:
    """ICCIDs have 19 or 20 digits (SPEC §1); the 1NCE schemas say exactly 19. Changed in place;
    returns how many patterns were changed."""
    changed = 0
    if isinstance(node, dict):
        if node.get("pattern") == ICCID_19:
            node["pattern"] = ICCID_19_20
            changed += 1
        for value in node.values():
            changed += relax_iccid_patterns(value)
    elif isinstance(node, list):
        for value in node:
            changed += relax_iccid_patterns(value)
    return changed
