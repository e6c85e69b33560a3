"""OMA TLV (content format 11542, and 1542 from LwM2M 1.0 drafts).

Binary and untyped: a TLV value's meaning comes from the resource definition, so the
registry decides how bytes are read. A resource the registry does not know (or an
executable one) decodes to its raw ``bytes``; integers, strings and floats cannot be
told apart from the bytes alone, and guessing would silently corrupt data.

Type byte (Core §7.4.3): bits 7-6 kind (00 object instance, 01 resource instance,
10 multiple resource, 11 resource with value), bit 5 id length (8/16 bit), bits 4-3
length field size (0/8/16/24 bit), bits 2-0 the length itself when bits 4-3 are 00.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import FormatError
from ..objects import ObjectRegistry, ResourceType
from ..path import LwM2MPath
from ..values import (INT64_MAX, INT64_MIN, UINT64_MAX, ObjLink, Record, Value, check_plain,
                      convert, python_type_of)

OBJECT_INSTANCE = 0
RESOURCE_INSTANCE = 1
MULTIPLE_RESOURCE = 2
RESOURCE = 3

_KIND_NAME = {OBJECT_INSTANCE: "object instance", RESOURCE_INSTANCE: "resource instance",
              MULTIPLE_RESOURCE: "multiple resource", RESOURCE: "resource"}
# index in the path that each kind's identifier fills
_LEVEL = {OBJECT_INSTANCE: 1, RESOURCE: 2, MULTIPLE_RESOURCE: 2, RESOURCE_INSTANCE: 3}
_ALLOWED_CHILDREN = {OBJECT_INSTANCE: (RESOURCE, MULTIPLE_RESOURCE),
                     MULTIPLE_RESOURCE: (RESOURCE_INSTANCE,)}
MAX_VALUE_LENGTH = 0xFFFFFF
_MAX_NODES = 100_000


@dataclass(slots=True)
class _Node:
    kind: int
    id: int
    offset: int  # of the type byte
    value_offset: int
    value: bytes = b""
    children: list["_Node"] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Parsing bytes into a TLV tree
# ---------------------------------------------------------------------------------------

def parse(payload: bytes) -> list[_Node]:
    """Split a payload into TLV entries, nesting containers (structure only, no typing)."""
    count = [0]
    return _parse_level(bytes(payload), 0, len(payload), None, count)


def _parse_level(data: bytes, start: int, end: int, parent: _Node | None, count: list[int]) -> list[_Node]:
    nodes: list[_Node] = []
    pos = start
    while pos < end:
        header = pos
        type_byte = data[pos]
        kind = type_byte >> 6
        wide_id = bool(type_byte & 0x20)
        len_size = (type_byte >> 3) & 0x03
        need = 1 + (2 if wide_id else 1) + len_size
        if pos + need > end:
            raise FormatError(f"TLV: truncated header at byte {header}: {need} bytes needed, "
                              f"{end - pos} left", offset=header)
        pos += 1
        if wide_id:
            ident = (data[pos] << 8) | data[pos + 1]
            pos += 2
        else:
            ident = data[pos]
            pos += 1
        if len_size == 0:
            length = type_byte & 0x07
        else:
            length = int.from_bytes(data[pos:pos + len_size], "big")
            pos += len_size
        if pos + length > end:
            raise FormatError(f"TLV: {_KIND_NAME[kind]} {ident} at byte {header} has length {length} "
                              f"but only {end - pos} bytes are left", offset=header)
        if parent is not None and kind not in _ALLOWED_CHILDREN.get(parent.kind, ()):
            raise FormatError(f"TLV: {_KIND_NAME[kind]} {ident} at byte {header} cannot be inside "
                              f"{_KIND_NAME[parent.kind]} {parent.id}", offset=header)
        count[0] += 1
        if count[0] > _MAX_NODES:
            raise FormatError(f"TLV: more than {_MAX_NODES} entries", offset=header)
        node = _Node(kind, ident, header, pos)
        if kind in _ALLOWED_CHILDREN:
            node.children = _parse_level(data, pos, pos + length, node, count)
        else:
            node.value = data[pos:pos + length]
        nodes.append(node)
        pos += length
    return nodes


# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------

def decode_value(raw: bytes, rtype: ResourceType | None, where: str, offset: int) -> Value:
    """Interpret one TLV value's bytes as ``rtype`` (``None``: keep the bytes)."""
    n = len(raw)
    if rtype is None or rtype is ResourceType.OPAQUE:
        return bytes(raw)
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"TLV: {where} at byte {offset}: string is not valid UTF-8 "
                              f"(at value byte {exc.start})", offset=offset) from None
    if rtype in (ResourceType.INTEGER, ResourceType.TIME):
        if n not in (1, 2, 4, 8):
            raise FormatError(f"TLV: {where} at byte {offset}: integer of {n} bytes; "
                              f"integers are 1, 2, 4 or 8 bytes", offset=offset)
        return int.from_bytes(raw, "big", signed=True)
    if rtype is ResourceType.UNSIGNED_INTEGER:
        if n not in (1, 2, 4, 8):
            raise FormatError(f"TLV: {where} at byte {offset}: unsigned integer of {n} bytes; "
                              f"integers are 1, 2, 4 or 8 bytes", offset=offset)
        return int.from_bytes(raw, "big", signed=False)
    if rtype is ResourceType.FLOAT:
        if n == 4:
            return struct.unpack(">f", raw)[0]
        if n == 8:
            return struct.unpack(">d", raw)[0]
        raise FormatError(f"TLV: {where} at byte {offset}: float of {n} bytes; "
                          f"floats are 4 or 8 bytes", offset=offset)
    if rtype is ResourceType.BOOLEAN:
        if n != 1 or raw[0] > 1:
            raise FormatError(f"TLV: {where} at byte {offset}: boolean must be one byte 0 or 1, "
                              f"got {raw.hex() or 'nothing'}", offset=offset)
        return raw[0] == 1
    if rtype is ResourceType.OBJLNK:
        if n != 4:
            raise FormatError(f"TLV: {where} at byte {offset}: object link of {n} bytes; "
                              f"object links are 4 bytes", offset=offset)
        return ObjLink(int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big"))
    raise FormatError(f"TLV: {where}: unsupported type {rtype}", offset=offset)  # pragma: no cover


def encode_value(value: Value, rtype: ResourceType | None, where: str) -> bytes:
    """Bytes of one value: integers in the fewest of 1/2/4/8 bytes, floats in 4 bytes when
    that is exact (as the spec examples and most clients do), else 8."""
    if rtype is None:
        value = check_plain(value, where)
        rtype = python_type_of(value)
    else:
        value = convert(value, rtype, where)
    if rtype in (ResourceType.INTEGER, ResourceType.TIME):
        return _int_bytes(int(value), True)  # type: ignore[arg-type]
    if rtype is ResourceType.UNSIGNED_INTEGER:
        return _int_bytes(int(value), False)  # type: ignore[arg-type]
    if rtype is ResourceType.FLOAT:
        f = float(value)  # type: ignore[arg-type]
        if math.isnan(f) or _fits_float32(f):
            return struct.pack(">f", f)
        return struct.pack(">d", f)
    if rtype is ResourceType.BOOLEAN:
        return b"\x01" if value else b"\x00"
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        return str(value).encode("utf-8")
    if rtype is ResourceType.OPAQUE:
        return bytes(value)  # type: ignore[arg-type]
    if rtype is ResourceType.OBJLNK:
        link: ObjLink = value  # type: ignore[assignment]
        return link.object_id.to_bytes(2, "big") + link.instance_id.to_bytes(2, "big")
    raise FormatError(f"TLV: {where}: cannot encode {value!r}")  # pragma: no cover


def _fits_float32(f: float) -> bool:
    try:
        return struct.unpack(">f", struct.pack(">f", f))[0] == f
    except OverflowError:
        return False


def _int_bytes(n: int, signed: bool) -> bytes:
    lo, hi = (INT64_MIN, INT64_MAX) if signed else (0, UINT64_MAX)
    if not lo <= n <= hi:  # convert() already checked; kept for unknown-type ints
        raise FormatError(f"TLV: integer {n} does not fit in 8 bytes")
    for size in (1, 2, 4, 8):
        try:
            return n.to_bytes(size, "big", signed=signed)
        except OverflowError:
            continue
    raise FormatError(f"TLV: integer {n} does not fit in 8 bytes")  # pragma: no cover


# ---------------------------------------------------------------------------------------
# Decode: TLV tree -> records
# ---------------------------------------------------------------------------------------

def decode(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    """Values of a TLV payload answering a request on ``base_path`` (an object or deeper).

    Accepted shapes, by request level (Core §7.4.3 and what real clients send):
    ``/O``: object instance TLVs (bare resource TLVs are taken as instance 0);
    ``/O/I``: resource TLVs, or one object instance TLV with id I around them;
    ``/O/I/R``: one resource TLV, one multiple resource TLV, or bare resource instance
    TLVs, optionally wrapped in the instance; ``/O/I/R/RI``: one resource instance TLV.
    """
    if base_path.is_root:
        raise FormatError("TLV: cannot decode at the root path; TLV carries no object ids")
    nodes = parse(payload)
    out: list[Record] = []
    _walk(nodes, base_path.ids, base_path, registry, out, set())
    if base_path.is_resource_instance and not out:
        raise FormatError(f"TLV: no value for {base_path}")
    if base_path.is_resource and not out and not nodes:
        # an empty payload is an empty multiple resource, or nothing at all
        rdef = registry.resource_at(base_path)
        if rdef is None or not rdef.multiple:
            raise FormatError(f"TLV: no value for {base_path}")
    return out


def _walk(nodes: list[_Node], prefix: tuple[int, ...], base: LwM2MPath, registry: ObjectRegistry,
          out: list[Record], seen: set[tuple[int, ...]]) -> None:
    for node in nodes:
        level = _LEVEL[node.kind]
        here = prefix
        if level > len(here) and len(here) == 1 and node.kind in (RESOURCE, MULTIPLE_RESOURCE):
            here = here + (0,)  # resources of an object read without an instance TLV
        if level < len(here):
            # the request already fixed this id: the node is a wrapper (or a mismatch)
            if node.id != here[level]:
                raise FormatError(f"TLV: {_KIND_NAME[node.kind]} {node.id} at byte {node.offset} "
                                  f"does not match the requested path {base}", offset=node.offset)
            if node.kind in _ALLOWED_CHILDREN:
                _walk(node.children, here, base, registry, out, seen)
                continue
            if level + 1 == len(here):
                path_ids = here
            else:
                raise FormatError(f"TLV: {_KIND_NAME[node.kind]} {node.id} at byte {node.offset} "
                                  f"is above the requested path {base}", offset=node.offset)
        elif level == len(here):
            path_ids = here + (node.id,)
        else:
            parent = "multiple resource" if node.kind == RESOURCE_INSTANCE else "object instance"
            raise FormatError(f"TLV: {_KIND_NAME[node.kind]} {node.id} at byte {node.offset} needs an "
                              f"enclosing {parent} for the requested path {base}", offset=node.offset)
        if path_ids in seen:
            raise FormatError(f"TLV: duplicate {_KIND_NAME[node.kind]} {node.id} at byte {node.offset} "
                              f"({LwM2MPath(*path_ids)})", offset=node.offset)
        seen.add(path_ids)
        if node.kind in _ALLOWED_CHILDREN:
            _walk(node.children, path_ids, base, registry, out, seen)
            continue
        path = LwM2MPath(*path_ids)
        if len(path) < 3:  # pragma: no cover - value kinds are at level >= 2
            raise FormatError(f"TLV: value at byte {node.offset} is not a resource", offset=node.offset)
        rdef = registry.resource(path_ids[0], path_ids[2])
        rtype = rdef.type if rdef is not None else None
        out.append(Record(str(path), decode_value(node.value, rtype, str(path), node.offset)))


# ---------------------------------------------------------------------------------------
# Encode: values -> TLV bytes
# ---------------------------------------------------------------------------------------

def _entry(kind: int, ident: int, value: bytes) -> bytes:
    n = len(value)
    if n > MAX_VALUE_LENGTH:
        raise FormatError(f"TLV: {_KIND_NAME[kind]} {ident} is {n} bytes; the limit is {MAX_VALUE_LENGTH}")
    type_byte = kind << 6
    head = bytearray()
    if ident > 0xFF:
        type_byte |= 0x20
        head += ident.to_bytes(2, "big")
    else:
        head.append(ident)
    if n < 8:
        type_byte |= n
    elif n <= 0xFF:
        type_byte |= 0x08
        head.append(n)
    elif n <= 0xFFFF:
        type_byte |= 0x10
        head += n.to_bytes(2, "big")
    else:
        type_byte |= 0x18
        head += n.to_bytes(3, "big")
    return bytes([type_byte]) + bytes(head) + value


def encode(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    """TLV for the values under ``base_path``, ordered by path (as the spec examples are).

    Shape by request level: ``/O`` object instance TLVs; ``/O/I`` resource TLVs;
    ``/O/I/R`` one resource or multiple resource TLV; ``/O/I/R/RI`` one resource
    instance TLV. Whether a resource is multiple comes from the registry, else from
    whether its values have resource instance paths.
    """
    if base_path.is_root:
        raise FormatError("TLV: cannot encode at the root path; TLV carries no object ids")
    if any(r.time is not None for r in records):
        raise FormatError("TLV: values with a time cannot be encoded; TLV has no timestamps")
    tree: dict[int, dict[int, dict[int | None, Value]]] = {}
    for rec in records:
        path = LwM2MPath.of(rec.path)
        if not path.startswith(base_path):
            raise FormatError(f"TLV: {path} is not under the requested path {base_path}")
        if len(path) < 3:
            raise FormatError(f"TLV: {path} is not a resource or resource instance path")
        res = tree.setdefault(path.ids[1], {}).setdefault(path.ids[2], {})
        key = path.ids[3] if len(path) == 4 else None
        if key in res:
            raise FormatError(f"TLV: two values for {path}")
        res[key] = rec.value
    oid = base_path.ids[0]

    def resource_entries(iid: int, resources: dict[int, dict[int | None, Value]]) -> list[bytes]:
        parts = []
        for rid in sorted(resources):
            parts.append(_resource_tlv(oid, iid, rid, resources[rid], registry))
        return parts

    if base_path.is_object:
        return b"".join(_entry(OBJECT_INSTANCE, iid, b"".join(resource_entries(iid, tree[iid])))
                        for iid in sorted(tree))
    iid = base_path.ids[1]
    resources = tree.get(iid, {})
    if base_path.is_object_instance:
        return b"".join(resource_entries(iid, resources))
    rid = base_path.ids[2]
    if base_path.is_resource:
        if not resources:
            rdef = registry.resource(oid, rid)
            if rdef is not None and rdef.multiple:
                return _entry(MULTIPLE_RESOURCE, rid, b"")
            raise FormatError(f"TLV: no value for {base_path}")
        return _resource_tlv(oid, iid, rid, resources[rid], registry)
    riid = base_path.ids[3]
    values = resources.get(rid, {})
    if riid not in values:
        raise FormatError(f"TLV: no value for {base_path}")
    rdef = registry.resource(oid, rid)
    where = str(base_path)
    return _entry(RESOURCE_INSTANCE, riid, encode_value(values[riid], _enc_type(rdef, where), where))


def _enc_type(rdef, where: str) -> ResourceType | None:
    if rdef is not None and rdef.type is None:
        raise FormatError(f"TLV: {where} is executable and has no value to encode")
    return rdef.type if rdef is not None else None


def _resource_tlv(oid: int, iid: int, rid: int, values: dict[int | None, Value],
                  registry: ObjectRegistry) -> bytes:
    rdef = registry.resource(oid, rid)
    rpath = f"/{oid}/{iid}/{rid}"
    single = None in values
    if single and len(values) > 1:
        raise FormatError(f"TLV: {rpath} has a value both as a resource and as resource instances")
    if rdef is not None and rdef.multiple and single:
        raise FormatError(f"TLV: {rpath} is a multiple-instance resource; "
                          f"give its values at {rpath}/<instance>")
    if rdef is not None and not rdef.multiple and not single:
        raise FormatError(f"TLV: {rpath} is a single-instance resource; "
                          f"give its value at {rpath}, not at a resource instance")
    rtype = _enc_type(rdef, rpath)
    if single:
        return _entry(RESOURCE, rid, encode_value(values[None], rtype, rpath))
    inner = b"".join(_entry(RESOURCE_INSTANCE, riid, encode_value(values[riid], rtype, f"{rpath}/{riid}"))
                     for riid in sorted(values))  # type: ignore[type-var]
    return _entry(MULTIPLE_RESOURCE, rid, inner)


def encode_values(values: Mapping[str, Value], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    return encode([Record(str(p), v) for p, v in values.items()], base_path, registry)
