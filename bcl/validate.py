"""Template validation: JSON in, `bcl.model.Template` out, or every problem.

The validator walks the whole template and keeps going after a problem, so a
user fixing a template sees all of them at once, each with the JSON pointer of
its place and the rule it breaks in words.  Only keys of the grammar (SPEC §3)
plus ``comment`` and ``custom_type`` (mapping statements) are accepted; anything
else is refused rather than silently ignored, because a misspelt key
(``bytelenght``) would otherwise change the meaning of the template.

One extra key is accepted for compatibility: ``signed`` on int/uint selectors,
as 1NCE's own documentation example carries ``"type": "int", "signed": true``.
It must agree with the type (int is signed, uint is not).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping as MappingABC
from typing import Any

from .errors import Problem, TemplateError
from .model import (
    ALLOWED_LENGTHS,
    LOCATION_TYPES,
    MAX_ASSET_DEPTH,
    MAX_OFFSET,
    MAX_SWITCH_DEPTH,
    NUMERIC_TYPES,
    Case,
    Constant,
    Mapping,
    Selector,
    Statement,
    Switch,
    Template,
    ValueType,
)

__all__ = ["parse_template", "validate", "load_json"]

_TYPES_TEXT = "int, uint, float, boolean, string or hex"
# Beyond this no integer or float a selector reads can be equal (floats end near 2**1024).
_MAX_CASE_INT = 2**1024
_TOP_KEYS = ("name", "comment", "version", "sense")
_MAPPING_KEYS = ("asset", "value", "comment", "custom_type")
_SWITCH_KEYS = ("switch", "on", "comment")
_CASE_KEYS = ("case", "default", "do", "comment")
_SELECTOR_KEYS = ("type", "byte", "endbyte", "bytelength", "byteorder", "signed", "comment")


class _Obj(dict):
    """A JSON object from text, remembering keys that appeared more than once."""

    __slots__ = ("duplicates",)
    duplicates: tuple[str, ...]


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    obj = _Obj()
    dups: list[str] = []
    for k, v in pairs:
        if k in obj and k not in dups:
            dups.append(k)
        obj[k] = v
    obj.duplicates = tuple(dups)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(text: str | bytes | bytearray) -> Any:
    """Parse template text strictly (no NaN/Infinity); raise TemplateError if it is not JSON."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise TemplateError([Problem("", f"not valid JSON: not UTF-8 text ({e.reason} at byte {e.start})")]) from None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise TemplateError([Problem("", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")]) from None
    except ValueError as e:
        raise TemplateError([Problem("", f"not valid JSON: {e}")]) from None
    except RecursionError:
        raise TemplateError([Problem("", "not valid JSON: nested too deeply")]) from None


def _esc(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (not isinstance(v, float) or math.isfinite(v))


def _show(v: object) -> str:
    """A short JSON-ish rendering of a value for a message (never raises)."""
    try:
        text = json.dumps(v, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(v)
        except Exception:  # a huge int, a hostile __repr__: say what it is
            text = f"<{type(v).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _is_text(s: str) -> bool:
    """False for strings with lone surrogates: they have no UTF-8 form, so the
    translated JSON could not be sent."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _lengths_text(lengths: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in lengths)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, pointer: str, message: str) -> None:
        self.problems.append(Problem(pointer, message))

    # -- shared helpers -------------------------------------------------
    def keys(self, obj: MappingABC, ptr: str, allowed: tuple[str, ...]) -> None:
        """Report duplicate, non-string and unknown keys of one object."""
        for k in getattr(obj, "duplicates", ()):
            self.add(f"{ptr}/{_esc(k)}", f'duplicate key "{k}" (JSON keeps only the last one)')
        for k in obj:
            if not isinstance(k, str):
                self.add(f"{ptr}/{_esc(k)}", f"keys must be strings, not {_show(k)}")
            elif k not in allowed:
                self.add(f"{ptr}/{_esc(k)}", f'unknown key "{k}" (allowed here: {", ".join(allowed)})')

    def opt_str(self, obj: MappingABC, key: str, ptr: str) -> str | None:
        if key not in obj:
            return None
        v = obj[key]
        if not isinstance(v, str):
            self.add(f"{ptr}/{key}", f"{key} must be a string")
            return None
        return v

    # -- template -------------------------------------------------------
    def template(self, obj: Any) -> Template | None:
        if not isinstance(obj, MappingABC):
            self.add("", "template must be a JSON object")
            return None
        self.keys(obj, "", _TOP_KEYS)
        name = self.opt_str(obj, "name", "")
        comment = self.opt_str(obj, "comment", "")
        version = self.opt_str(obj, "version", "")
        if "sense" not in obj:
            self.add("", 'missing sense: a template needs a list of statements under "sense"')
            return None
        sense = self.statements(obj["sense"], "/sense", "sense", depth=0)
        if sense is None or self.problems:
            return None
        return Template(sense=sense, name=name, comment=comment, version=version)

    def statements(self, seq: Any, ptr: str, what: str, depth: int) -> tuple[Statement, ...] | None:
        if not isinstance(seq, list):
            self.add(ptr, f"{what} must be a list of statements")
            return None
        out: list[Statement] = []
        ok = True
        for i, st in enumerate(seq):
            node = self.statement(st, f"{ptr}/{i}", depth)
            if node is None:
                ok = False
            else:
                out.append(node)
        return tuple(out) if ok else None

    def statement(self, st: Any, ptr: str, depth: int) -> Statement | None:
        if not isinstance(st, MappingABC):
            self.add(ptr, "statement must be an object")
            return None
        is_mapping = "asset" in st or "value" in st
        is_switch = "switch" in st or "on" in st
        if is_mapping and is_switch:
            self.add(ptr, "a statement is either a mapping (asset, value) or a switch (switch, on), not both")
            return None
        if is_mapping:
            return self.mapping(st, ptr)
        if is_switch:
            return self.switch(st, ptr, depth)
        self.add(ptr, "not a statement: a statement has asset and value (a mapping) or switch and on (a control statement)")
        return None

    # -- mapping --------------------------------------------------------
    def mapping(self, st: MappingABC, ptr: str) -> Mapping | None:
        n0 = len(self.problems)
        self.keys(st, ptr, _MAPPING_KEYS)
        comment = self.opt_str(st, "comment", ptr)
        path: tuple[str, ...] | None = None
        if "asset" not in st:
            self.add(ptr, "mapping without asset: add the asset name the value goes to")
        else:
            path = self.asset(st["asset"], f"{ptr}/asset")
        value: Selector | Constant | None = None
        if "value" not in st:
            self.add(ptr, "mapping without value: add a selector object or a string constant")
        else:
            value = self.selector(st["value"], f"{ptr}/value", "value")
        custom_type: str | None = None
        if "custom_type" in st:
            ct = st["custom_type"]
            if not isinstance(ct, str) or ct not in LOCATION_TYPES:
                self.add(f"{ptr}/custom_type", f"custom_type must be location_lat or location_long, not {_show(ct)}")
            else:
                custom_type = ct
                if value is not None and not (isinstance(value, Selector) and value.type in NUMERIC_TYPES):
                    self.add(
                        f"{ptr}/custom_type",
                        f"custom_type {ct} needs a number: the value must read type int, uint or float",
                    )
        if len(self.problems) != n0 or path is None or value is None:
            return None
        return Mapping(asset=st["asset"], path=path, value=value, pointer=ptr, custom_type=custom_type, comment=comment)

    def asset(self, asset: Any, ptr: str) -> tuple[str, ...] | None:
        if not isinstance(asset, str) or not asset:
            self.add(ptr, "asset must be a non-empty string such as \"temperature\" or \"gps.lat\"")
            return None
        if not _is_text(asset):
            self.add(ptr, "asset must be Unicode text (it has a lone surrogate)")
            return None
        parts = tuple(asset.split("."))
        if any(not p for p in parts):
            self.add(ptr, f"asset {_show(asset)} has an empty name between dots")
            return None
        if len(parts) > MAX_ASSET_DEPTH:
            self.add(ptr, f"asset nests deeper than {MAX_ASSET_DEPTH} levels")
            return None
        return parts

    # -- switch ---------------------------------------------------------
    def switch(self, st: MappingABC, ptr: str, depth: int) -> Switch | None:
        n0 = len(self.problems)
        self.keys(st, ptr, _SWITCH_KEYS)
        comment = self.opt_str(st, "comment", ptr)
        if depth >= MAX_SWITCH_DEPTH:
            self.add(ptr, f"switches nest deeper than {MAX_SWITCH_DEPTH} levels")
            return None
        selector: Selector | Constant | None = None
        if "switch" not in st:
            self.add(ptr, "on without switch: add the selector the cases compare with")
        else:
            selector = self.selector(st["switch"], f"{ptr}/switch", "switch")
        cases: list[Case] = []
        default: Case | None = None
        if "on" not in st:
            self.add(ptr, "switch without on: add the list of cases")
        else:
            on = st["on"]
            if not isinstance(on, list):
                self.add(f"{ptr}/on", "on must be a list of cases")
            elif not on:
                self.add(f"{ptr}/on", "on needs at least one case")
            else:
                first_default: str | None = None
                for j, entry in enumerate(on):
                    eptr = f"{ptr}/on/{j}"
                    case = self.case(entry, eptr, depth)
                    if isinstance(entry, MappingABC) and entry.get("default") is True and "case" not in entry:
                        if first_default is not None:
                            self.add(f"{eptr}/default", f"two defaults: a switch has one default, the first is {first_default}")
                        else:
                            first_default = eptr
                    if case is None:
                        continue
                    if case.is_default:
                        if default is None:
                            default = case
                    else:
                        cases.append(case)
        if len(self.problems) != n0 or selector is None:
            return None
        return Switch(selector=selector, cases=tuple(cases), default=default, pointer=ptr, comment=comment)

    def case(self, entry: Any, ptr: str, depth: int) -> Case | None:
        if not isinstance(entry, MappingABC):
            self.add(ptr, "case entry must be an object")
            return None
        n0 = len(self.problems)
        self.keys(entry, ptr, _CASE_KEYS)
        comment = self.opt_str(entry, "comment", ptr)
        has_case, has_default = "case" in entry, "default" in entry
        if has_case and has_default:
            self.add(ptr, "an entry is either a case or the default, not both")
            return None
        if not has_case and not has_default:
            self.add(ptr, 'entry needs "case": VALUE or "default": true')
            return None
        value: Any = None
        if has_case:
            value = entry["case"]
            if not (_is_number(value) or isinstance(value, str)):
                self.add(f"{ptr}/case", f"case value must be a number or a string, not {_show(value)}")
            elif isinstance(value, int) and abs(value) > _MAX_CASE_INT:
                self.add(f"{ptr}/case", "case value is too large to equal anything a selector reads")
        elif entry["default"] is not True:
            self.add(f"{ptr}/default", f"default must be true, not {_show(entry['default'])}")
        word = "case" if has_case else "default"
        do: tuple[Statement, ...] | None = None
        if "do" not in entry:
            self.add(ptr, f"{word} without do: add the list of statements to run")
        else:
            do = self.statements(entry["do"], f"{ptr}/do", "do", depth + 1)
        if len(self.problems) != n0 or do is None:
            return None
        return Case(value=value, is_default=not has_case, do=do, pointer=ptr, comment=comment)

    # -- selector -------------------------------------------------------
    def selector(self, sel: Any, ptr: str, role: str) -> Selector | Constant | None:
        if isinstance(sel, str):
            if not _is_text(sel):
                self.add(ptr, "a constant must be Unicode text (it has a lone surrogate)")
                return None
            return Constant(value=sel, pointer=ptr)
        if not isinstance(sel, MappingABC):
            if role == "value":
                self.add(ptr, "value must be a string constant or a selector object")
            else:
                self.add(ptr, "switch must be a selector object or a string constant")
            return None
        n0 = len(self.problems)
        self.keys(sel, ptr, _SELECTOR_KEYS)
        comment = self.opt_str(sel, "comment", ptr)

        vtype: ValueType | None = None
        if "type" not in sel:
            self.add(ptr, f"selector without type: add one of {_TYPES_TEXT}")
        else:
            t = sel["type"]
            try:
                vtype = ValueType(t) if isinstance(t, str) else None
            except ValueError:
                vtype = None
            if vtype is None:
                self.add(f"{ptr}/type", f"unknown type {_show(t)} (expected {_TYPES_TEXT})")

        byte = endbyte = bytelength = None
        endbyte_ok = bytelength_ok = True
        if "byte" in sel:
            byte = sel["byte"]
            if not _is_int(byte):
                self.add(f"{ptr}/byte", "byte must be an integer")
            elif byte < 0:
                self.add(f"{ptr}/byte", "byte must not be negative (count from the end with endbyte)")
            elif byte > MAX_OFFSET:
                self.add(f"{ptr}/byte", f"byte must be at most {MAX_OFFSET}")
        if "endbyte" in sel:
            endbyte = sel["endbyte"]
            if not _is_int(endbyte):
                self.add(f"{ptr}/endbyte", "endbyte must be an integer")
                endbyte_ok = False
            elif endbyte > 0:
                self.add(f"{ptr}/endbyte", "endbyte must be 0 or negative (it counts back from the end of the payload)")
                endbyte_ok = False
            elif endbyte < -MAX_OFFSET:
                self.add(f"{ptr}/endbyte", f"endbyte must be at least -{MAX_OFFSET}")
                endbyte_ok = False
        if "byte" not in sel and "endbyte" not in sel:
            self.add(ptr, "selector without byte or endbyte: say where the value starts")
        if "bytelength" in sel:
            bytelength = sel["bytelength"]
            if not _is_int(bytelength) or bytelength < 1:
                self.add(f"{ptr}/bytelength", "bytelength must be a positive integer")
                bytelength_ok = False
            elif bytelength > MAX_OFFSET:
                self.add(f"{ptr}/bytelength", f"bytelength must be at most {MAX_OFFSET}")
                bytelength_ok = False
            elif "byte" in sel and "endbyte" in sel:
                self.add(
                    f"{ptr}/bytelength",
                    "bytelength is not allowed together with byte and endbyte (the range from byte to endbyte sets the length)",
                )
                bytelength_ok = False
            elif vtype is not None:
                allowed = ALLOWED_LENGTHS[vtype]
                if allowed is not None and bytelength not in allowed:
                    self.add(
                        f"{ptr}/bytelength",
                        f"bytelength {bytelength} is not allowed for type {vtype.value} (allowed: {_lengths_text(allowed)})",
                    )
                    bytelength_ok = False
        elif vtype is not None and not ("byte" in sel and "endbyte" in sel):
            allowed = ALLOWED_LENGTHS[vtype]
            if allowed is not None and 1 not in allowed:
                self.add(
                    ptr,
                    f"type {vtype.value} needs a bytelength of {' or '.join(str(n) for n in allowed)} (bytelength defaults to 1)",
                )
        if "byte" not in sel and endbyte is not None and endbyte_ok and bytelength_ok:
            length = 1 if bytelength is None else bytelength
            if length > -endbyte:
                if bytelength is None:
                    self.add(
                        f"{ptr}/endbyte",
                        f"endbyte {endbyte} leaves no byte to read (without byte, reading starts at endbyte; bytelength defaults to 1)",
                    )
                else:
                    self.add(
                        f"{ptr}/bytelength",
                        f"bytelength {bytelength} reaches past the end of the payload: endbyte {endbyte} leaves {-endbyte} byte{'s' if endbyte != -1 else ''}",
                    )

        byteorder = "big"
        if "byteorder" in sel:
            bo = sel["byteorder"]
            if bo not in ("big", "little"):
                self.add(f"{ptr}/byteorder", f'byteorder must be "big" or "little", not {_show(bo)}')
            else:
                byteorder = bo
        if "signed" in sel:
            sg = sel["signed"]
            if not isinstance(sg, bool):
                self.add(f"{ptr}/signed", "signed must be true or false")
            elif vtype is not None:
                if vtype not in (ValueType.INT, ValueType.UINT):
                    self.add(f"{ptr}/signed", "signed applies only to types int and uint")
                elif sg and vtype is ValueType.UINT:
                    self.add(f"{ptr}/signed", "signed: true contradicts type uint (use type int)")
                elif not sg and vtype is ValueType.INT:
                    self.add(f"{ptr}/signed", "signed: false contradicts type int (use type uint)")

        if len(self.problems) != n0 or vtype is None:
            return None
        if byte is not None and endbyte is not None:
            bytelength = None
        elif bytelength is None:
            bytelength = 1
        return Selector(
            type=vtype,
            byte=byte,
            endbyte=endbyte,
            bytelength=bytelength,
            byteorder=byteorder,
            pointer=ptr,
            comment=comment,
        )


def _to_object(template: Any) -> Any:
    if isinstance(template, (str, bytes, bytearray)):
        return load_json(template)
    return template


def parse_template(template: Any) -> Template:
    """Validate `template` (JSON text, or the parsed object) and return its model.

    Raises TemplateError listing every problem.  A `Template` is returned as is.
    """
    if isinstance(template, Template):
        return template
    obj = _to_object(template)
    checker = _Checker()
    try:
        model = checker.template(obj)
    except RecursionError:
        # Only reachable with Python objects nested beyond what JSON text allows.
        raise TemplateError([Problem("", "template nests too deeply")]) from None
    if checker.problems or model is None:
        raise TemplateError(checker.problems or [Problem("", "invalid template")])
    return model


def validate(template: Any) -> list[Problem]:
    """Every problem of `template`; an empty list means it is valid."""
    try:
        parse_template(template)
    except TemplateError as e:
        return e.problems
    return []
