"""LwM2M object model: object and resource definitions loaded from OMA-style DDF XML.

The codecs need a resource's type to read TLV bytes, to pick SenML value labels and to
parse plain text; the server needs operations and the single/multiple flag. Definitions
live as XML under ``models/`` (one object per file, the OMA registry format) and users
can add or replace objects with their own directory of registry files.

User-supplied XML is parsed defensively: size-capped, and any DOCTYPE or ENTITY
declaration is refused before the parser sees it (no entity expansion, no external
fetches).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from importlib import resources as _resources
from pathlib import Path
from typing import Iterable, Iterator, Mapping
from xml.etree import ElementTree as ET

from .errors import ModelError
from .path import MAX_ID, LwM2MPath

MAX_XML_BYTES = 2 * 1024 * 1024
MAX_FILES_PER_DIR = 5000


class ResourceType(str, enum.Enum):
    """Resource data types of LwM2M 1.1 (Core Appendix C); executables have none."""

    STRING = "String"
    INTEGER = "Integer"
    UNSIGNED_INTEGER = "Unsigned Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    OPAQUE = "Opaque"
    TIME = "Time"
    OBJLNK = "Objlnk"
    CORELNK = "Corelnk"

    @classmethod
    def from_ddf(cls, text: str) -> "ResourceType | None":
        """Map a DDF ``<Type>`` text (case-insensitive) to a type; empty means none."""
        key = " ".join(text.split()).lower()
        if key in ("", "none"):
            return None
        return _TYPE_ALIASES.get(key)


_TYPE_ALIASES = {t.value.lower(): t for t in ResourceType}
_TYPE_ALIASES.update({"unsignedinteger": ResourceType.UNSIGNED_INTEGER,
                      "unsigned": ResourceType.UNSIGNED_INTEGER,
                      "objectlink": ResourceType.OBJLNK,
                      "objlink": ResourceType.OBJLNK})


class Operations(str, enum.Enum):
    """What a LwM2M server may do with a resource. ``NONE`` is used by Security (/0)."""

    NONE = ""
    R = "R"
    W = "W"
    RW = "RW"
    E = "E"

    @property
    def readable(self) -> bool:
        return "R" in self.value

    @property
    def writable(self) -> bool:
        return "W" in self.value

    @property
    def executable(self) -> bool:
        return self is Operations.E


@dataclass(frozen=True, slots=True)
class ResourceDef:
    id: int
    name: str
    operations: Operations
    multiple: bool
    mandatory: bool
    type: ResourceType | None  # None for executable resources
    range: str = ""
    units: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ObjectDef:
    id: int
    name: str
    multiple: bool
    mandatory: bool
    resources: Mapping[int, ResourceDef] = field(default_factory=dict)
    version: str = "1.0"
    urn: str = ""
    description: str = ""

    def resource(self, rid: int) -> ResourceDef | None:
        return self.resources.get(rid)


# ---------------------------------------------------------------------------------------
# DDF XML parsing
# ---------------------------------------------------------------------------------------

def _text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    """Find a direct child ignoring any XML namespace on the tag."""
    for c in parent:
        tag = c.tag.rsplit("}", 1)[-1] if isinstance(c.tag, str) else ""
        if tag == name:
            return c
    return None


def _children(parent: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in parent if isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1] == name]


def _parse_id(text: str, what: str, source: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
        raise ModelError(f"{source}: {what} {text!r} is not an id in 0..{MAX_ID}", field=what)
    return int(text)


def _single_multiple(text: str, what: str, source: str) -> bool:
    key = text.lower()
    if key == "single":
        return False
    if key == "multiple":
        return True
    raise ModelError(f"{source}: {what} MultipleInstances {text!r} is not Single or Multiple", field=what)


def _mandatory(text: str, what: str, source: str) -> bool:
    key = text.lower()
    if key == "mandatory":
        return True
    if key in ("optional", ""):
        return False
    raise ModelError(f"{source}: {what} Mandatory {text!r} is not Mandatory or Optional", field=what)


def _operations(text: str, what: str, source: str) -> Operations:
    key = text.upper().replace(" ", "")
    if key == "WR":
        key = "RW"
    try:
        return Operations(key)
    except ValueError:
        raise ModelError(f"{source}: {what} Operations {text!r} is not one of R, W, RW, E or empty",
                         field=what) from None


def _check_xml_bytes(data: bytes, source: str) -> None:
    if len(data) > MAX_XML_BYTES:
        raise ModelError(f"{source}: {len(data)} bytes is over the {MAX_XML_BYTES}-byte limit for object files")
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise ModelError(f"{source}: DOCTYPE and ENTITY declarations are not allowed in object files")


def parse_ddf(data: bytes, source: str = "<xml>") -> list[ObjectDef]:
    """Parse one DDF document (``<LWM2M><Object>...``) into object definitions."""
    _check_xml_bytes(data, source)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ModelError(f"{source}: not well-formed XML ({exc})") from None
    root_tag = root.tag.rsplit("}", 1)[-1] if isinstance(root.tag, str) else ""
    objects_xml = [root] if root_tag == "Object" else _children(root, "Object")
    if root_tag not in ("LWM2M", "Object"):
        raise ModelError(f"{source}: root element is <{root_tag}>, expected <LWM2M>")
    if not objects_xml:
        raise ModelError(f"{source}: no <Object> element")
    return [_parse_object(o, source) for o in objects_xml]


def _parse_object(obj: ET.Element, source: str) -> ObjectDef:
    oid = _parse_id(_text(_child(obj, "ObjectID")), "ObjectID", source)
    where = f"object {oid}"
    name = _text(_child(obj, "Name"))
    if not name:
        raise ModelError(f"{source}: {where} has no <Name>", field="Name")
    multiple = _single_multiple(_text(_child(obj, "MultipleInstances")), where, source)
    mandatory = _mandatory(_text(_child(obj, "Mandatory")), where, source)
    version = _text(_child(obj, "ObjectVersion")) or "1.0"
    resources: dict[int, ResourceDef] = {}
    res_xml = _child(obj, "Resources")
    for item in _children(res_xml, "Item") if res_xml is not None else []:
        rid = _parse_id(item.get("ID", "").strip(), f"{where} resource ID", source)
        rwhere = f"resource /{oid}/x/{rid}"
        if rid in resources:
            raise ModelError(f"{source}: {where} defines resource {rid} twice", field=str(rid))
        type_text = _text(_child(item, "Type"))
        rtype = ResourceType.from_ddf(type_text)
        if rtype is None and type_text.strip().lower() not in ("", "none"):
            raise ModelError(f"{source}: {rwhere} has unknown Type {type_text!r}", field=str(rid))
        resources[rid] = ResourceDef(
            id=rid,
            name=_text(_child(item, "Name")) or f"Resource {rid}",
            operations=_operations(_text(_child(item, "Operations")), rwhere, source),
            multiple=_single_multiple(_text(_child(item, "MultipleInstances")), rwhere, source),
            mandatory=_mandatory(_text(_child(item, "Mandatory")), rwhere, source),
            type=rtype,
            range=_text(_child(item, "RangeEnumeration")),
            units=_text(_child(item, "Units")),
            description=_text(_child(item, "Description")),
        )
    return ObjectDef(
        id=oid, name=name, multiple=multiple, mandatory=mandatory, resources=resources,
        version=version, urn=_text(_child(obj, "ObjectURN")),
        description=_text(_child(obj, "Description1")),
    )


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------

class ObjectRegistry:
    """Object definitions by object id; one definition per id (the last loaded wins)."""

    def __init__(self, objects: Iterable[ObjectDef] = ()) -> None:
        self._objects: dict[int, ObjectDef] = {}
        for o in objects:
            self.add(o)

    @classmethod
    def load_default(cls) -> "ObjectRegistry":
        """A new registry with the objects shipped in ``gateway/lwm2m/models``."""
        reg = cls()
        pkg = _resources.files("gateway.lwm2m.models")
        entries = sorted((e for e in pkg.iterdir() if e.name.endswith(".xml")), key=lambda e: e.name)
        for entry in entries:
            for obj in parse_ddf(entry.read_bytes(), f"models/{entry.name}"):
                reg.add(obj)
        return reg

    def add(self, obj: ObjectDef) -> None:
        self._objects[obj.id] = obj

    def load_xml(self, data: bytes, source: str = "<xml>") -> list[int]:
        objs = parse_ddf(data, source)
        for o in objs:
            self.add(o)
        return [o.id for o in objs]

    def load_file(self, path: str | os.PathLike[str]) -> list[int]:
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_XML_BYTES:
                raise ModelError(f"{p}: {size} bytes is over the {MAX_XML_BYTES}-byte limit for object files")
            data = p.read_bytes()
        except OSError as exc:
            raise ModelError(f"{p}: cannot read ({exc.strerror or exc})") from None
        return self.load_xml(data, str(p))

    def load_dir(self, path: str | os.PathLike[str]) -> list[int]:
        """Load every ``*.xml`` of a directory (not recursive), replacing same-id objects.

        All files are parsed before anything is added, so a bad file leaves the registry
        unchanged. Two files defining the same object id in one directory is an error.
        """
        d = Path(path)
        if not d.is_dir():
            raise ModelError(f"{d}: not a directory")
        files = sorted(p for p in d.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
        if len(files) > MAX_FILES_PER_DIR:
            raise ModelError(f"{d}: {len(files)} XML files is over the limit of {MAX_FILES_PER_DIR}")
        staged = ObjectRegistry()
        seen: dict[int, Path] = {}
        for f in files:
            for oid in staged.load_file(f):
                if oid in seen and seen[oid] != f:
                    raise ModelError(f"{f}: object {oid} is also defined in {seen[oid].name}", field=str(oid))
                seen[oid] = f
        for o in staged:
            self.add(o)
        return sorted(seen)

    # -- lookups --------------------------------------------------------------------------

    def object(self, oid: int) -> ObjectDef | None:
        return self._objects.get(oid)

    def resource(self, oid: int, rid: int) -> ResourceDef | None:
        o = self._objects.get(oid)
        return o.resources.get(rid) if o is not None else None

    def resource_at(self, path: LwM2MPath) -> ResourceDef | None:
        """The definition of the resource a resource (instance) path points into."""
        if len(path) < 3:
            return None
        return self.resource(path.ids[0], path.ids[2])

    def __contains__(self, oid: object) -> bool:
        return oid in self._objects

    def __iter__(self) -> Iterator[ObjectDef]:
        return iter(sorted(self._objects.values(), key=lambda o: o.id))

    def __len__(self) -> int:
        return len(self._objects)

    def ids(self) -> list[int]:
        return sorted(self._objects)


_DEFAULT: ObjectRegistry | None = None


def default_registry() -> ObjectRegistry:
    """The shared registry of bundled objects, loaded once (codecs use it when given None).

    Treat it as read-only; build your own with ``ObjectRegistry.load_default()`` and
    ``load_dir()`` to add user objects.
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ObjectRegistry.load_default()
    return _DEFAULT
