"""LwM2M JSON, content format 11543 (and 1543 from 1.0 drafts), LwM2M 1.0 Core §6.4.4.

``{"bn": "/3/0/", "bt": 25462634, "e": [{"n": "0", "sv": "..."}, {"n": "9", "v": 100},
{"n": "1/2", "v": 22.4, "t": -5}]}`` with values in ``v`` (numbers and Time), ``bv``
(Boolean), ``sv`` (String, Corelnk, and Opaque as standard base64) and ``ov`` (object
link ``"oid:iid"``).

Leniency for old clients: ``v``, ``t`` and ``bt`` given as numeric strings (as in the
1.0 draft examples) are accepted; names follow the same resolution as SenML (see
:func:`senml.name_to_path`).
"""

from __future__ import annotations

from ..errors import FormatError
from ..objects import ObjectRegistry, ResourceType
from ..path import LwM2MPath
from ..values import ObjLink, Record, b64decode_lenient, b64encode_std, convert, number_from_text
from . import _json
from ._cbor import is_number
from .senml import from_lwm2m, name_to_path

FMT = "LwM2M JSON"
_VALUE_KEYS = ("v", "bv", "sv", "ov")
MAX_ENTRIES = 10_000


def _number(value: object, where: str, field: str) -> int | float:
    if is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        n = number_from_text(value)
        if n is not None:
            return n
    raise FormatError(f"{where}: {field!r} must be a number", field=field)


def decode(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    root = _json.loads(payload, FMT)
    if not isinstance(root, dict):
        raise FormatError(f'{FMT}: the payload must be an object with an "e" array')
    if "e" not in root:
        raise FormatError(f'{FMT}: missing the "e" array', field="e")
    entries = root["e"]
    if not isinstance(entries, list):
        raise FormatError(f'{FMT}: "e" must be an array', field="e")
    if len(entries) > MAX_ENTRIES:
        raise FormatError(f"{FMT}: {len(entries)} entries is over the limit of {MAX_ENTRIES}", field="e")
    bn = root.get("bn")
    if bn is not None and not isinstance(bn, str):
        raise FormatError(f'{FMT}: "bn" must be a string', field="bn")
    bt = _number(root["bt"], FMT, "bt") if "bt" in root else None
    out = []
    for i, entry in enumerate(entries):
        where = f"{FMT}: entry {i}"
        if not isinstance(entry, dict):
            raise FormatError(f"{where} is not an object", field=f"e/{i}")
        n = entry.get("n", "")
        if not isinstance(n, str):
            raise FormatError(f"{where}: 'n' must be a string", field=f"e/{i}/n")
        keys = [k for k in _VALUE_KEYS if k in entry]
        if not keys:
            raise FormatError(f"{where} has no value (one of v, bv, sv, ov)", field=f"e/{i}")
        if len(keys) > 1:
            raise FormatError(f"{where} has more than one value ({', '.join(keys)})", field=f"e/{i}")
        t = _number(entry["t"], where, "t") if "t" in entry else None
        time = None if t is None and bt is None else (bt or 0) + (t or 0)
        text = name_to_path((bn or "") + n, bool(bn), base_path)
        try:
            path = LwM2MPath.parse(text)
        except FormatError as exc:
            raise FormatError(f"{where}: name {text!r} is not a LwM2M path ({exc})", field=f"e/{i}/n") from None
        if not path.startswith(base_path):
            raise FormatError(f"{where}: {path} is outside the requested path {base_path}", field=f"e/{i}/n")
        if len(path) < 3:
            raise FormatError(f"{where}: {path} is not a resource or resource instance path", field=f"e/{i}/n")
        rdef = registry.resource_at(path)
        rtype = rdef.type if rdef is not None else None
        key = keys[0]
        raw = entry[key]
        what = f"{where} ({path})"
        if key == "v":
            value: object = _number(raw, where, "v")
        elif key == "bv":
            if not isinstance(raw, bool) and rtype is not ResourceType.BOOLEAN:
                raise FormatError(f"{where}: 'bv' must be a boolean", field=f"e/{i}/bv")
            value = raw
        elif key == "ov":
            if not isinstance(raw, str):
                raise FormatError(f"{where}: 'ov' must be a string oid:iid", field=f"e/{i}/ov")
            try:
                value = ObjLink.parse(raw.strip())
            except FormatError as exc:
                raise FormatError(f"{where}: {exc}", field=f"e/{i}/ov") from None
        else:
            if not isinstance(raw, str):
                raise FormatError(f"{where}: 'sv' must be a string", field=f"e/{i}/sv")
            value = b64decode_lenient(raw, what) if rtype is ResourceType.OPAQUE else raw
        out.append(Record(str(path), convert(value, rtype, what), time))
    return out


def encode(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    items = from_lwm2m(records, base_path, registry, FMT)
    doc: dict[str, object] = {}
    entries = []
    for item in items:
        if "bn" in item:
            doc["bn"] = item.pop("bn")
        entry: dict[str, object] = {}
        if "n" in item:
            entry["n"] = item["n"]
        if "v" in item:
            entry["v"] = item["v"]
        elif "vb" in item:
            entry["bv"] = item["vb"]
        elif "vs" in item:
            entry["sv"] = item["vs"]
        elif "vd" in item:
            entry["sv"] = b64encode_std(item["vd"])  # type: ignore[arg-type]
        elif "vlo" in item:
            entry["ov"] = item["vlo"]
        if "t" in item:
            entry["t"] = item["t"]
        entries.append(entry)
    doc["e"] = entries
    return _json.dumps(doc, FMT)
