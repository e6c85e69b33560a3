"""SenML JSON, content format 110 (RFC 8428 §5, LwM2M 1.1 Core §7.4.5).

``vd`` is written as RFC 8428 says (base64url, no padding) and read in any of the four
base64 spellings, because LwM2M 1.1 only said "base64" and clients differ.
"""

from __future__ import annotations

from ..objects import ObjectRegistry
from ..path import LwM2MPath
from ..values import Record, b64decode_lenient, b64encode_url
from . import _json, senml

FMT = "SenML JSON"


def decode(payload: bytes, base_path: LwM2MPath, registry: ObjectRegistry) -> list[Record]:
    pack = senml.check_pack(_json.loads(payload, FMT), FMT)
    return senml.to_lwm2m(senml.resolve(pack, FMT), base_path, registry, FMT, b64decode_lenient)


def encode(records: list[Record], base_path: LwM2MPath, registry: ObjectRegistry) -> bytes:
    items = senml.from_lwm2m(records, base_path, registry, FMT)
    for item in items:
        if "vd" in item:
            item["vd"] = b64encode_url(item["vd"])  # type: ignore[arg-type]
    return _json.dumps(items, FMT)
