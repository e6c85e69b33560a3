"""LwM2M data model and content-format codecs (pure: no I/O, no clock).

Public API, for the LwM2M server, the CLI and the emulator::

    from gateway.lwm2m import (LwM2MPath, ObjectRegistry, FormatError, ContentFormat,
                               decode, encode, decode_records, encode_records, Record,
                               ObjLink, parse_link_format, parse_registration)

    values = decode(ContentFormat.TLV, payload, "/3/0", registry)   # {"/3/0/0": "...", ...}
    payload = encode(ContentFormat.SENML_JSON, {"/3303/0/5700": 21.5}, "/3303/0", registry)

The LwM2M server itself (bootstrap, registrations, Send, Observe, device actions) lives in the
modules beside these and is wired by ``service.LwM2MService``; see docs/lwm2m.md.
"""

from .errors import FormatError, ModelError, PathError
from .formats import (MULTI_VALUE, SUPPORTED, TIMED, ContentFormat, decode, decode_records, encode,
                      encode_records)
from .linkformat import (Link, ObjectInfo, Registration, format_link_format, parse_link_format,
                         parse_registration)
from .objects import (ObjectDef, ObjectRegistry, Operations, ResourceDef, ResourceType,
                      default_registry, parse_ddf)
from .path import ROOT, LwM2MPath
from .values import NULL_OBJLINK, ObjLink, Record, Value, to_json_value, values_to_json

__all__ = [
    "ContentFormat", "FormatError", "Link", "LwM2MPath", "ModelError", "MULTI_VALUE", "NULL_OBJLINK",
    "ObjectDef", "ObjectInfo", "ObjectRegistry", "ObjLink", "Operations", "PathError", "Record",
    "Registration", "ResourceDef", "ResourceType", "ROOT", "SUPPORTED", "TIMED", "Value",
    "decode", "decode_records", "default_registry", "encode", "encode_records",
    "format_link_format", "parse_ddf", "parse_link_format", "parse_registration",
    "to_json_value", "values_to_json",
]
