"""Python equivalent of the 1NCE C SDK's ``os_energy_save``.

The SDK (``nce_iot_c_sdk.c``) builds an Energy Saver payload as: byte 0 is the
selector the firmware chose (the low byte of an ``int``), then each value's
bytes in the device's native order (little-endian on every supported MCU),
``template_length`` bytes per value.  The template on the gateway must read
the values with ``"byteorder": "little"`` and the same lengths.

    >>> os_energy_save(1, U8(99), U8(84), Str("2.2.1")).hex()
    '016354322e322e31'

Differences from the C code, on purpose: values that do not fit their length
raise ValueError instead of being cut (the SDK's own check only compares an
integer with its first byte), and the payload is returned, not copied into a
caller's buffer.  Like the SDK, a call without values is an error, and a
string may not be longer than 50 bytes (``NCE_SDK_MAX_STRING_SIZE``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "EType",
    "Element",
    "Char",
    "Integer",
    "Float",
    "String",
    "U8",
    "I8",
    "U16",
    "I16",
    "U32",
    "I32",
    "U64",
    "I64",
    "F32",
    "F64",
    "Str",
    "os_energy_save",
    "template_for",
    "MAX_STRING_SIZE",
]

MAX_STRING_SIZE = 50  # NCE_SDK_MAX_STRING_SIZE


class EType(Enum):
    """The SDK's ``enum E_Type``."""

    CHAR = "char"
    FLOAT = "float"
    INTEGER = "integer"
    STRING = "string"


@dataclass(frozen=True)
class Element:
    """The SDK's ``Element2byte_gen_t``: a value, its C type and its length on the wire."""

    type: EType
    value: Any
    template_length: int
    signed: bool = True

    def to_bytes(self) -> bytes:
        n = self.template_length
        if self.type is EType.INTEGER:
            if isinstance(self.value, bool) or not isinstance(self.value, int):
                raise ValueError(f"integer element needs an int, not {self.value!r}")
            try:
                return self.value.to_bytes(n, "little", signed=self.signed)
            except OverflowError:
                kind = "signed" if self.signed else "unsigned"
                raise ValueError(f"{self.value} does not fit in {n} byte(s) {kind}") from None
        if self.type is EType.FLOAT:
            fmt = {4: "<f", 8: "<d"}.get(n)
            if fmt is None:
                raise ValueError(f"a float is 4 or 8 bytes, not {n}")
            try:
                return struct.pack(fmt, self.value)
            except (OverflowError, struct.error) as e:
                raise ValueError(f"{self.value!r} is not a {n}-byte float: {e}") from None
        if self.type is EType.CHAR:
            v = self.value
            if isinstance(v, str):
                raw = v.encode("utf-8")
                if len(raw) != 1:
                    raise ValueError(f"a char is one byte; {v!r} is {len(raw)}")
                return raw
            if isinstance(v, int) and not isinstance(v, bool) and -128 <= v <= 255:
                return bytes([v & 0xFF])
            raise ValueError(f"a char is one byte, not {v!r}")
        raw = self.value.encode("utf-8") if isinstance(self.value, str) else bytes(self.value)
        if n > MAX_STRING_SIZE:
            raise ValueError(f"a string element is at most {MAX_STRING_SIZE} bytes, not {n}")
        if len(raw) > n:
            raise ValueError(f"{self.value!r} is {len(raw)} bytes, longer than its template length {n}")
        return raw + bytes(n - len(raw))  # the SDK's char array is zero-filled


def Char(value: str | int) -> Element:
    return Element(EType.CHAR, value, 1)


def Integer(value: int, template_length: int = 4, signed: bool = True) -> Element:
    if template_length not in (1, 2, 4, 8):
        raise ValueError(f"an integer is 1, 2, 4 or 8 bytes, not {template_length}")
    return Element(EType.INTEGER, value, template_length, signed)


def Float(value: float, template_length: int = 4) -> Element:
    return Element(EType.FLOAT, value, template_length)


def String(value: str | bytes, template_length: int | None = None) -> Element:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return Element(EType.STRING, value, len(raw) if template_length is None else template_length)


def U8(v: int) -> Element:
    return Integer(v, 1, signed=False)


def I8(v: int) -> Element:
    return Integer(v, 1)


def U16(v: int) -> Element:
    return Integer(v, 2, signed=False)


def I16(v: int) -> Element:
    return Integer(v, 2)


def U32(v: int) -> Element:
    return Integer(v, 4, signed=False)


def I32(v: int) -> Element:
    return Integer(v, 4)


def U64(v: int) -> Element:
    return Integer(v, 8, signed=False)


def I64(v: int) -> Element:
    return Integer(v, 8)


def F32(v: float) -> Element:
    return Float(v, 4)


def F64(v: float) -> Element:
    return Float(v, 8)


def Str(s: str | bytes, length: int | None = None) -> Element:
    return String(s, length)


def os_energy_save(selector: int, *values: Element) -> bytes:
    """The payload ``os_energy_save(packet, selector, n, values...)`` writes."""
    if isinstance(selector, bool) or not isinstance(selector, int) or not -128 <= selector <= 255:
        raise ValueError(f"the selector is one byte (-128..255), not {selector!r}")
    if not values:
        raise ValueError("os_energy_save needs at least one value (the SDK reports a conversion error)")
    out = bytearray([selector & 0xFF])
    for e in values:
        if not isinstance(e, Element):
            raise TypeError(f"values must be Elements (U8(...), Str(...), ...), not {type(e).__name__}")
        out += e.to_bytes()
    return bytes(out)


def template_for(selector: int, fields: list[tuple[str, Element]], comment: str | None = None) -> dict:
    """A BCL template that translates ``os_energy_save(selector, *elements)``.

    `fields` pairs each asset name with the element the firmware sends (its
    value is ignored; only type and length matter).
    """
    do: list[dict] = []
    pos = 1
    for asset, e in fields:
        n = e.template_length
        if e.type is EType.INTEGER:
            sel = {"type": "int" if e.signed else "uint", "bytelength": n, "byteorder": "little"}
        elif e.type is EType.FLOAT:
            sel = {"type": "float", "bytelength": n, "byteorder": "little"}
        elif e.type is EType.CHAR:
            sel = {"type": "string", "bytelength": 1}
        else:
            sel = {"type": "string", "bytelength": n}
        do.append({"asset": asset, "value": {"byte": pos, **sel}})
        pos += n
    case: dict = {"case": selector & 0xFF if selector >= 0 else selector, "do": do}
    if comment:
        case["comment"] = comment
    return {"sense": [{"switch": {"byte": 0, "bytelength": 1, "type": "uint" if selector >= 0 else "int"}, "on": [case]}]}
