"""The layout plan of a generated firmware encoder: what the C and Python emitters write.

The plan is made from the encoder's own planning steps (`bcl.encode`): the template's
execution paths (`execution_paths`: which entry of each switch runs) and, per path, the asset
writes that survive (`replay_writes`: a later write to an asset wins).  What the search encoder
decides per call from JSON values is decided here once, statically:

* **Fields.** One struct field per asset and value family (integer, float, boolean, string,
  hex) in its natural C type, and one per switch that reads the payload (`sel_...`): its
  value picks the entry that runs, exactly as the decoder picks it.
* **Paths.** Each path becomes a guarded block: the guard is the selector fields' values
  (equal to a case, or to none), the block writes every read the decoder makes on that path.
  Reads whose asset a later write replaces are "free": left zero.
* **Length.** The payload length is fixed per path, or follows from the one string/hex value
  read through ``byte`` + ``endbyte`` (its width is the value's length).

Layouts the generated code could get wrong are refused here with `CodegenRefused`, naming the
statement: reads whose bytes could not be left free (a replaced string overlapping another
read), payload lengths no width works for, too many paths.
"""

from __future__ import annotations

import keyword
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from ..encode import execution_paths, reachable_cases, replay_writes
from ..errors import BclError
from ..floats import shortest_float32
from ..model import ALLOWED_LENGTHS, Mapping, Selector, Statement, Switch, Template, ValueType

__all__ = ["comment_text", "CodegenRefused", "Field", "Item", "Guard", "PathPlan", "Plan", "plan_for", "MAX_PATHS", "MAX_LENGTH"]

MAX_PATHS = 256
MAX_LENGTH = 65535  # the largest payload a generated encoder builds
_LENGTH_SEARCH = 16  # payload lengths tried above the smallest one for byte+endbyte numbers

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile "
    "while _Bool _Complex _Imaginary bool true false".split())

FAMILY = {ValueType.INT: "int", ValueType.UINT: "int", ValueType.FLOAT: "float", ValueType.BOOLEAN: "bool",
          ValueType.STRING: "string", ValueType.HEX: "hex"}
_SUFFIX = {"int": "int", "float": "float", "bool": "bool", "string": "str", "hex": "hex"}
_SIGNED_HOLDING = {1: 2, 2: 4, 4: 8, 8: 8}  # a signed width that holds every uint of a width


class CodegenRefused(BclError):
    """The template's layout cannot be turned into a correct encoder; the text says where and why."""


@dataclass
class Field:
    """One member of the values struct.

    ``family`` int: ``signed``/``width`` give ``intN_t``/``uintN_t``; float: width 4 (float) or
    8 (double); bool; string/hex: ``width`` is the array length, or None for a pointer and a
    length (a value read through ``byte`` + ``endbyte``, or of several widths).
    """

    name: str
    family: str
    width: int | None
    signed: bool = False
    origin: str = ""  # the asset, or the switch's JSON pointer
    is_selector: bool = False
    selectors: list[Selector] = field(default_factory=list)


@dataclass
class Item:
    """One read of the payload on a path, and the field whose value it holds.

    Position: ``start`` bytes from the start, or ``n + start`` when ``from_end``; width: ``width``
    bytes, or ``n + end - start`` for a ``byte`` + ``endbyte`` range (``span``).  ``free`` reads
    are ones whose asset a later write replaces: nothing is written there.
    """

    sel: Selector
    field: Field
    label: str
    free: bool

    @property
    def span(self) -> bool:
        return self.sel.is_span

    @property
    def from_end(self) -> bool:
        return self.sel.byte is None

    @property
    def start(self) -> int:
        return self.sel.endbyte if self.sel.byte is None else self.sel.byte  # type: ignore[return-value]

    @property
    def end(self) -> int | None:
        return self.sel.endbyte if self.span else None

    def static_range(self, n: int) -> tuple[int, int]:
        sel = self.sel
        if sel.byte is None:
            return n + sel.endbyte, n + sel.endbyte + sel.bytelength  # type: ignore[operator]
        if sel.endbyte is not None:
            return sel.byte, n + sel.endbyte
        return sel.byte, sel.byte + sel.bytelength  # type: ignore[operator]


@dataclass
class Guard:
    """One switch's condition on a path: its selector field equals ``case`` (a literal the
    emitters compare with), or (``case`` None) equals none of ``others``."""

    field: Field
    case: Any
    others: list[Any]
    pointer: str
    what: str


@dataclass
class PathPlan:
    guards: list[Guard]
    items: list[Item]  # every read on the path, in execution order (free ones included)
    length: int | None  # the payload length, or None: it follows from `length_item`
    length_item: Item | None
    n_min: int  # the smallest length every read fits in (checked when the length is dynamic)
    description: str

    @property
    def written(self) -> list[Item]:
        return [it for it in self.items if not it.free]

    def position(self, it: Item) -> tuple[str, str]:
        """Start and width of a read as expressions over the payload length ``n`` (the same
        text in C and Python), or literals when the path's length is fixed."""
        if self.length is not None:
            a, b = it.static_range(self.length)
            return str(a), str(b - a)
        sel = it.sel
        if sel.byte is None:
            return f"n - {-sel.endbyte}", str(sel.bytelength)  # type: ignore[operator]
        if sel.endbyte is None:
            return str(sel.byte), str(sel.bytelength)
        return str(sel.byte), f"n - {sel.byte - sel.endbyte}"

    def width_to_check(self, it: Item) -> tuple[str, tuple[int, ...]] | None:
        """(width expression, allowed widths) of a replaced number read whose width follows the
        payload's length: the decoder still reads it, so the width must suit its type."""
        allowed = ALLOWED_LENGTHS[it.sel.type]
        if self.length is not None or not it.span or allowed is None:
            return None
        return self.position(it)[1], allowed


def comment_text(text: str) -> str:
    """Template text as it may appear in a generated comment (no */, no trigraphs, one line)."""
    return re.sub(r"[^A-Za-z0-9 ._:\-\[\]/+]", "_", text)[:120]


@dataclass
class Plan:
    name: str | None
    fields: list[Field]
    paths: list[PathPlan]
    constants: dict[str, str]  # asset -> constant value (set by the template, not the struct)
    by_pointer: dict[str, Field] = field(default_factory=dict)  # mapping or switch pointer -> its field

    @property
    def max_length(self) -> int | None:
        """The longest payload any path builds, when every path's length is fixed."""
        if any(p.length is None for p in self.paths):
            return None
        return max((p.length for p in self.paths), default=0)  # type: ignore[type-var]


# -- names ------------------------------------------------------------------------------------------

def identifier(text: str) -> str:
    """A C and Python identifier for an asset or pointer (the emitters add no text of their own)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "value"
    if name[0].isdigit():
        name = "v_" + name
    if name in C_KEYWORDS or keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def _selector_name(pointer: str) -> str:
    """``/sense/0/on/1/do/0`` -> ``sel_0_1_0``."""
    parts = [p for p in pointer.split("/") if p and p not in ("sense", "on", "do")]
    return "sel_" + "_".join(parts)


# -- fields -----------------------------------------------------------------------------------------

def _walk(stmts: tuple[Statement, ...], mappings: list[Mapping], switches: list[Switch]) -> None:
    for st in stmts:
        if isinstance(st, Mapping):
            mappings.append(st)
        else:
            switches.append(st)
            for case in (*st.cases, *((st.default,) if st.default else ())):
                _walk(case.do, mappings, switches)


def _storage(fld: Field) -> None:
    """Choose the C type that holds every read of the field without loss."""
    sels = fld.selectors
    if fld.family == "int":
        signed = any(s.type is ValueType.INT for s in sels)
        widths = [8 if s.is_span else s.bytelength for s in sels]
        if signed:
            widths = [8 if s.is_span else (s.bytelength if s.type is ValueType.INT else _SIGNED_HOLDING[s.bytelength])
                      for s in sels]  # type: ignore[index]
        fld.signed, fld.width = signed, max(widths)  # type: ignore[type-var]
    elif fld.family == "float":
        fld.width = 8 if any(s.is_span or s.bytelength == 8 for s in sels) else 4
    elif fld.family == "bool":
        fld.width = 1
    else:
        widths = {None if s.is_span else s.bytelength for s in sels}
        fld.width = widths.pop() if len(widths) == 1 else None


def _fields(template: Template) -> tuple[dict[int, Field], dict[str, Field], list[Field], dict[str, str]]:
    mappings: list[Mapping] = []
    switches: list[Switch] = []
    _walk(template.sense, mappings, switches)
    families: dict[str, list[str]] = {}
    constants: dict[str, str] = {}
    for m in mappings:
        if isinstance(m.value, Selector):
            fams = families.setdefault(m.asset, [])
            if FAMILY[m.value.type] not in fams:
                fams.append(FAMILY[m.value.type])
        else:
            constants[m.asset] = m.value.value
    ordered: list[Field] = []
    by_key: dict[tuple[str, str], Field] = {}
    by_mapping: dict[int, Field] = {}
    used: set[str] = set()

    def unique(name: str) -> str:
        base, i = name, 2
        while name in used:
            name = f"{base}_{i}"
            i += 1
        used.add(name)
        return name

    for m in mappings:
        if not isinstance(m.value, Selector):
            continue
        fam = FAMILY[m.value.type]
        key = (m.asset, fam)
        fld = by_key.get(key)
        if fld is None:
            name = identifier(m.asset)
            if len(families[m.asset]) > 1:
                name = f"{name}_{_SUFFIX[fam]}"
            fld = by_key[key] = Field(unique(name), fam, None, origin=m.asset)
            ordered.append(fld)
        fld.selectors.append(m.value)
        by_mapping[id(m)] = fld
    by_switch: dict[str, Field] = {}
    for sw in switches:
        if isinstance(sw.selector, Selector):
            fld = Field(unique(_selector_name(sw.pointer)), FAMILY[sw.selector.type], None, origin=sw.pointer,
                        is_selector=True, selectors=[sw.selector])
            by_switch[sw.pointer] = fld
            ordered.append(fld)
    for fld in ordered:
        _storage(fld)
    return by_mapping, by_switch, ordered, constants


# -- case literals ----------------------------------------------------------------------------------

def case_literal(sel: Selector, value: Any) -> Any:
    """What a selector field must equal for the decoder to take case `value`, in the field's
    terms (int, float, bytes), or None when no value of the field can equal it."""
    t = sel.type
    if isinstance(value, str):
        if t is ValueType.STRING:
            raw = value.encode("utf-8")
        elif t is ValueType.HEX:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                return None
            if raw.hex() != value:
                return None  # the decoder prints lower case; "0A" is never read
        else:
            return None
        if not sel.is_span and len(raw) != sel.bytelength:
            return None
        return raw
    if t in (ValueType.INT, ValueType.UINT):
        if isinstance(value, float):
            if not value.is_integer():
                return None
            value = int(value)
        width = 8 if sel.is_span else sel.bytelength
        bits = 8 * width  # type: ignore[operator]
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t is ValueType.INT else (0, (1 << bits) - 1)
        return value if low <= value <= high else None
    if t is ValueType.FLOAT:
        try:
            as_float = float(value)
        except OverflowError:
            return None
        if as_float != value or not math.isfinite(as_float):
            return None  # an int no double equals exactly
        if not sel.is_span and sel.bytelength == 4:
            try:
                f32 = struct.unpack("<f", struct.pack("<f", as_float))[0]
            except OverflowError:
                return None
            return f32 if shortest_float32(f32) == as_float else None
        return as_float
    return None  # a boolean equals no case


# -- paths ------------------------------------------------------------------------------------------

def _describe(path: list) -> str:
    parts = [ev.describe() for kind, ev in path if kind == "switch"]
    return ", ".join(parts) if parts else "the only path"


def _guards(path: list, by_switch: dict[str, Field]) -> list[Guard] | None:
    """The conditions on selector members that make the decoder take `path`; None when no
    value of a member can equal a case the path takes (the path never runs)."""
    guards: list[Guard] = []
    for kind, ch in path:
        if kind != "switch" or not isinstance(ch.switch.selector, Selector):
            continue
        sel = ch.switch.selector
        fld = by_switch[ch.switch.pointer]
        if ch.by_default:
            others = [lit for c in reachable_cases(ch.switch) if (lit := case_literal(sel, c.value)) is not None]
            guards.append(Guard(fld, None, others, ch.switch.pointer, ch.describe()))
        else:
            lit = case_literal(sel, ch.case.value)
            if lit is None:
                return None
            guards.append(Guard(fld, lit, [], ch.switch.pointer, ch.describe()))
    return guards


def _allowed(sel: Selector, width: int) -> bool:
    allowed = ALLOWED_LENGTHS[sel.type]
    return width >= 0 if allowed is None else width in allowed


def _n_min(items: list[Item]) -> int:
    low = 0
    for it in items:
        sel = it.sel
        if sel.byte is None:
            low = max(low, -sel.endbyte)  # type: ignore[operator]
        elif sel.endbyte is None:
            low = max(low, sel.byte + sel.bytelength)  # type: ignore[operator]
        else:
            low = max(low, sel.byte - sel.endbyte)
    return low


def _static_length(items: list[Item], where: str) -> int:
    """The payload length of a path without a string/hex value read to size it: the smallest
    that gives every ``byte`` + ``endbyte`` number an allowed width, preferring widths that hold
    the whole field (so no value is refused for its size)."""
    low = _n_min(items)
    spans = [it for it in items if it.span]
    if not spans:
        return low
    fallback = None
    for n in range(low, low + _LENGTH_SEARCH + 1):
        widths = [(it, n + it.sel.endbyte - it.sel.byte) for it in spans]  # type: ignore[operator]
        if all(_allowed(it.sel, w) for it, w in widths):
            if all(it.free or it.field.family not in ("int", "float") or w >= (it.field.width or 0)
                   for it, w in widths):
                return n
            fallback = n if fallback is None else fallback
    if fallback is not None:
        return fallback
    names = ", ".join(it.label for it in spans)
    raise CodegenRefused(f"{where}: no payload length gives the byte+endbyte reads ({names}) widths their types allow")


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _check_free_strings(items: list[Item], n: int | None, where: str) -> None:
    """A replaced string read is left zero, which is valid UTF-8 only if no other read writes
    into its bytes: refuse when one may (with a dynamic length, unless both are fixed ranges)."""
    for it in items:
        if not (it.free and it.sel.type is ValueType.STRING):
            continue
        for other in items:
            if other.free:
                continue
            if n is not None:
                may = _overlap(it.static_range(n), other.static_range(n))
            elif it.sel.endbyte is None and other.sel.endbyte is None:
                may = _overlap(it.static_range(0), other.static_range(0))
            else:
                may = True
            if may:
                raise CodegenRefused(
                    f"{where}: the string read of {it.label} at {it.sel.pointer} is replaced by a later write, but its "
                    f"bytes may hold {other.label}: they would not always be valid UTF-8, so the decoder could fail")


def _check_float_selectors(items: list[Item], n: int | None, where: str) -> None:
    """A float switch selector read through byte+endbyte must be 8 bytes wide: at 4 bytes the
    decoder compares the float's shortest decimal with the cases, which the guard (a plain
    comparison of the member) would not match."""
    for it in items:
        if it.field.is_selector and it.span and it.sel.type is ValueType.FLOAT:
            if n is None or n + it.sel.endbyte - it.sel.byte != 8:  # type: ignore[operator]
                raise CodegenRefused(f"{where}: the float switch selector at {it.sel.pointer} runs to endbyte, so "
                                     f"its width follows the payload and may be 4 bytes, compared by their shortest "
                                     f"decimal; give it a bytelength")


def _path_plan(path: list, by_mapping: dict[int, Field], by_switch: dict[str, Field]) -> PathPlan | None:
    guards = _guards(path, by_switch)
    if guards is None:
        return None
    where = _describe(path)
    _, writes, surviving = replay_writes(path)
    items: list[Item] = []
    write_index = 0
    for kind, ev in path:
        if kind == "switch":
            sel = ev.switch.selector
            if isinstance(sel, Selector):
                items.append(Item(sel, by_switch[ev.switch.pointer], ev.switch.selector_pointer, False))
            continue
        idx = write_index
        write_index += 1
        if isinstance(ev.value, Selector):
            items.append(Item(ev.value, by_mapping[id(ev)], ev.asset, idx not in surviving))
    sizing = [it for it in items if not it.free and it.span and it.sel.type in (ValueType.STRING, ValueType.HEX)]
    if sizing:
        n_min = _n_min(items)
        _check_free_strings(items, None, where)
        _check_float_selectors(items, None, where)
        return PathPlan(guards, items, None, sizing[0], n_min, where)
    n = _static_length(items, where)
    _check_float_selectors(items, n, where)
    if n > MAX_LENGTH:
        raise CodegenRefused(f"{where}: the payload would be {n} bytes, more than {MAX_LENGTH}")
    for it in items:
        a, b = it.static_range(n)
        if a < 0 or b < a or not _allowed(it.sel, b - a):
            raise CodegenRefused(f"{where}: {it.label} at {it.sel.pointer} cannot be read from a {n}-byte payload")
    _check_free_strings(items, n, where)
    return PathPlan(guards, items, n, None, n, where)


def plan_for(template: Template) -> Plan:
    """The plan of `template`'s encoder, or CodegenRefused saying why there is none."""
    by_mapping, by_switch, fields, constants = _fields(template)
    paths: list[PathPlan] = []
    for count, path in enumerate(execution_paths(template.sense), 1):
        if count > MAX_PATHS:
            raise CodegenRefused(f"the template has more than {MAX_PATHS} execution paths (switch entries "
                                 f"combined); the generated encoder would be too large")
        plan = _path_plan(path, by_mapping, by_switch)
        if plan is not None:
            paths.append(plan)
    mappings: list[Mapping] = []
    switches: list[Switch] = []
    _walk(template.sense, mappings, switches)
    by_pointer = {m.pointer: by_mapping[id(m)] for m in mappings if id(m) in by_mapping}
    by_pointer.update(by_switch)
    return Plan(template.name, fields, paths, constants, by_pointer)
