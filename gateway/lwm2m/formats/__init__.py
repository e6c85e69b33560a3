"""LwM2M content formats: one entry point to decode and encode resource values.

Every format module has the same two functions over :class:`~gateway.lwm2m.values.Record`
lists; this module picks the module by CoAP Content-Format number and converts to and
from ``{"/3303/0/5700": 21.5}`` dictionaries, the form the server works with.
"""

from __future__ import annotations

import enum
import itertools
from typing import Callable, Iterable, Mapping

from ..errors import FormatError
from ..objects import ObjectRegistry, default_registry
from ..path import LwM2MPath
from ..values import Record, Value
from . import lwm2m_json, senml_cbor, senml_json, single, tlv


class ContentFormat(enum.IntEnum):
    """CoAP Content-Format numbers LwM2M uses (IANA registry; 15xx from LwM2M 1.0 drafts)."""

    TEXT = 0
    LINK_FORMAT = 40
    OPAQUE = 42
    CBOR = 60
    SENML_JSON = 110
    SENML_CBOR = 112
    OLD_TEXT = 1541
    OLD_TLV = 1542
    OLD_JSON = 1543
    OLD_OPAQUE = 1544
    TLV = 11542
    LWM2M_JSON = 11543


_Decoder = Callable[[bytes, LwM2MPath, ObjectRegistry], list[Record]]
_Encoder = Callable[[list[Record], LwM2MPath, ObjectRegistry], bytes]

_CODECS: dict[int, tuple[_Decoder, _Encoder]] = {
    ContentFormat.TEXT: (single.decode_text, single.encode_text),
    ContentFormat.OLD_TEXT: (single.decode_text, single.encode_text),
    ContentFormat.OPAQUE: (single.decode_opaque, single.encode_opaque),
    ContentFormat.OLD_OPAQUE: (single.decode_opaque, single.encode_opaque),
    ContentFormat.CBOR: (single.decode_cbor, single.encode_cbor),
    ContentFormat.TLV: (tlv.decode, tlv.encode),
    ContentFormat.OLD_TLV: (tlv.decode, tlv.encode),
    ContentFormat.LWM2M_JSON: (lwm2m_json.decode, lwm2m_json.encode),
    ContentFormat.OLD_JSON: (lwm2m_json.decode, lwm2m_json.encode),
    ContentFormat.SENML_JSON: (senml_json.decode, senml_json.encode),
    ContentFormat.SENML_CBOR: (senml_cbor.decode, senml_cbor.encode),
}

#: Content formats that carry resource values (link format 40 is parsed by linkformat).
SUPPORTED: frozenset[int] = frozenset(_CODECS)
#: Formats that can hold more than one value (object, instance, multiple resource).
MULTI_VALUE: frozenset[int] = frozenset({ContentFormat.TLV, ContentFormat.OLD_TLV, ContentFormat.LWM2M_JSON,
                                          ContentFormat.OLD_JSON, ContentFormat.SENML_JSON,
                                          ContentFormat.SENML_CBOR})
#: Formats that carry times (SenML ``bt``/``t``, LwM2M JSON ``bt``/``t``).
TIMED: frozenset[int] = frozenset({ContentFormat.LWM2M_JSON, ContentFormat.OLD_JSON,
                                   ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR})

MAX_PAYLOAD = 1024 * 1024


def _codec(content_format: int) -> tuple[_Decoder, _Encoder]:
    try:
        return _CODECS[content_format]
    except (KeyError, TypeError):
        raise FormatError(f"unsupported content format {content_format!r}") from None


def _ctx(base_path: LwM2MPath | str, registry: ObjectRegistry | None) -> tuple[LwM2MPath, ObjectRegistry]:
    return LwM2MPath.of(base_path), (registry if registry is not None else default_registry())


def decode_records(content_format: int, payload: bytes, base_path: LwM2MPath | str,
                   registry: ObjectRegistry | None = None) -> list[Record]:
    """Every value in the payload, in payload order, with its time where the format has one.

    Use this for Send and notifications that may carry several timestamped values of
    one path. ``registry=None`` uses the bundled object definitions.
    """
    decoder, _ = _codec(content_format)
    path, reg = _ctx(base_path, registry)
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise FormatError(f"payload must be bytes, not {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD:
        raise FormatError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    return decoder(bytes(payload), path, reg)


def decode(content_format: int, payload: bytes, base_path: LwM2MPath | str,
           registry: ObjectRegistry | None = None) -> dict[str, Value]:
    """``{"/3/0/0": "Open Mobile Alliance", "/3/0/7/1": 5000, ...}`` from a payload.

    Keys are full resource or resource-instance paths in payload order. If a path occurs
    more than once (timestamped SenML), the value with the latest time wins, and among
    equal or missing times the last one in the payload.
    """
    out: dict[str, Value] = {}
    when: dict[str, tuple[int, float]] = {}
    for rec in decode_records(content_format, payload, base_path, registry):
        t = _comparable_time(0 if rec.time is None else rec.time)  # no time means "now"
        if rec.path in out and t < when[rec.path]:
            continue
        out[rec.path] = rec.value
        when[rec.path] = t
    return out


def _comparable_time(t: float) -> tuple[int, float]:
    # RFC 8428: below 2**28 a time is relative to now. With no clock here, order
    # "now + t" after every absolute time, so current values beat historical ones.
    return (1, float(t)) if abs(t) < 2**28 else (0, float(t))


def encode_records(content_format: int, records: Iterable[Record], base_path: LwM2MPath | str,
                   registry: ObjectRegistry | None = None) -> bytes:
    """Encode values in the given order; times are kept by SenML and LwM2M JSON."""
    _, encoder = _codec(content_format)
    path, reg = _ctx(base_path, registry)
    recs = list(records)
    if content_format not in TIMED and any(r.time is not None for r in recs):
        raise FormatError(f"content format {content_format} cannot carry times")
    try:
        return encoder(recs, path, reg)
    except UnicodeEncodeError as exc:
        raise FormatError(f"a string value is not valid Unicode ({exc.reason})") from None


def encode(content_format: int, values: Mapping[LwM2MPath | str, Value], base_path: LwM2MPath | str,
           registry: ObjectRegistry | None = None) -> bytes:
    """Encode ``{path: value}`` for a response or a Write on ``base_path``, ordered by path."""
    items = []
    for key, value in values.items():
        items.append((LwM2MPath.of(key), value))
    items.sort(key=lambda kv: kv[0])
    for (a, _), (b, _) in itertools.pairwise(items):
        if a == b:
            raise FormatError(f"two values for {a}")
    return encode_records(content_format, [Record(str(p), v) for p, v in items], base_path, registry)


__all__ = ["ContentFormat", "SUPPORTED", "MULTI_VALUE", "TIMED", "decode", "decode_records",
           "encode", "encode_records"]
