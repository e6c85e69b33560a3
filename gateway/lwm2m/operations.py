"""The device operations beyond read/write/execute/observe (LwM2M 1.1 Core §6.3, §6.4):
Discover, Write-Attributes, Create, Delete, Read-Composite and Write-Composite.

How an action request carries them (API ``data``, CLI arguments; docs/lwm2m.md):

* ``discover``: ``resourceAddress`` /O, /O/I or /O/I/R; the result lists the links.
* ``write-attributes``: ``data`` ``pmin=10&pmax=60&gt=30&lt=5&st=0.5`` (a name without value
  or with an empty one removes the attribute); pmin/pmax whole seconds, gt/lt/st numbers, which
  apply to a resource (/O/I/R) only.
* ``create``: ``resourceAddress`` /O/I (the new instance), ``data`` a JSON object of resource id
  to value (``{"5750": "kitchen", "5701": "Cel"}``), sent as TLV to /O.
* ``delete``: ``resourceAddress`` /O/I.
* ``read-composite``: ``resourceAddress`` ``/``, ``data`` the paths, comma separated or a JSON
  array; FETCH with SenML JSON (LwM2M 1.1 and later).
* ``write-composite``: ``resourceAddress`` ``/``, ``data`` a JSON object of path to value;
  iPATCH with SenML JSON (LwM2M 1.1 and later).
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiocoap.numbers.codes import Code

from .errors import FormatError
from .formats import ContentFormat, encode
from .linkformat import parse_link_format
from .objects import ObjectRegistry
from .path import LwM2MPath
from .values import convert

EXTRA_ACTIONS = ("discover", "write-attributes", "create", "delete", "read-composite", "write-composite")
COMPOSITE = ("read-composite", "write-composite")
ATTRIBUTES = ("pmin", "pmax", "gt", "lt", "st")
MAX_COMPOSITE = 64


class OperationError(ValueError):
    """A request for one of these operations that cannot be sent; ``field`` is at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def validate_extra(action: str, path: LwM2MPath, data: str | None, objects: ObjectRegistry | None) -> str | None:
    """Check the address and data of an extra operation; returns the normalised data."""
    if action in COMPOSITE:
        if not path.is_root:
            raise OperationError(f"{action} takes resourceAddress / and its paths in data", "resourceAddress")
        if data is None:
            raise OperationError(f"{action} needs data", "data")
        if action == "read-composite":
            return ",".join(str(p) for p in composite_paths(data))
        return json.dumps({str(p): v for p, v in composite_values(data, objects).items()}, ensure_ascii=False)
    if path.is_root:
        raise OperationError("resourceAddress must name an object, instance or resource", "resourceAddress")
    if action == "discover":
        if len(path) > 3 or data is not None:
            raise OperationError("discover takes /O, /O/I or /O/I/R and no data", "resourceAddress"
                                 if len(path) > 3 else "data")
        return None
    if action == "delete":
        if len(path) != 2 or data is not None:
            raise OperationError("delete takes an object instance (/O/I) and no data", "resourceAddress"
                                 if len(path) != 2 else "data")
        return None
    if action == "create":
        if len(path) != 2:
            raise OperationError("create takes the new object instance (/O/I)", "resourceAddress")
        if data is None:
            raise OperationError("create needs data: a JSON object of resource id to value", "data")
        return json.dumps(create_values(path, data, objects), ensure_ascii=False)
    # write-attributes
    if len(path) > 3:
        raise OperationError("write-attributes takes /O, /O/I or /O/I/R", "resourceAddress")
    if data is None:
        raise OperationError("write-attributes needs data, e.g. pmin=10&pmax=60", "data")
    return "&".join(attribute_query(path, data))


def attribute_query(path: LwM2MPath, data: str) -> list[str]:
    """``pmin=10&gt=`` → ``["pmin=10", "gt"]`` (Uri-Query options; a bare name removes it)."""
    out: list[str] = []
    seen: set[str] = set()
    for item in data.replace(";", "&").split("&"):
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if name not in ATTRIBUTES:
            raise OperationError(f"unknown attribute {name!r}: use {', '.join(ATTRIBUTES)}", "data")
        if name in seen:
            raise OperationError(f"attribute {name} given twice", "data")
        seen.add(name)
        if name in ("gt", "lt", "st") and len(path) != 3:
            raise OperationError(f"{name} applies to a resource (/O/I/R) only", "data")
        if not value:
            out.append(name)
            continue
        try:
            number = float(value)
        except ValueError:
            raise OperationError(f"{name}={value!r} is not a number", "data") from None
        if not math.isfinite(number):
            raise OperationError(f"{name}={value!r} is not a finite number", "data")
        if name in ("pmin", "pmax"):
            if number < 0 or number != int(number):
                raise OperationError(f"{name} is whole seconds (0 or more), not {value}", "data")
            value = str(int(number))
        elif name == "st" and number < 0:
            raise OperationError("st (step) cannot be negative", "data")
        out.append(f"{name}={value}")
    if not out:
        raise OperationError("write-attributes needs at least one of " + ", ".join(ATTRIBUTES), "data")
    return out


def _json(data: str, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise OperationError(f"data is not JSON ({what}): {exc}", "data") from None


def composite_paths(data: str) -> list[LwM2MPath]:
    items = _json(data, "a list of paths") if data.lstrip().startswith("[") else data.split(",")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise OperationError("data must be paths, comma separated or a JSON array of strings", "data")
    paths = []
    for item in items:
        try:
            path = LwM2MPath.parse(item.strip())
        except FormatError as exc:
            raise OperationError(f"data: {exc}", "data") from None
        if path.is_root:
            raise OperationError("data: / is not a path to read", "data")
        paths.append(path)
    if not 1 <= len(paths) <= MAX_COMPOSITE:
        raise OperationError(f"data: 1 to {MAX_COMPOSITE} paths", "data")
    return paths


def composite_values(data: str, objects: ObjectRegistry | None) -> dict[LwM2MPath, Any]:
    items = _json(data, "an object of path to value")
    if not isinstance(items, dict) or not 1 <= len(items) <= MAX_COMPOSITE:
        raise OperationError(f"data must be a JSON object of 1 to {MAX_COMPOSITE} paths to values", "data")
    out: dict[LwM2MPath, Any] = {}
    for key, value in items.items():
        try:
            path = LwM2MPath.parse(key)
        except FormatError as exc:
            raise OperationError(f"data: {exc}", "data") from None
        if len(path) < 3:
            raise OperationError(f"data: {key} is not a resource (/O/I/R[/RI])", "data")
        out[path] = _typed(path, value, objects)
    return out


def create_values(path: LwM2MPath, data: str, objects: ObjectRegistry | None) -> dict[str, Any]:
    items = _json(data, "an object of resource id to value")
    if not isinstance(items, dict) or not items:
        raise OperationError("data must be a JSON object of resource id to value", "data")
    out: dict[str, Any] = {}
    for rid, value in items.items():
        if not str(rid).isdigit() or int(rid) > 65534:
            raise OperationError(f"data: {rid!r} is not a resource id", "data")
        out[str(int(rid))] = _typed(LwM2MPath(path.object_id, path.instance_id, int(rid)), value, objects)
    return out


def _typed(path: LwM2MPath, value: Any, objects: ObjectRegistry | None) -> Any:
    definition = objects.resource_at(path.resource_path) if objects is not None else None
    if isinstance(value, (dict, list)) or value is None:
        raise OperationError(f"data: {path}: a value must be a string, number or boolean", "data")
    try:
        return convert(value, definition.type if definition is not None else None, str(path))
    except FormatError as exc:
        raise OperationError(f"data: {exc}", "data") from None


def request_of(action: str, path_text: str, data: str | None,
               objects: ObjectRegistry | None) -> tuple[Code, str, bytes, dict[str, Any]]:
    """The CoAP request of a validated extra operation: (method, path, payload, options)."""
    path = LwM2MPath.parse(path_text)
    if action == "discover":
        return Code.GET, path_text, b"", {"accept": ContentFormat.LINK_FORMAT}
    if action == "write-attributes":
        return Code.PUT, path_text, b"", {"query": attribute_query(path, data or "")}
    if action == "delete":
        return Code.DELETE, path_text, b"", {}
    if action == "create":
        values = {f"{path}/{rid}": v for rid, v in json.loads(data or "{}").items()}
        typed = {k: _typed(LwM2MPath.parse(k), v, objects) for k, v in values.items()}
        base = f"/{path.object_id}"
        return Code.POST, base, encode(ContentFormat.TLV, typed, base, objects), {"content_format": ContentFormat.TLV}
    if action == "read-composite":
        paths = composite_paths(data or "")
        payload = json.dumps([{"n": str(p)} for p in paths]).encode()
        return Code.FETCH, "/", payload, {"content_format": ContentFormat.SENML_JSON,
                                          "accept": ContentFormat.SENML_JSON}
    if action == "write-composite":
        values = composite_values(data or "", objects)
        return Code.iPATCH, "/", encode(ContentFormat.SENML_JSON, values, "/", objects), {
            "content_format": ContentFormat.SENML_JSON}
    raise ValueError(action)


def discovered(payload: bytes) -> list[dict[str, Any]]:
    """Discover's link-format answer as ``[{"path": "/3/0/1", "attributes": {"pmin": "10"}}]``."""
    return [{"path": link.uri, "attributes": link.attributes} for link in parse_link_format(payload)]


def needs_version(action: str) -> str | None:
    """The lowest LwM2M version a client must have registered with for ``action``."""
    return "1.1" if action in COMPOSITE else None


def version_below(version: str, wanted: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in v.split(".")[:2])
        except ValueError:
            return (0,)
    return parts(version) < parts(wanted)
