"""SenML (RFC 8428) records and their LwM2M 1.1 meaning, shared by JSON (110) and CBOR (112).

Two layers, so each can be tested on its own:

* the SenML layer checks each record's labels and types and resolves base name, base
  time and base value into full records (RFC 8428 §4.6);
* the LwM2M layer maps resolved names to paths under the request path and values to
  the resources' types (Core §7.4.5/§7.4.6; object links use the extra label ``vlo``).

Choices where the specs are silent or loose: a name without a leading ``/`` and
without any base name is taken as relative to the request path; a record without a
value is an error (we only decode data, not Read-Composite path lists); ``s``, ``u``,
``bu``, ``ut`` and ``bver`` are checked for type and otherwise ignored; unknown labels
are ignored unless they end in ``_`` (RFC 8428 §4.4 "must understand").
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import cbor2

from ..errors import FormatError
from ..objects import ObjectRegistry, ResourceType
from ..path import LwM2MPath
from ..values import ObjLink, Record, Value, check_plain, convert, python_type_of
from ._cbor import is_number, plain_number

CBOR_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs",
               0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"}
LABEL_TO_CBOR = {name: key for key, name in CBOR_LABELS.items()}
VALUE_LABELS = ("v", "vs", "vb", "vd", "vlo")
_STRING_LABELS = {"bn", "bu", "n", "u", "vs", "vlo"}
_NUMBER_LABELS = {"bt", "bv", "bs", "v", "s", "t", "ut"}
MAX_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class Resolved:
    """A SenML record after base-field resolution (RFC 8428 §4.6)."""

    index: int
    name: str
    has_base_name: bool
    label: str  # which value label carried the value
    value: object
    time: int | float | None


# ---------------------------------------------------------------------------------------
# SenML layer
# ---------------------------------------------------------------------------------------

def check_pack(pack: object, fmt: str) -> list[dict[str, object]]:
    """Validate a decoded SenML pack (JSON array / CBOR array of maps) record by record.

    Returns records keyed by the JSON label names (CBOR integer keys translated).
    ``vd`` stays as given (base64 text in JSON, bytes in CBOR).
    """
    if not isinstance(pack, list):
        raise FormatError(f"{fmt}: the payload must be an array of records, not {_kind(pack)}")
    if len(pack) > MAX_RECORDS:
        raise FormatError(f"{fmt}: {len(pack)} records is over the limit of {MAX_RECORDS}")
    out = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise FormatError(f"{fmt}: record {i} is {_kind(rec)}, not a map", field=f"record {i}")
        clean: dict[str, object] = {}
        for key, value in rec.items():
            label = _label(key, i, fmt)
            if label is None:
                continue
            if label in clean:
                raise FormatError(f"{fmt}: record {i} has label {label!r} twice", field=f"record {i}")
            clean[label] = _check_label_value(label, value, i, fmt)
        out.append(clean)
    return out


def _label(key: object, i: int, fmt: str) -> str | None:
    if isinstance(key, int) and not isinstance(key, bool):
        if key in CBOR_LABELS:
            return CBOR_LABELS[key]
        return None  # RFC 8428 Table 4 is closed; ignore unknown integer keys
    if isinstance(key, str):
        if key in _STRING_LABELS or key in _NUMBER_LABELS or key in ("vb", "vd", "bver"):
            return key
        if key.endswith("_"):
            raise FormatError(f"{fmt}: record {i} has must-understand label {key!r} that is not supported",
                              field=f"record {i}/{key}")
        return None
    raise FormatError(f"{fmt}: record {i} has a key that is {_kind(key)}", field=f"record {i}")


def _check_label_value(label: str, value: object, i: int, fmt: str) -> object:
    field = f"record {i}/{label}"
    if isinstance(value, cbor2.CBORTag):
        value = value.value  # like Wakaama, ignore a semantic tag the label does not need
    if label in _STRING_LABELS:
        if not isinstance(value, str):
            raise FormatError(f"{fmt}: record {i}: {label!r} must be a string, not {_kind(value)}", field=field)
        return value
    if label in _NUMBER_LABELS:
        if isinstance(value, _dt.datetime):  # cbor2 turns tag 1 (epoch time) into a datetime
            value = value.timestamp() if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc).timestamp()
        if not is_number(value):
            raise FormatError(f"{fmt}: record {i}: {label!r} must be a number, not {_kind(value)}", field=field)
        return plain_number(value)
    if label == "vb":
        if not isinstance(value, bool):
            raise FormatError(f"{fmt}: record {i}: 'vb' must be a boolean, not {_kind(value)}", field=field)
        return value
    if label == "vd":
        want = str if "JSON" in fmt else bytes
        if not isinstance(value, want):
            raise FormatError(f"{fmt}: record {i}: 'vd' must be {'base64 text' if 'JSON' in fmt else 'a byte string'}, "
                              f"not {_kind(value)}", field=field)
        return value
    if label == "bver":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FormatError(f"{fmt}: record {i}: 'bver' must be a non-negative integer", field=field)
        return value
    return value  # pragma: no cover


def resolve(records: list[dict[str, object]], fmt: str) -> list[Resolved]:
    """Apply base name/time/value to each record (RFC 8428 §4.6)."""
    base_name = ""
    has_bn = False
    base_time: int | float | None = None
    base_value: int | float | None = None
    out = []
    for i, rec in enumerate(records):
        if "bn" in rec:
            base_name = rec["bn"]  # type: ignore[assignment]
            has_bn = True
        if "bt" in rec:
            base_time = rec["bt"]  # type: ignore[assignment]
        if "bv" in rec:
            base_value = rec["bv"]  # type: ignore[assignment]
        labels = [lab for lab in VALUE_LABELS if lab in rec]
        if not labels and base_value is not None:
            rec = {**rec, "v": 0}  # RFC 8428 §4.6: the base value alone is the value
            labels = ["v"]
        if not labels:
            raise FormatError(f"{fmt}: record {i} has no value (one of v, vs, vb, vd, vlo)", field=f"record {i}")
        if len(labels) > 1:
            raise FormatError(f"{fmt}: record {i} has more than one value ({', '.join(labels)})",
                              field=f"record {i}")
        label = labels[0]
        value = rec[label]
        if label == "v" and base_value is not None:
            value = base_value + value  # type: ignore[operator]
        t = rec.get("t")
        time = None if t is None and base_time is None else (base_time or 0) + (t or 0)  # type: ignore[operator]
        out.append(Resolved(i, base_name + str(rec.get("n", "")), has_bn, label, value, time))
    return out


def _kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (bytes, bytearray)):
        return "a byte string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a map"
    return type(v).__name__


# ---------------------------------------------------------------------------------------
# LwM2M layer
# ---------------------------------------------------------------------------------------

def name_to_path(name: str, has_base_name: bool, base_path: LwM2MPath) -> str:
    """Full path text for a resolved SenML / LwM2M JSON name.

    ``"/3/0/1"`` is absolute; with a base name but no leading slash (``"3/0/"+"1"``)
    it is absolute too; with no base name at all a bare ``"1"`` is relative to the
    request path (older clients send names relative to the request URI).
    """
    if name.startswith("/"):
        return name
    if not name and not has_base_name:
        return str(base_path)  # no name at all: the value of the requested resource
    if has_base_name or base_path.is_root:
        return "/" + name
    return f"{base_path}/{name}"


def to_lwm2m(resolved: list[Resolved], base_path: LwM2MPath, registry: ObjectRegistry,
             fmt: str, vd_decoder=None) -> list[Record]:
    """Map resolved records to LwM2M resource values under ``base_path``."""
    out = []
    for r in resolved:
        where = f"{fmt}: record {r.index}"
        text = name_to_path(r.name, r.has_base_name, base_path)
        try:
            path = LwM2MPath.parse(text)
        except FormatError as exc:
            raise FormatError(f"{where}: name {text!r} is not a LwM2M path ({exc})",
                              field=f"record {r.index}/n") from None
        if not path.startswith(base_path):
            raise FormatError(f"{where}: {path} is outside the requested path {base_path}",
                              field=f"record {r.index}/n")
        if len(path) < 3:
            raise FormatError(f"{where}: {path} is not a resource or resource instance path",
                              field=f"record {r.index}/n")
        rdef = registry.resource_at(path)
        rtype = rdef.type if rdef is not None else None
        value: object = r.value
        if r.label == "vd" and isinstance(value, str):
            value = vd_decoder(value, f"{where} (vd)") if vd_decoder else value
        elif r.label == "vlo":
            try:
                value = ObjLink.parse(value)  # type: ignore[arg-type]
            except FormatError as exc:
                raise FormatError(f"{where}: {exc}", field=f"record {r.index}/vlo") from None
        try:
            converted = convert(value, rtype, f"{where} ({path})")
        except FormatError as exc:
            raise FormatError(exc.message, field=f"record {r.index}/{r.label}") from None
        out.append(Record(str(path), converted, r.time))
    return out


def value_label(value: Value, rtype: ResourceType | None, where: str) -> tuple[str, object]:
    """The SenML label and the plain value to write for one resource value."""
    if rtype is None:
        value = check_plain(value, where)
        rtype = python_type_of(value)
    else:
        value = convert(value, rtype, where)
    if rtype in (ResourceType.INTEGER, ResourceType.UNSIGNED_INTEGER, ResourceType.FLOAT, ResourceType.TIME):
        return "v", value
    if rtype is ResourceType.BOOLEAN:
        return "vb", value
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        return "vs", value
    if rtype is ResourceType.OPAQUE:
        return "vd", bytes(value)  # type: ignore[arg-type]
    if rtype is ResourceType.OBJLNK:
        return "vlo", str(value)
    raise FormatError(f"{where}: cannot encode {value!r}")  # pragma: no cover


def from_lwm2m(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry,
               fmt: str) -> list[dict[str, object]]:
    """SenML records (JSON label names) for values under ``base_path``.

    The first record carries the base name: ``"/3/0/"`` with relative names below it,
    or the full path alone when a single resource is encoded (as in the Core spec and
    Leshan); at the root, names are full paths. Times become ``t`` per record.
    """
    paths = []
    for rec in records:
        path = LwM2MPath.of(rec.path)
        if not path.startswith(base_path):
            raise FormatError(f"{fmt}: {path} is not under the requested path {base_path}")
        if len(path) < 3:
            raise FormatError(f"{fmt}: {path} is not a resource or resource instance path")
        paths.append(path)
    exact = [p == base_path for p in paths]
    if any(exact) and not all(exact):
        raise FormatError(f"{fmt}: values both at {base_path} and below it")
    out: list[dict[str, object]] = []
    prefix = "" if base_path.is_root else str(base_path) + "/"
    for i, (rec, path) in enumerate(zip(records, paths, strict=True)):
        rdef = registry.resource_at(path)
        if rdef is not None and rdef.type is None:
            raise FormatError(f"{fmt}: {path} is executable and has no value to encode")
        label, plain = value_label(rec.value, rdef.type if rdef is not None else None, f"{fmt}: {path}")
        item: dict[str, object] = {}
        if base_path.is_root:
            item["n"] = str(path)
        elif all(exact):
            if i == 0:
                item["bn"] = str(base_path)
        else:
            if i == 0:
                item["bn"] = prefix
            item["n"] = str(path)[len(prefix):]
        item[label] = plain
        if rec.time is not None:
            item["t"] = rec.time
        out.append(item)
    return out
