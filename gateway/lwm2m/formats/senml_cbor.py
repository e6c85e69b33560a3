"""SenML CBOR, content format 112 (RFC 8428 §6, LwM2M 1.1 Core §7.4.6).

Integer map keys per RFC 8428 Table 4; the LwM2M object link label ``vlo`` has no
integer key and is written as the text key ``"vlo"``. Numbers are written as CBOR
integers when the value is an int and as the shortest exact float otherwise.
"""

from __future__ import annotations

from ..objects import ObjectRegistry
from ..path import LwM2MPath
from ..values import Record
from . import _cbor, senml

FMT = "SenML CBOR"


def decode(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    pack = senml.check_pack(_cbor.loads(payload, FMT), FMT)
    return senml.to_lwm2m(senml.resolve(pack, FMT), base_path, registry, FMT)


def encode(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    items = senml.from_lwm2m(records, base_path, registry, FMT)
    return _cbor.dumps([{senml.LABEL_TO_CBOR.get(k, k): v for k, v in item.items()} for item in items])


def pack_to_bytes(records: list[dict[str, object]]) -> bytes:
    """Generic SenML CBOR writer for already-built records (JSON label names)."""
    return _cbor.dumps([{senml.LABEL_TO_CBOR.get(k, k): v for k, v in r.items()} for r in records])
