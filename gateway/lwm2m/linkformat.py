"""CoRE link format (RFC 6690, content format 40) as LwM2M clients send it in Register
and Update: ``</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</3303>;ver=1.1,</3303/0>``.

:func:`parse_link_format` is the generic parser; :func:`parse_registration` reads the
LwM2M meaning (alternate root path, content formats, objects, versions, instances).
Whitespace around separators and a trailing comma are tolerated (some clients send
them); anything else that is not RFC 6690 is a :class:`FormatError` naming the
character offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from .errors import FormatError
from .path import LwM2MPath

MAX_LINK_FORMAT = 64 * 1024
FMT = "link-format"
_PARMNAME = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~*]+")
_PTOKEN = re.compile(r"[A-Za-z0-9!#$%&'()*+\-./:<=>?@\[\]^_`{|}~]+")
_WS = " \t\r\n"
_LWM2M_RT = "oma.lwm2m"


class Link(NamedTuple):
    """One link: its URI reference and attributes (``None`` for a valueless ``;obs``)."""

    uri: str
    attributes: dict[str, str | None]


def parse_link_format(text: str | bytes) -> list[Link]:
    """Parse a link-format document into links, in order. Attribute names are kept as
    written; for a repeated attribute the first value is kept."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{FMT}: not UTF-8 (byte {exc.start})", offset=exc.start) from None
    if not isinstance(text, str):
        raise FormatError(f"{FMT}: expected text, not {type(text).__name__}")
    if len(text) > MAX_LINK_FORMAT:
        raise FormatError(f"{FMT}: {len(text)} characters is over the limit of {MAX_LINK_FORMAT}")
    for pos, ch in enumerate(text):
        if (ord(ch) < 0x20 and ch not in _WS) or ord(ch) == 0x7F:
            raise FormatError(f"{FMT}: control character {ch!r} at character {pos}", offset=pos)

    links: list[Link] = []
    n = len(text)
    pos = _skip_ws(text, 0)
    while pos < n:
        if text[pos] != "<":
            raise FormatError(f"{FMT}: expected '<' at character {pos}, found {text[pos]!r}", offset=pos)
        end = text.find(">", pos + 1)
        if end < 0:
            raise FormatError(f"{FMT}: '<' at character {pos} is never closed with '>'", offset=pos)
        uri = text[pos + 1:end]
        if not uri or any(c in uri for c in "<" + _WS):
            raise FormatError(f"{FMT}: bad URI reference {uri!r} at character {pos}", offset=pos)
        attrs: dict[str, str | None] = {}
        pos = _skip_ws(text, end + 1)
        while pos < n and text[pos] == ";":
            pos = _skip_ws(text, pos + 1)
            m = _PARMNAME.match(text, pos)
            if m is None:
                raise FormatError(f"{FMT}: expected an attribute name at character {pos}", offset=pos)
            name = m.group(0)
            pos = _skip_ws(text, m.end())
            value: str | None = None
            if pos < n and text[pos] == "=":
                pos = _skip_ws(text, pos + 1)
                if pos < n and text[pos] == '"':
                    value, pos = _quoted(text, pos)
                else:
                    m = _PTOKEN.match(text, pos)
                    if m is None:
                        raise FormatError(f"{FMT}: attribute {name!r} has no value after '=' "
                                          f"at character {pos}", offset=pos)
                    value = m.group(0)
                    pos = m.end()
                pos = _skip_ws(text, pos)
            attrs.setdefault(name, value)
        links.append(Link(uri, attrs))
        if pos >= n:
            break
        if text[pos] != ",":
            raise FormatError(f"{FMT}: unexpected {text[pos]!r} at character {pos} "
                              f"(expected ',' or ';')", offset=pos)
        pos = _skip_ws(text, pos + 1)
    return links


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    start = pos
    pos += 1
    out = []
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if ch == '"':
            return "".join(out), pos + 1
        out.append(ch)
        pos += 1
    raise FormatError(f"{FMT}: quoted value starting at character {start} is never closed", offset=start)


def format_link_format(links: Iterable[Link | tuple[str, dict[str, str | None]]]) -> str:
    """Write links back as link-format text (values quoted when they need it)."""
    parts = []
    for uri, attrs in links:
        s = f"<{uri}>"
        for name, value in attrs.items():
            if value is None:
                s += f";{name}"
            elif _PTOKEN.fullmatch(value) and name not in ("rt", "if"):
                s += f";{name}={value}"
            else:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                s += f';{name}="{escaped}"'
        parts.append(s)
    return ",".join(parts)


# ---------------------------------------------------------------------------------------
# LwM2M registration payload
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a client registered for one object."""

    version: str | None = None
    instances: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Registration:
    """The LwM2M reading of a Register/Update link list."""

    root: str = "/"
    content_formats: tuple[int, ...] = ()
    objects: dict[int, ObjectInfo] = field(default_factory=dict)
    links: tuple[Link, ...] = ()

    def instance_paths(self) -> list[LwM2MPath]:
        """``/O/I`` of every registered object instance, sorted."""
        return [LwM2MPath(oid, iid) for oid in sorted(self.objects) for iid in self.objects[oid].instances]


def parse_registration(text: str | bytes) -> Registration:
    """Read objects, instances, ``ver`` and the alternate path (``rt="oma.lwm2m"``).

    Links must be ``<root/O>`` or ``<root/O/I>``; a link at the root without
    ``rt="oma.lwm2m"`` is ignored. Repeated links are merged.
    """
    links = parse_link_format(text)
    root = "/"
    formats: tuple[int, ...] = ()
    for i, link in enumerate(links):
        if _LWM2M_RT in _rt_values(link.attributes.get("rt")):
            root = link.uri.rstrip("/") or "/"
            if not root.startswith("/"):
                raise FormatError(f"{FMT}: link {i}: alternate path <{link.uri}> must start with '/'")
            formats = _content_formats(link.attributes.get("ct"), i)
    prefix = "" if root == "/" else root
    versions: dict[int, str | None] = {}
    instances: dict[int, list[int]] = {}
    for i, link in enumerate(links):
        if _LWM2M_RT in _rt_values(link.attributes.get("rt")):
            continue
        uri = link.uri
        if prefix:
            if not (uri == prefix or uri.startswith(prefix + "/")):
                raise FormatError(f"{FMT}: link {i}: <{uri}> is not under the alternate path {root}")
            uri = uri[len(prefix):] or "/"
        if uri == "/":
            continue
        try:
            path = LwM2MPath.parse(uri)
        except FormatError as exc:
            raise FormatError(f"{FMT}: link {i}: <{link.uri}> is not an object or object instance "
                              f"path ({exc})") from None
        if len(path) > 2:
            raise FormatError(f"{FMT}: link {i}: <{link.uri}> is not an object or object instance path")
        oid = path.ids[0]
        versions.setdefault(oid, None)
        ver = link.attributes.get("ver")
        if ver is not None:
            if not re.fullmatch(r"[0-9]{1,3}\.[0-9]{1,3}", ver):
                raise FormatError(f"{FMT}: link {i}: ver={ver!r} is not a version like 1.1")
            versions[oid] = ver
        iids = instances.setdefault(oid, [])
        if len(path) == 2 and path.ids[1] not in iids:
            iids.append(path.ids[1])
    objects = {oid: ObjectInfo(versions[oid], tuple(sorted(instances[oid]))) for oid in sorted(versions)}
    return Registration(root, formats, objects, tuple(links))


def _rt_values(value: str | None) -> list[str]:
    return value.split() if value else []


def _content_formats(value: str | None, index: int) -> tuple[int, ...]:
    if value is None:
        return ()
    out = []
    for part in value.split():
        if not (part.isascii() and part.isdigit()) or int(part) > 65535:
            raise FormatError(f"{FMT}: link {index}: ct={value!r} is not a list of content formats")
        out.append(int(part))
    return tuple(out)
