"""construct fields for BCL selectors, and raw-value to JSON conversion.

Every fixed-width read of the language maps to one of construct's own field
types (``Int16sb``, ``Float32l``, ``Flag``, ``Bytes`` ...).  The reference
decoder parses with them, the encoder builds with them, and the fast decoder
(`bcl.codegen`) takes their ``struct`` format codes, so the three agree on
what every byte means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import construct as c

from .floats import finite_or_none, shortest_float32
from .model import ValueType

__all__ = ["field_for", "format_code", "to_json_value", "NUMERIC_FIELDS"]

_ORDER = {"big": "b", "little": "l"}

# (type, bytelength, byteorder) -> construct field, for every numeric read.
NUMERIC_FIELDS: dict[tuple[ValueType, int, str], c.Construct] = {}
for _order, _s in _ORDER.items():
    for _n in (1, 2, 4, 8):
        NUMERIC_FIELDS[(ValueType.INT, _n, _order)] = getattr(c, f"Int{_n * 8}s{_s}")
        NUMERIC_FIELDS[(ValueType.UINT, _n, _order)] = getattr(c, f"Int{_n * 8}u{_s}")
    NUMERIC_FIELDS[(ValueType.FLOAT, 4, _order)] = getattr(c, f"Float32{_s}")
    NUMERIC_FIELDS[(ValueType.FLOAT, 8, _order)] = getattr(c, f"Float64{_s}")
    NUMERIC_FIELDS[(ValueType.BOOLEAN, 1, _order)] = c.Flag


def field_for(vtype: ValueType, length: int, byteorder: str) -> c.Construct | None:
    """The construct field reading `length` bytes as `vtype`, or None if the
    type cannot be read from that many bytes (e.g. an int from 3 bytes)."""
    if vtype in (ValueType.STRING, ValueType.HEX):
        return c.Bytes(length) if length >= 0 else None
    return NUMERIC_FIELDS.get((vtype, length, byteorder))


def format_code(vtype: ValueType, length: int) -> str:
    """The ``struct`` code (no byte-order prefix) of a numeric field.

    Taken from construct's own FormatField so the fast decoder reads exactly
    what construct reads; ``Flag`` is not a FormatField and maps to ``?``
    (0x00 is false, any other byte true, as in construct).
    """
    if vtype is ValueType.BOOLEAN:
        return "?"
    fld = NUMERIC_FIELDS[(vtype, length, "big")]
    return fld.fmtstr[1:]  # type: ignore[attr-defined]


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8")  # UnicodeDecodeError is turned into TranslationError by callers


_CONVERT: dict[ValueType, Callable[[Any, int], Any]] = {
    ValueType.INT: lambda v, n: v,
    ValueType.UINT: lambda v, n: v,
    ValueType.FLOAT: lambda v, n: shortest_float32(v) if n == 4 else finite_or_none(v),
    ValueType.BOOLEAN: lambda v, n: v,
    ValueType.STRING: lambda v, n: _utf8(v),
    ValueType.HEX: lambda v, n: v.hex(),
}


def to_json_value(vtype: ValueType, parsed: Any, length: int) -> Any:
    """Turn what construct parsed into the JSON value of SPEC §3."""
    return _CONVERT[vtype](parsed, length)
