"""CBOR helpers shared by SenML CBOR (112) and single-value CBOR (60).

Decoding uses cbor2. Encoding is a small writer of our own because the bytes must be
deterministic and compact the way LwM2M peers and RFC 8428's example expect: map keys
in the order given (cbor2's canonical mode would sort them) and every float in the
shortest of half/single/double precision that keeps its exact value (cbor2's default
writes all floats as doubles).
"""

from __future__ import annotations

import io
import math
import struct
from decimal import Decimal
from fractions import Fraction

import cbor2

from ..errors import FormatError

MAX_DEPTH = 16


class Tagged:
    """A value to be written with a CBOR tag (e.g. tag 1 epoch time)."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: int, value: object) -> None:
        self.tag = tag
        self.value = value


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    if n <= 0xFF:
        return bytes([(major << 5) | 24, n])
    if n <= 0xFFFF:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n <= 0xFFFFFFFF:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    if n <= 0xFFFFFFFFFFFFFFFF:
        return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")
    raise FormatError(f"CBOR: integer {n} does not fit in 64 bits")


def _float(f: float) -> bytes:
    if math.isnan(f):
        return b"\xf9\x7e\x00"
    try:
        half = struct.pack(">e", f)
        if struct.unpack(">e", half)[0] == f:
            return b"\xf9" + half
    except (OverflowError, struct.error):
        pass
    try:
        single = struct.pack(">f", f)
        if struct.unpack(">f", single)[0] == f:
            return b"\xfa" + single
    except (OverflowError, struct.error):
        pass
    return b"\xfb" + struct.pack(">d", f)


def dumps(obj: object) -> bytes:
    """Encode ints, floats, bools, None, str, bytes, lists and (ordered) dicts."""
    out = bytearray()
    _write(obj, out, 0)
    return bytes(out)


def _write(obj: object, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FormatError("CBOR: nesting too deep")
    if obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif obj is None:
        out.append(0xF6)
    elif isinstance(obj, int):
        out += _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    elif isinstance(obj, float):
        out += _float(obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        out += _head(3, len(data)) + data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        out += _head(2, len(data)) + data
    elif isinstance(obj, (list, tuple)):
        out += _head(4, len(obj))
        for item in obj:
            _write(item, out, depth + 1)
    elif isinstance(obj, dict):
        out += _head(5, len(obj))
        for k, v in obj.items():
            _write(k, out, depth + 1)
            _write(v, out, depth + 1)
    elif isinstance(obj, Tagged):
        out += _head(6, obj.tag)
        _write(obj.value, out, depth + 1)
    else:
        raise FormatError(f"CBOR: cannot encode {type(obj).__name__}")


def loads(payload: bytes, what: str) -> object:
    """Decode exactly one CBOR data item; trailing bytes and junk are a FormatError.

    Semantic tags cbor2 understands are reduced to plain values: epoch/date-time tags
    (0, 1) become ``datetime``, decimal fractions (4) ``Decimal``; anything else tagged
    is left as ``cbor2.CBORTag`` for the caller to reject.
    """
    fp = io.BytesIO(payload)
    try:
        decoder = cbor2.CBORDecoder(fp)
        value = decoder.decode()
    except RecursionError:
        raise FormatError(f"{what}: nesting too deep") from None
    except Exception as exc:  # cbor2 raises several types on junk; all mean "malformed"
        raise FormatError(f"{what}: not valid CBOR ({_short(exc)}) near byte {fp.tell()}",
                          offset=fp.tell()) from None
    if fp.tell() != len(payload):
        extra = len(payload) - fp.tell()
        raise FormatError(f"{what}: {extra} trailing byte{'' if extra == 1 else 's'} after the CBOR item "
                          f"(at byte {fp.tell()})", offset=fp.tell())
    return value


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def is_number(v: object) -> bool:
    return isinstance(v, (int, float, Decimal, Fraction)) and not isinstance(v, bool)


def plain_number(v: object) -> int | float:
    """Decimal fractions and rationals become float (integral ones int)."""
    if isinstance(v, (Decimal, Fraction)):
        if v == int(v):
            return int(v)
        return float(v)
    return v  # type: ignore[return-value]


__all__ = ["Tagged", "dumps", "loads", "is_number", "plain_number"]
