"""Request validation from the OpenAPI operation of a route.

Query and path parameters are converted to their schema's type and checked; a JSON request
body is checked against its schema. The checks are compiled from the same document the gateway
serves as ``/management-api/openapi.json``, so what is published is what is enforced.

Only the subset of OpenAPI 3.0 schemas that the 1NCE files use is understood: ``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``enum``, ``minLength``,
``maxLength``, ``minItems``, ``maxItems``, ``minimum``, ``maximum``, ``pattern``, ``nullable``,
``format: uri`` and ``$ref``. Anything else is ignored (accepted).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from .errors import ApiError, bad_request

Resolver = Callable[[str], dict]

#: integers the store can hold (SQLite: signed 64 bits); larger ones are refused as input
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: nesting of a JSON body beyond any request of the API (a deeper one is refused before use)
MAX_JSON_DEPTH = 32


class SchemaError(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def check(value: Any, schema: Mapping[str, Any], resolve: Resolver, where: str = "") -> None:
    """Raise SchemaError naming the first place where ``value`` does not fit ``schema``."""
    while "$ref" in schema:
        schema = resolve(schema["$ref"])
    if value is None:
        if schema.get("nullable"):
            return
        raise SchemaError(where, "must not be null")
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        if not isinstance(value, dict):
            raise SchemaError(where, "must be an object")
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaError(_join(where, name), "is required")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                check(item, properties[key], resolve, _join(where, key))
            elif extra is False:
                raise SchemaError(_join(where, key), "is not a known field")
            elif isinstance(extra, Mapping):
                check(item, extra, resolve, _join(where, key))
    elif kind == "array":
        if not isinstance(value, list):
            raise SchemaError(where, "must be an array")
        if len(value) < schema.get("minItems", 0):
            raise SchemaError(where, f"needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(where, f"takes at most {schema['maxItems']} item(s)")
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                check(item, items, resolve, _join(where, i))
    elif kind == "string":
        if not isinstance(value, str):
            raise SchemaError(where, "must be a string")
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(where, f"needs at least {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError(where, f"takes at most {schema['maxLength']} characters")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            raise SchemaError(where, f"must match {schema['pattern']}")
        if schema.get("format") == "uri" and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s]+$", value):
            raise SchemaError(where, "must be an absolute URL")
    elif kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(where, f"must be {'an integer' if kind == 'integer' else 'a number'}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(where, "must be a finite number")
        if kind == "integer" and isinstance(value, float) and not value.is_integer():
            raise SchemaError(where, "must be an integer")
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise SchemaError(where, "is out of range (a signed 64-bit integer)")
        _bounds(value, schema, where)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise SchemaError(where, "must be true or false")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(where, f"must be one of {', '.join(map(str, schema['enum']))}")


def _bounds(value: float, schema: Mapping[str, Any], where: str) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and (value < low or (schema.get("exclusiveMinimum") is True and value == low)):
        raise SchemaError(where, f"must be at least {low}")
    if high is not None and (value > high or (schema.get("exclusiveMaximum") is True and value == high)):
        raise SchemaError(where, f"must be at most {high}")


def convert_parameter(raw: str, schema: Mapping[str, Any], resolve: Resolver, name: str) -> Any:
    """A query or path parameter's text as its schema's type, checked."""
    while "$ref" in schema:
        schema = resolve(schema["$ref"])
    kind = schema.get("type")
    value: Any = raw
    if kind == "integer":
        try:
            if len(raw) > 40:  # far beyond 64 bits: not worth converting
                raise ValueError
            value = int(raw)
        except ValueError:
            raise bad_request(f"{name}: {raw[:40]!r} is not an integer", name) from None
    elif kind == "number":
        try:
            value = float(raw)
        except ValueError:
            raise bad_request(f"{name}: {raw!r} is not a number", name) from None
        if not math.isfinite(value):
            raise bad_request(f"{name}: must be a finite number", name)
    elif kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise bad_request(f"{name}: must be true or false", name)
        value = raw.lower() == "true"
    elif kind == "array":
        value = [v for v in raw.split(",") if v]
    try:
        check(value, schema, resolve, name)
    except SchemaError as exc:
        raise bad_request(str(exc), exc.where or name) from None
    return value


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(text: str) -> Any:
    """``json.loads`` that refuses bodies nested deeper than :data:`MAX_JSON_DEPTH` with a
    ValueError (the parser's own recursion limit would otherwise surface as a 500), and
    integers beyond 64 bits."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth_exceeds(value):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


class OperationValidator:
    """Checks the parameters and JSON body of requests to one operation."""

    def __init__(self, operation: Mapping[str, Any], resolve: Resolver) -> None:
        self.resolve = resolve
        self.parameters: list[tuple[str, str, bool, dict, Any]] = []  # (in, name, required, schema, default)
        for param in operation.get("parameters", ()):
            while "$ref" in param:
                param = resolve(param["$ref"])
            if param.get("in") not in ("query", "path"):
                continue
            schema = param.get("schema", {})
            resolved = schema
            while "$ref" in resolved:
                resolved = resolve(resolved["$ref"])
            self.parameters.append((param["in"], param["name"], bool(param.get("required")), schema,
                                    resolved.get("default")))
        self.body_schema: dict | None = None
        self.body_required = False
        body = operation.get("requestBody")
        if body is not None:
            while "$ref" in body:
                body = resolve(body["$ref"])
            media = body.get("content", {}).get("application/json")
            if media is not None and "schema" in media:
                self.body_schema = media["schema"]
                self.body_required = bool(body.get("required"))

    def parameters_of(self, query: Mapping[str, str], path: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for where, name, required, schema, default in self.parameters:
            source = path if where == "path" else query
            raw = source.get(name)
            if raw is None or (raw == "" and where == "query"):
                if required:
                    raise bad_request(f"{name}: is required", name)
                values[name] = default
                continue
            values[name] = convert_parameter(raw, schema, self.resolve, name)
        return values

    def body_of(self, value: Any) -> Any:
        if self.body_schema is None:
            return value
        try:
            check(value, self.body_schema, self.resolve)
        except SchemaError as exc:
            field = exc.where or "body"
            raise ApiError(400, f"{field}: {exc.message}" if exc.where else f"body: {exc.message}",
                           field=field) from None
        return value
