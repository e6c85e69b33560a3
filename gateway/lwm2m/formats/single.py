"""Single-value formats: plain text (0, old 1541), opaque (42, old 1544), CBOR (60).

They carry exactly one resource or resource instance value, the one at the request
path, and no name; the request path says where the value belongs.

Plain text (Core Appendix C): numbers in decimal (no exponent written; one accepted),
Boolean as ``0``/``1`` (``true``/``false`` accepted), Time as decimal seconds, Objlnk
as ``oid:iid``, Opaque as standard base64 (any base64 spelling accepted). A resource
the registry does not know decodes as a string.

Opaque: the payload is the value, ``bytes`` whatever the resource's declared type.

CBOR (Core §7.4.7): integers, floats (shortest exact width), booleans, text, byte
strings; Time is written as tag 1 (epoch seconds) and read tagged or not; object links
are text ``oid:iid``. An unknown resource keeps the CBOR item's natural type.
"""

from __future__ import annotations

import cbor2

from ..errors import FormatError
from ..objects import ObjectRegistry, ResourceType
from ..path import LwM2MPath
from ..values import (ObjLink, Record, Value, b64decode_lenient, b64encode_std, check_plain, convert,
                      float_to_text, python_type_of)
from . import _cbor

TEXT = "Plain text"
OPAQUE = "Opaque"
CBOR = "CBOR"


def _target(base_path: LwM2MPath, registry: ObjectRegistry, fmt: str) -> ResourceType | None:
    if len(base_path) < 3:
        raise FormatError(f"{fmt}: carries one resource value; {base_path} is not a resource "
                          f"or resource instance path")
    rdef = registry.resource_at(base_path)
    if rdef is None:
        return None
    if rdef.multiple and base_path.is_resource:
        raise FormatError(f"{fmt}: carries one value; {base_path} is a multiple-instance resource "
                          f"(address one of its instances)")
    return rdef.type


def _the_value(records: list[Record], base_path: LwM2MPath, fmt: str) -> Record:
    if len(records) != 1:
        raise FormatError(f"{fmt}: carries exactly one value, {len(records)} given")
    rec = records[0]
    if LwM2MPath.of(rec.path) != base_path:
        raise FormatError(f"{fmt}: value is for {rec.path}, not the request path {base_path}")
    if rec.time is not None:
        raise FormatError(f"{fmt}: cannot carry a time")
    return rec


def _encode_type(base_path: LwM2MPath, registry: ObjectRegistry, fmt: str) -> ResourceType | None:
    rtype = _target(base_path, registry, fmt)
    rdef = registry.resource_at(base_path)
    if rdef is not None and rdef.type is None:
        raise FormatError(f"{fmt}: {base_path} is executable and has no value to encode")
    return rtype


# -- plain text ---------------------------------------------------------------------------

def decode_text(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    rtype = _target(base_path, registry, TEXT)
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{TEXT}: payload is not UTF-8 (byte {exc.start})", offset=exc.start) from None
    what = f"{TEXT} ({base_path})"
    if rtype is ResourceType.OPAQUE:
        value: Value = b64decode_lenient(text, what)
    elif rtype is None:
        value = text
    else:
        value = convert(text, rtype, what)
    return [Record(str(base_path), value)]


def encode_text(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    rtype = _encode_type(base_path, registry, TEXT)
    rec = _the_value(records, base_path, TEXT)
    what = f"{TEXT} ({base_path})"
    value = check_plain(rec.value, what) if rtype is None else convert(rec.value, rtype, what)
    kind = rtype or python_type_of(value)
    if kind is ResourceType.BOOLEAN:
        text = "1" if value else "0"
    elif kind is ResourceType.FLOAT:
        text = float_to_text(value, what)  # type: ignore[arg-type]
    elif kind is ResourceType.OPAQUE:
        text = b64encode_std(value)  # type: ignore[arg-type]
    else:
        text = str(value)
    return text.encode("utf-8")


# -- opaque ---------------------------------------------------------------------------------

def decode_opaque(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    _target(base_path, registry, OPAQUE)
    return [Record(str(base_path), bytes(payload))]


def encode_opaque(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    rtype = _encode_type(base_path, registry, OPAQUE)
    rec = _the_value(records, base_path, OPAQUE)
    if rtype not in (None, ResourceType.OPAQUE):
        raise FormatError(f"{OPAQUE}: {base_path} is a {rtype.value} resource; "
                          f"the opaque format is for Opaque resources")
    if not isinstance(rec.value, (bytes, bytearray, memoryview)):
        raise FormatError(f"{OPAQUE}: value for {base_path} must be bytes")
    return bytes(rec.value)


# -- CBOR -----------------------------------------------------------------------------------

def decode_cbor(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    rtype = _target(base_path, registry, CBOR)
    what = f"{CBOR} ({base_path})"
    if payload[:1] == b"\xc1":
        # tag 1, epoch time: read the number ourselves (cbor2 would build a datetime,
        # which fails outside years 1..9999)
        item = _cbor.loads(payload[1:], CBOR)
        if not _cbor.is_number(item):
            raise FormatError(f"{what}: tag 1 (epoch time) must hold a number")
        return [Record(str(base_path), convert(_cbor.plain_number(item), rtype or ResourceType.TIME, what))]
    item = _cbor.loads(payload, CBOR)
    if isinstance(item, (list, dict)):
        raise FormatError(f"{what}: an array or map is not a resource value")
    if item is None or item is cbor2.undefined or isinstance(item, (cbor2.CBORTag, cbor2.CBORSimpleValue)):
        raise FormatError(f"{what}: {item!r} is not a resource value")
    if isinstance(item, str) and rtype is ResourceType.OBJLNK:
        item = ObjLink.parse(item.strip()) if ":" in item else item
    if _cbor.is_number(item):
        item = _cbor.plain_number(item)
    return [Record(str(base_path), convert(item, rtype, what))]


def encode_cbor(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    rtype = _encode_type(base_path, registry, CBOR)
    rec = _the_value(records, base_path, CBOR)
    what = f"{CBOR} ({base_path})"
    value = check_plain(rec.value, what) if rtype is None else convert(rec.value, rtype, what)
    kind = rtype or python_type_of(value)
    if kind is ResourceType.TIME:
        return _cbor.dumps(_cbor.Tagged(1, value))
    if kind is ResourceType.OBJLNK:
        return _cbor.dumps(str(value))
    if kind is ResourceType.FLOAT:
        return _cbor.dumps(float(value))  # type: ignore[arg-type]
    return _cbor.dumps(value)
