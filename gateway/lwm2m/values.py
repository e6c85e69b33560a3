"""Resource values as Python types, and the conversions every codec shares.

One Python type per LwM2M data type, so decoded values can go straight into a JSON
telemetry payload (after :func:`to_json_value`) and so ``decode(encode(x)) == x``:

===================  ==========================================================
LwM2M type           Python value
===================  ==========================================================
Integer              ``int`` (-2**63 .. 2**63-1)
Unsigned Integer     ``int`` (0 .. 2**64-1)
Float                ``float``
Boolean              ``bool``
String, Corelnk      ``str``
Opaque               ``bytes``
Time                 ``int`` seconds since the Unix epoch
Objlnk               :class:`ObjLink` (``str()`` gives ``"oid:iid"``)
===================  ==========================================================
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Union

from .errors import FormatError
from .objects import ResourceType
from .path import MAX_ID

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True, order=True)
class ObjLink:
    """An object link ``oid:iid``; ``65535:65535`` is the null link."""

    object_id: int
    instance_id: int

    def __post_init__(self) -> None:
        for v in (self.object_id, self.instance_id):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_ID:
                raise FormatError(f"object link id {v!r} is not in 0..{MAX_ID}")

    def __str__(self) -> str:
        return f"{self.object_id}:{self.instance_id}"

    @classmethod
    def parse(cls, text: str) -> "ObjLink":
        m = _OBJLNK_RE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise FormatError(f"object link {text!r} is not of the form oid:iid")
        return cls(int(m.group(1)), int(m.group(2)))


NULL_OBJLINK = ObjLink(MAX_ID, MAX_ID)

Value = Union[int, float, bool, str, bytes, ObjLink]

_OBJLNK_RE = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_NUMBER_TEXT = 400  # longer numeric text is rejected before int()/float() see it


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded (or to-be-encoded) value with its path and optional time.

    ``time`` is seconds as SenML resolves it (base time + time). RFC 8428 §4.5.3: values
    below 2**28 are relative to "now" (0 or absent means now, negative means the past);
    larger values are absolute Unix times. Formats without time give ``None``.
    """

    path: str
    value: Value
    time: float | int | None = None


# ---------------------------------------------------------------------------------------
# Text <-> numbers (plain-text format, lenient JSON)
# ---------------------------------------------------------------------------------------

def parse_int_text(text: str, what: str) -> int:
    t = text.strip()
    if len(t) > _MAX_NUMBER_TEXT or not _INT_RE.fullmatch(t):
        raise FormatError(f"{what}: {_show(text)} is not an integer")
    return int(t)


def parse_float_text(text: str, what: str) -> float:
    t = text.strip()
    if len(t) > _MAX_NUMBER_TEXT or not _FLOAT_RE.fullmatch(t):
        raise FormatError(f"{what}: {_show(text)} is not a decimal number")
    value = float(t)
    if math.isinf(value):
        raise FormatError(f"{what}: {_show(text)} is out of the float range")
    return value


def number_from_text(text: str) -> int | float | None:
    """An int or float from numeric text, or None (lenient JSON number fields)."""
    t = text.strip()
    if len(t) > _MAX_NUMBER_TEXT:
        return None
    if _INT_RE.fullmatch(t):
        return int(t)
    if _FLOAT_RE.fullmatch(t):
        value = float(t)
        return value if not math.isinf(value) else None
    return None


def float_to_text(value: float, what: str) -> str:
    """Shortest decimal that reads back as the same double, without an exponent."""
    if not math.isfinite(value):
        raise FormatError(f"{what}: {value!r} cannot be written as a decimal number")
    text = format(Decimal(repr(value)), "f")
    if "." not in text:
        text += ".0"
    return text


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


# ---------------------------------------------------------------------------------------
# Base64 (text format, LwM2M JSON "sv", SenML JSON "vd")
# ---------------------------------------------------------------------------------------

_B64_RE = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def b64decode_lenient(text: str, what: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (devices send all four)."""
    t = "".join(text.split())
    if not _B64_RE.fullmatch(t):
        raise FormatError(f"{what}: {_show(text)} is not base64")
    t = t.rstrip("=")
    if len(t) % 4 == 1:
        raise FormatError(f"{what}: {_show(text)} is not base64 (bad length)")
    t = t.replace("-", "+").replace("_", "/") + "=" * (-len(t) % 4)
    try:
        return base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what}: {_show(text)} is not base64") from None


def b64encode_std(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64encode_url(data: bytes) -> str:
    """RFC 8428 SenML ``vd``: URL-safe alphabet, padding omitted."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


# ---------------------------------------------------------------------------------------
# Conversion to a resource's type
# ---------------------------------------------------------------------------------------

def python_type_of(value: object) -> ResourceType | None:
    """The LwM2M type a Python value stands for when no definition says otherwise."""
    if isinstance(value, bool):
        return ResourceType.BOOLEAN
    if isinstance(value, int):
        return ResourceType.INTEGER
    if isinstance(value, float):
        return ResourceType.FLOAT
    if isinstance(value, str):
        return ResourceType.STRING
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ResourceType.OPAQUE
    if isinstance(value, ObjLink):
        return ResourceType.OBJLNK
    return None


def check_plain(value: object, what: str) -> Value:
    """Validate a value of unknown resource type: one of the supported Python types."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool) or isinstance(value, (str, bytes, ObjLink)):
        return value  # type: ignore[return-value]
    if isinstance(value, int):
        if not INT64_MIN <= value <= UINT64_MAX:
            raise FormatError(f"{what}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    raise FormatError(f"{what}: {type(value).__name__} is not a LwM2M value type")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal, Fraction)) and not isinstance(value, bool)


def _integral(value: object, what: str, kind: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal, Fraction)):
        if isinstance(value, float) and not math.isfinite(value):
            raise FormatError(f"{what}: {value!r} is not {kind}")
        if value == int(value):
            return int(value)
        raise FormatError(f"{what}: {value} is not a whole number ({kind} expected)")
    raise FormatError(f"{what}: {_type_name(value)} given where {kind} is expected")


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "opaque bytes"
    if isinstance(value, ObjLink):
        return "object link"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def convert(value: object, rtype: ResourceType | None, what: str) -> Value:
    """Turn a value from a self-describing format (or a caller) into ``rtype``'s Python type.

    Conversions are those that lose nothing: a whole float to Integer, a number to
    Float, 0/1 or "0"/"1"/"true"/"false" to Boolean, numeric text to numbers,
    ``"oid:iid"`` to an object link. Anything else is a :class:`FormatError`.
    ``rtype=None`` (unknown or executable resource) keeps the value's own type.
    """
    if rtype is None:
        if isinstance(value, (Decimal, Fraction)):
            return float(value)
        if isinstance(value, _dt.datetime):
            return _time_from_datetime(value)
        return check_plain(value, what)

    if rtype is ResourceType.INTEGER or rtype is ResourceType.UNSIGNED_INTEGER:
        kind = "an integer" if rtype is ResourceType.INTEGER else "an unsigned integer"
        n = parse_int_text(value, what) if isinstance(value, str) else (
            _integral(value, what, kind) if _is_number(value) else None)
        if n is None:
            raise FormatError(f"{what}: {_type_name(value)} given where {kind} is expected")
        lo, hi = (INT64_MIN, INT64_MAX) if rtype is ResourceType.INTEGER else (0, UINT64_MAX)
        if not lo <= n <= hi:
            raise FormatError(f"{what}: {n} is out of range for {rtype.value} ({lo}..{hi})")
        return n

    if rtype is ResourceType.FLOAT:
        if isinstance(value, str):
            return parse_float_text(value, what)
        if _is_number(value):
            try:
                return float(value)  # type: ignore[arg-type]
            except OverflowError:
                raise FormatError(f"{what}: {value} is out of the float range") from None
        raise FormatError(f"{what}: {_type_name(value)} given where a float is expected")

    if rtype is ResourceType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            key = value.strip().lower()
            if key in ("1", "true"):
                return True
            if key in ("0", "false"):
                return False
            raise FormatError(f"{what}: {_show(value)} is not a boolean (0, 1, true or false)")
        raise FormatError(f"{what}: {_type_name(value)} given where a boolean is expected")

    if rtype is ResourceType.STRING or rtype is ResourceType.CORELNK:
        if isinstance(value, str):
            return value
        raise FormatError(f"{what}: {_type_name(value)} given where a string is expected")

    if rtype is ResourceType.OPAQUE:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise FormatError(f"{what}: {_type_name(value)} given where opaque bytes are expected")

    if rtype is ResourceType.TIME:
        if isinstance(value, _dt.datetime):
            return _time_from_datetime(value)
        if isinstance(value, str):
            n = parse_int_text(value, what)
        elif _is_number(value):
            if isinstance(value, float) and not math.isfinite(value):
                raise FormatError(f"{what}: {value!r} is not a valid time")
            n = math.floor(value)  # type: ignore[arg-type]
        else:
            raise FormatError(f"{what}: {_type_name(value)} given where a time is expected")
        if not INT64_MIN <= n <= INT64_MAX:
            raise FormatError(f"{what}: time {n} does not fit in 64 bits")
        return n

    if rtype is ResourceType.OBJLNK:
        if isinstance(value, ObjLink):
            return value
        if isinstance(value, str):
            try:
                return ObjLink.parse(value.strip())
            except FormatError as exc:
                raise FormatError(f"{what}: {exc}") from None
        if isinstance(value, tuple) and len(value) == 2:
            try:
                return ObjLink(*value)
            except (FormatError, TypeError) as exc:
                raise FormatError(f"{what}: {exc}") from None
        raise FormatError(f"{what}: {_type_name(value)} given where an object link is expected")

    raise FormatError(f"{what}: unsupported resource type {rtype!r}")  # pragma: no cover


def _time_from_datetime(value: _dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return math.floor(value.timestamp())


# ---------------------------------------------------------------------------------------
# JSON rendering for telemetry events
# ---------------------------------------------------------------------------------------

def to_json_value(value: Value) -> object:
    """A JSON-safe form: bytes as standard base64, object links as ``"oid:iid"``,
    NaN and infinities as ``None`` (JSON has no such numbers)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b64encode_std(bytes(value))
    if isinstance(value, ObjLink):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def values_to_json(values: dict[str, Value]) -> dict[str, object]:
    """``{"/3303/0/5700": 21.5, ...}`` ready for ``json.dumps`` (telemetry payloads)."""
    return {path: to_json_value(v) for path, v in values.items()}
