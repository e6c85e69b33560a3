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
_BAD_URI = re.compile(r"[<\s]")
_OBJ_PATH = re.compile(r"/([0-9]{1,5})(?:/([0-9]{1,5}))?")
_VERSION = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
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
    bad = _CONTROL.search(text)
    if bad is not None:
        raise FormatError(f"{FMT}: control character {bad.group()!r} at character {bad.start()}",
                          offset=bad.start())

    fast = _parse_fast(text)
    if fast is not None:
        return fast
    return _parse_slow(text)


_PARAM_RE = re.compile(r'[ \t\r\n]*;[ \t\r\n]*([A-Za-z0-9!#$&+\-.^_`|~*]+)'
                       r'(?:[ \t\r\n]*=[ \t\r\n]*(?:"((?:[^"\\]|\\[\s\S])*)"|'
                       r"([A-Za-z0-9!#$%&'()*+\-./:<=>?@\[\]^_`{|}~]+)))?")
_LINK_RE = re.compile(r"[ \t\r\n]*<([^<>\s]+)>((?:" + _PARAM_RE.pattern + r")*)[ \t\r\n]*(?:,|\Z)")
_UNESCAPE = re.compile(r"\\(.)", re.S)


def _parse_fast(text: str) -> list[Link] | None:
    """One regex pass for well-formed input; None sends it to the exact slow parser."""
    links: list[Link] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _LINK_RE.match(text, pos)
        if m is None or m.end() == pos:
            return None if text[pos:].strip(_WS) else links
        attrs: dict[str, str | None] = {}
        if m.group(2):
            for p in _PARAM_RE.finditer(m.group(2)):
                quoted, token = p.group(2), p.group(3)
                if quoted is not None:
                    value: str | None = _UNESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
                else:
                    value = token
                attrs.setdefault(p.group(1), value)
        links.append(Link(m.group(1), attrs))
        pos = m.end()
    return links


def _parse_slow(text: str) -> list[Link]:
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
        if not uri or _BAD_URI.search(uri):
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

    Links must be ``<root/O>`` or ``<root/O/I>``. The content formats come from the
    ``ct`` of the ``rt="oma.lwm2m"`` link, or of a bare ``</>`` link when no link has
    that ``rt`` (some clients send ``</>;ct=110``). Repeated links are merged.
    """
    links = parse_link_format(text)
    root = "/"
    formats: tuple[int, ...] = ()
    root_index = -1
    for i, (uri, attrs) in enumerate(links):
        rt = attrs.get("rt")
        if rt and _LWM2M_RT in rt.split():
            root = uri.rstrip("/") or "/"
            if not root.startswith("/"):
                raise FormatError(f"{FMT}: link {i}: alternate path <{uri}> must start with '/'")
            formats = _content_formats(attrs.get("ct"), i)
            root_index = i
    if root_index < 0:
        for i, (uri, attrs) in enumerate(links):
            if uri == "/" and "ct" in attrs:
                formats = _content_formats(attrs["ct"], i)
    prefix = "" if root == "/" else root
    versions: dict[int, str | None] = {}
    instances: dict[int, set[int]] = {}
    for i, (uri, attrs) in enumerate(links):
        if i == root_index or uri == "/":
            continue
        local = uri
        if prefix:
            if not (uri == prefix or uri.startswith(prefix + "/")):
                raise FormatError(f"{FMT}: link {i}: <{uri}> is not under the alternate path {root}")
            local = uri[len(prefix):] or "/"
        if local == "/":
            continue
        m = _OBJ_PATH.fullmatch(local)
        oid_text, iid_text = m.groups() if m is not None else (None, None)
        if oid_text is None or int(oid_text) > 65535 or (iid_text is not None and int(iid_text) > 65535):
            try:
                LwM2MPath.parse(local)  # for its precise message
            except FormatError as exc:
                raise FormatError(f"{FMT}: link {i}: <{uri}> is not an object or object instance "
                                  f"path ({exc})") from None
            raise FormatError(f"{FMT}: link {i}: <{uri}> is not an object or object instance path")
        oid = int(oid_text)
        ver = attrs.get("ver") if attrs else None
        if ver is not None:
            if not _VERSION.fullmatch(ver):
                raise FormatError(f"{FMT}: link {i}: ver={ver!r} is not a version like 1.1")
            versions[oid] = ver
        elif oid not in versions:
            versions[oid] = None
        iids = instances.get(oid)
        if iids is None:
            iids = instances[oid] = set()
        if iid_text is not None:
            iids.add(int(iid_text))
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
