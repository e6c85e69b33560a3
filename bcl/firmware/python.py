"""Python output of the firmware encoder generator (for emulators): the same plan as the C one.

The module has a ``Values`` dataclass (int, float, bool, str for string, bytes for hex) and
``encode(values) -> bytes``, which raises ``EncodeError`` with the C error codes. Template text
reaches the source only as identifiers from `plan.identifier` and ``repr`` of int, float, str
and bytes values; asset names in comments are reduced to safe characters.
"""

from __future__ import annotations

import re

from ..model import ValueType
from .plan import MAX_LENGTH, Field, Guard, Item, PathPlan, Plan, comment_text

__all__ = ["generate_python"]

_RUNTIME = '''
ERR_BUFFER = -1  # (C only: the caller's buffer is too short)
ERR_RANGE = -2  # a value does not fit its bytes, or a length or UTF-8 is wrong
ERR_CONFLICT = -3  # two reads share bytes and their values disagree


class EncodeError(ValueError):
    """The values cannot be encoded; ``code`` is the C encoder's error code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _range(what: str) -> EncodeError:
    return EncodeError(ERR_RANGE, what)


def _int(x: object, w: int, signed: bool, order: str, what: str) -> bytes:
    if isinstance(x, bool) or not isinstance(x, int) or w not in (1, 2, 4, 8):
        raise _range(f"{what}: an integer of 1, 2, 4 or 8 bytes is needed")
    try:
        return x.to_bytes(w, order, signed=signed)
    except OverflowError:
        raise _range(f"{what}: {x} does not fit in {w} bytes") from None


def _float(x: object, w: int, order: str, what: str) -> bytes:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or w not in (4, 8):
        raise _range(f"{what}: a number of 4 or 8 bytes is needed")
    try:
        return struct.pack(("<" if order == "little" else ">") + ("f" if w == 4 else "d"), float(x))
    except (OverflowError, struct.error):
        raise _range(f"{what}: {x} does not fit in a {w}-byte float") from None


def _f32(x: object) -> object:
    """What a float field holds once it is a C float (None: it cannot be one)."""
    try:
        return struct.unpack("<f", struct.pack("<f", float(x)))[0]  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError, struct.error):
        return None


def _utf8(x: object) -> object:
    try:
        return x.encode("utf-8") if isinstance(x, str) else None
    except UnicodeEncodeError:
        return None


def _text(x: object, what: str) -> bytes:
    raw = _utf8(x)
    if raw is None:
        raise _range(f"{what}: a str with a UTF-8 form is needed")
    return raw  # type: ignore[return-value]


def _raw(x: object, what: str) -> bytes:
    if not isinstance(x, (bytes, bytearray)):
        raise _range(f"{what}: bytes are needed")
    return bytes(x)


def _place(buf: bytearray, placed: list, a: int, raw: bytes, what: str) -> None:
    for lo_, hi_ in placed:
        lo, hi = max(a, lo_), min(a + len(raw), hi_)
        if lo < hi and buf[lo:hi] != raw[lo - a:hi - a]:
            raise EncodeError(ERR_CONFLICT, f"{what}: shares bytes {lo}..{hi - 1} with another read and disagrees")
    buf[a:a + len(raw)] = raw
    placed.append((a, a + len(raw)))
'''




def _default(fld: Field) -> str:
    return {"int": "0", "float": "0.0", "bool": "False", "string": '""', "hex": 'b""'}[fld.family]


def _annotation(fld: Field) -> str:
    return {"int": "int", "float": "float", "bool": "bool", "string": "str", "hex": "bytes"}[fld.family]


def _equals(fld: Field, literal: object) -> str:
    ref = f"v.{fld.name}"
    if fld.family == "int":
        return f"(not isinstance({ref}, bool) and {ref} == {int.__repr__(literal)})"  # type: ignore[arg-type]
    if fld.family == "float":
        held = f"_f32({ref})" if fld.width == 4 else ref
        return f"({held} == {float.__repr__(literal)})"  # type: ignore[arg-type]
    raw = bytes.__repr__(literal)  # type: ignore[arg-type]
    if fld.family == "string":
        return f"(_utf8({ref}) == {raw})"
    return f"({ref} == {raw})"


def _guard(g: Guard) -> str:
    if g.case is not None:
        return _equals(g.field, g.case)
    parts = [f"not {_equals(g.field, lit)}" for lit in g.others]
    return " and ".join(parts) if parts else "True"


class _Emitter:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.lines: list[str] = []

    def emit(self, text: str, depth: int = 2) -> None:
        self.lines.append("    " * depth + text)


    def value(self, it: Item, path: PathPlan, w: str) -> str:
        """An expression for the bytes of a written read (raises EncodeError when they do not fit)."""
        fld, sel = it.field, it.sel
        ref = f"v.{fld.name}"
        what = repr(comment_text(it.label))
        if fld.family == "int":
            return f"_int({ref}, {w}, {sel.type is ValueType.INT}, {sel.byteorder!r}, {what})"
        if fld.family == "float":
            return f"_float({ref}, {w}, {sel.byteorder!r}, {what})"
        if fld.family == "bool":
            if w != "1":
                self.emit(f"if {w} != 1: raise _range({what} + ': a boolean is 1 byte')")
            return f"(b'\\x01' if {ref} else b'\\x00')"
        conv = "_text" if fld.family == "string" else "_raw"
        self.emit(f"raw = {conv}({ref}, {what})")
        if it is not path.length_item:
            self.emit(f"if len(raw) != {w}: raise _range({what} + ': ' + str(len(raw)) + ' bytes, not ' + str({w}))")
        return "raw"

    def free_check(self, it: Item, path: PathPlan) -> None:
        check = path.width_to_check(it)
        if check is not None:
            w, widths = check
            self.emit(f"if ({w}) not in {widths!r}: raise _range({comment_text(it.label)!r} + ': replaced, but still read')")

    def path(self, path: PathPlan) -> None:
        cond = " and ".join(_guard(g) for g in path.guards) or "True"
        self.lines.append(f"    if {cond}:  # {comment_text(path.description)}")
        if path.length is not None:
            self.emit(f"n = {path.length}")
        else:
            lead = path.length_item
            assert lead is not None and lead.sel.byte is not None and lead.sel.endbyte is not None
            conv = "_text" if lead.field.family == "string" else "_raw"
            self.emit(f"n = {lead.sel.byte - lead.sel.endbyte} + len({conv}(v.{lead.field.name}, "
                      f"{comment_text(lead.label)!r}))")
            self.emit(f"if n < {path.n_min} or n > {MAX_LENGTH}: raise _range('the payload would be ' + str(n) + "
                      f"' bytes: {comment_text(lead.label)} is too short or too long')")
        self.emit("buf = bytearray(n)")
        self.emit("placed: list = []")
        for it in path.items:
            if it.free:
                self.free_check(it, path)
        for it in path.written:
            a, w = path.position(it)
            raw = self.value(it, path, w)
            self.emit(f"_place(buf, placed, {a}, {raw}, {comment_text(it.label)!r})")
        self.emit("return bytes(buf)")


def generate_python(plan: Plan, prefix: str) -> str:
    """The source of a module ``<prefix>.py`` with ``Values`` and ``encode``."""
    title = comment_text(plan.name or prefix)
    out = [f'"""Encoder of the Energy Saver template {title}.',
           "",
           "Generated by `nce-gateway template codegen --lang python`; do not edit, generate again.",
           '"""',
           "",
           "from __future__ import annotations",
           "",
           "import struct",
           "from dataclasses import dataclass",
           _RUNTIME,
           "",
           "@dataclass",
           "class Values:",
           '    """Every value the template reads (switch selectors are the sel_... fields)."""',
           ""]
    for fld in plan.fields:
        what = f"switch {fld.origin}" if fld.is_selector else f"asset {fld.origin}"
        kinds = ", ".join(sorted({s.type.value for s in fld.selectors}))
        out.append(f"    {fld.name}: {_annotation(fld)} = {_default(fld)}  # {comment_text(what)} ({kinds})")
    if not plan.fields:
        out.append("    pass")
    out += ["", "", "def encode(v: Values) -> bytes:",
            '    """The payload the template translates back to `v` (EncodeError when there is none)."""']
    emitter = _Emitter(plan)
    for path in plan.paths:
        emitter.path(path)
    out += emitter.lines
    out += ["    raise _range('no entry of the template runs for these selector values')", ""]
    return "\n".join(out)
